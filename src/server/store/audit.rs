//! The audit chain: appending, reading by page or tail, and waking readers after each commit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::record::StateSnapshot;
use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::{Actor, AuditAction, AuditEvent};

/// An audit event to append; the store assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub actor: Actor,
    pub subject: String,
    pub action: AuditAction,
}
impl NewAuditEvent {
    pub fn new(actor: Actor, subject: impl Into<String>, action: AuditAction) -> Self {
        Self {
            actor,
            subject: subject.into(),
            action,
        }
    }
}

/// See [`AuditStore::revocation_snapshot`].
#[derive(Debug, Clone, Default)]
pub struct RevocationSnapshot {
    /// The newest audit event at the instant of the snapshot.
    pub head: i64,
    /// Revoked access tokens not yet expired: `jti` and expiry.
    pub revoked: Vec<(String, DateTime<Utc>)>,
    /// Agents that are not active.
    pub inactive: Vec<(String, AgentStatus)>,
    /// Every sponsor's id and roles.
    pub sponsors: Vec<(String, Vec<String>)>,
}

/// Which audit events a reader may see.
#[derive(Debug, Clone)]
pub enum AuditScope {
    All,
    /// Events by this sponsor or about the agents they sponsor.
    Sponsor(String),
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit_page(
        &self,
        scope: &AuditScope,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    async fn append_audit(&self, event: NewAuditEvent, now: DateTime<Utc>) -> StoreResult<i64>;
    /// The newest `limit` events in scope, oldest first.
    async fn audit_tail(&self, scope: &AuditScope, limit: u32) -> StoreResult<Vec<AuditEvent>>;
    /// The `seq` of the newest audit event (0 for an empty chain).
    async fn audit_head(&self) -> StoreResult<i64>;
    /// The governed state as the tables hold it, read in one snapshot with the `seq` of the
    /// newest event at that instant: what `audit verify --state` compares with the chain.
    async fn state_snapshot(&self) -> StoreResult<(i64, StateSnapshot)>;
    /// What the revocation index starts from, read in one snapshot with the head of the chain:
    /// unexpired revoked tokens, agents that are not active, and every sponsor's roles.
    async fn revocation_snapshot(&self, now: DateTime<Utc>) -> StoreResult<RevocationSnapshot>;

    /// A receiver that changes after every committed write (wakes SSE streams and long polls).
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}
