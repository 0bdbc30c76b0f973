//! Requests and decisions: what agents ask for, what humans decide, and the grants a decision
//! creates.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Idempotency, StoreResult, StoredResponse};
use crate::domain::decision::Choice;
use crate::domain::policy::{Requirement, TrustRules};
use crate::domain::role::Role;
use crate::protocol::requests::{Request, RequestKind, RequestStatus};

/// The child of a delegation request.
#[derive(Debug, Clone)]
pub enum ChildSpec {
    Existing(String),
    /// Registered in the same transaction as the request, with the parent's sponsors.
    New(NewChild),
}

/// A child agent a delegation request registers.
#[derive(Debug, Clone)]
pub struct NewChild {
    pub did: String,
    pub name: String,
    pub public_key: String,
    pub model: Option<String>,
    pub runtime: Option<String>,
    pub trust_score: i64,
    /// The child counts against each sponsor's agent limit.
    pub max_agents_per_sponsor: u32,
}

/// A request to store. Approval fatigue is decided inside the transaction, so concurrent
/// submissions count each other.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub kind: RequestKind,
    pub agent_did: String,
    pub child: Option<ChildSpec>,
    pub capabilities: Vec<String>,
    pub duration_seconds: i64,
    pub justification: String,
    pub ticket: Option<String>,
    pub context: Option<String>,
    pub on_behalf_of: Option<String>,
    pub requirement: Requirement,
    pub trust_score: i64,
    pub expires_at: DateTime<Utc>,
    pub fatigue_limit: u32,
    pub fatigue_window_seconds: i64,
    pub fatigue_penalty: i64,
}

#[derive(Debug, Clone)]
pub enum Submitted {
    Created(Box<Request>),
    Replayed(StoredResponse),
}

/// A human's decision and the settings of the rules the store applies inside its transaction
/// (`domain::decision`); whether the approver sponsors the agent is read there too.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub approver_id: String,
    pub approver_username: String,
    pub approver_roles: Vec<Role>,
    pub choice: Choice,
    pub trust: TrustRules,
    pub max_delegation_depth: i64,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only requests about agents this sponsor sponsors (`None`: all).
    pub sponsor_id: Option<String>,
    /// Only requests made by this agent.
    pub agent_did: Option<String>,
    pub status: Option<RequestStatus>,
    pub limit: u32,
    /// Pending lists only: continue after this (expires_at, id), as the last page ended.
    pub after: Option<(DateTime<Utc>, String)>,
}

#[async_trait]
pub trait RequestStore: Send + Sync {
    async fn submit_request(
        &self,
        request: NewRequest,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Submitted>;
    async fn request(&self, id: &str) -> StoreResult<Option<Request>>;
    async fn list_requests(&self, filter: &RequestFilter) -> StoreResult<Vec<Request>>;
    /// How many requests `filter` selects in all (its `limit` and `after` aside).
    async fn count_requests(&self, filter: &RequestFilter) -> StoreResult<u64>;
    /// Records a decision; the request's status, grant, trust event and exactly one audit event
    /// change in one transaction.
    async fn decide_request(
        &self,
        id: &str,
        input: DecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Request>;
    /// The agent that made a pending request withdraws it.
    async fn cancel_request(
        &self,
        id: &str,
        agent_did: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Request>;
    /// Expires pending requests past their TTL (a deny); returns their ids.
    async fn expire_requests(
        &self,
        now: DateTime<Utc>,
        trust_delta: i64,
    ) -> StoreResult<Vec<String>>;
}
