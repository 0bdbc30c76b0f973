//! Grants and the kill switch: listing and revoking grants, suspending, reactivating and
//! revoking agents with everything they hold.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::protocol::agents::Agent;
use crate::protocol::audit::Actor;
use crate::protocol::requests::{Grant, Suspension};

/// Which grants to list.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub sponsor_id: Option<String>,
    pub agent_did: Option<String>,
    pub active_only: bool,
}

/// Whose agents to suspend.
#[derive(Debug, Clone)]
pub enum SuspendTarget {
    /// One agent and its delegated descendants.
    Agent(String),
    /// Every agent of a sponsor, with their descendants.
    Sponsor(String),
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn active_grants(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Vec<Grant>>;
    async fn grant(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Grant>>;
    async fn list_grants(
        &self,
        filter: &GrantFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Grant>>;
    /// Revokes a grant early with the grants delegated from it, and the tokens carrying them.
    async fn revoke_grant(
        &self,
        id: &str,
        actor: Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension>;

    /// Suspends in one transaction: statuses, grants, pending requests, tokens.
    async fn suspend(
        &self,
        target: SuspendTarget,
        reason: &str,
        security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension>;
    /// Lifts a suspension of one agent; `may_lift_security` says whether the caller may lift a
    /// security suspension.
    async fn reactivate(
        &self,
        did: &str,
        reason: &str,
        may_lift_security: bool,
        trust_floor: i64,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Agent>;
    /// Revokes an agent for good, with its descendants.
    async fn revoke_agent(
        &self,
        did: &str,
        reason: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension>;
    /// Records each grant that ran out by `now` (its own audit event, at its true end); returns
    /// their ids.
    async fn expire_grants(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>>;
    /// The agents a suspension of `target` would reach, without changing anything.
    async fn suspension_targets(
        &self,
        target: &SuspendTarget,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;
}
