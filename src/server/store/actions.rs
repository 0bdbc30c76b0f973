//! Action requests (AGT approvals through the webhook): their arrival, redelivery, decision
//! and expiry, each with its audit event in the same transaction; and their columns as a row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::records::{from_ms, opt_from_ms};
use super::{StoreError, StoreResult};
use crate::domain::agt::ActionRequest;
use crate::domain::role::Role;
use crate::protocol::actions::{Action, ActionStatus};
use crate::protocol::audit::Actor;
use crate::protocol::requests::Decision;

/// An action request that passed `domain::agt::parse`, and who it came through.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub request: ActionRequest,
    /// The local agent: the calling agent, or the DID `agent_id` names if we know it.
    pub agent_did: Option<String>,
    /// The configured integration, when the caller was not an agent.
    pub integration: Option<String>,
    /// The integration's sponsor (by username); must exist.
    pub integration_sponsor: Option<String>,
    pub actor: Actor,
}

/// What an arrival became.
#[derive(Debug, Clone)]
pub enum Arrival {
    /// Stored now, with `action.submitted`.
    Created(Action),
    /// The same request was stored before (the same `input_digest`); `action.redelivered`
    /// records this delivery. It may be pending or decided.
    Redelivered(Action),
}

/// A human's decision on an action request.
#[derive(Debug, Clone)]
pub struct ActionDecisionInput {
    pub approver_id: String,
    pub approver_roles: Vec<Role>,
    /// The roles policy lets decide any action.
    pub policy_roles: Vec<Role>,
    pub decision: Decision,
    pub justification: String,
}

/// Which action requests to list.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    /// Only actions of agents this sponsor sponsors, or of integrations they answer for
    /// (`None`: all).
    pub sponsor_id: Option<String>,
    pub status: Option<ActionStatus>,
    pub limit: u32,
    /// Pending lists only: continue after this (expires_at, id).
    pub after: Option<(DateTime<Utc>, String)>,
}

#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Stores a new action request, or records the redelivery of one with the same id and
    /// body; the same id with another body is refused (`approval_request_id_reused`) and
    /// writes nothing, as does an agent that is not active.
    async fn receive_action(&self, action: NewAction, now: DateTime<Utc>) -> StoreResult<Arrival>;
    async fn action(&self, id: &str) -> StoreResult<Option<Action>>;
    async fn list_actions(&self, filter: &ActionFilter) -> StoreResult<Vec<Action>>;
    /// How many actions `filter` selects in all (its `limit` and `after` aside).
    async fn count_actions(&self, filter: &ActionFilter) -> StoreResult<u64>;
    /// Whether this sponsor may see the action: they sponsor its agent or its integration.
    async fn sponsors_action(&self, sponsor_id: &str, action: &Action) -> StoreResult<bool>;
    /// Records a decision (`domain::action`): the status and `action.approved` or
    /// `action.denied` in one transaction. A decision at or after `expires_at` expires the
    /// request instead (committed, with `action.expired`) and is refused.
    async fn decide_action(
        &self,
        id: &str,
        input: ActionDecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Action>;
    /// Expires one request whose time is up, if it is still pending; returns it as it stands.
    async fn expire_action(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Action>;
    /// Expires every pending request past `expires_at`; returns their ids.
    async fn expire_actions(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>>;
}

/// The columns every action query reads: the table's, the agent's name and the approver's
/// username.
pub(super) const ACTION_COLUMNS: &str = "a.id, a.agent_id, a.agent_did, ag.name AS agent_name, \
    a.integration, a.sponsor_id, a.subject_id, a.operation, a.target_resource, \
    a.policy_decision_id, a.policy_version, a.approval_chain_id, a.approval_chain_version, \
    a.action_digest, a.input_digest, a.status, a.created_at, a.expires_at, a.decided_at, \
    a.approver_id, s.username AS approver_username, a.justification \
    FROM action_requests a LEFT JOIN agents ag ON ag.did = a.agent_did \
    LEFT JOIN sponsors s ON s.id = a.approver_id";

/// One row of [`ACTION_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct ActionRow {
    id: String,
    agent_id: String,
    agent_did: Option<String>,
    agent_name: Option<String>,
    integration: Option<String>,
    pub(super) sponsor_id: Option<String>,
    subject_id: Option<String>,
    operation: String,
    target_resource: Option<String>,
    policy_decision_id: String,
    policy_version: String,
    approval_chain_id: String,
    approval_chain_version: String,
    action_digest: String,
    input_digest: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    approver_id: Option<String>,
    approver_username: Option<String>,
    justification: Option<String>,
}

impl ActionRow {
    pub(super) fn into_action(self) -> StoreResult<Action> {
        Ok(Action {
            status: ActionStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("action status {:?}", self.status)))?,
            id: self.id,
            agent_id: self.agent_id,
            agent_did: self.agent_did,
            agent_name: self.agent_name,
            integration: self.integration,
            subject_id: self.subject_id,
            operation: self.operation,
            target_resource: self.target_resource,
            policy_decision_id: self.policy_decision_id,
            policy_version: self.policy_version,
            approval_chain_id: self.approval_chain_id,
            approval_chain_version: self.approval_chain_version,
            action_digest: self.action_digest,
            input_digest: self.input_digest,
            created_at: from_ms(self.created_at),
            expires_at: from_ms(self.expires_at),
            decided_at: opt_from_ms(self.decided_at),
            approver_id: self.approver_id,
            approver_username: self.approver_username,
            justification: self.justification,
        })
    }
}

/// The audit subject of an action's events: its agent, else the integration's sponsor (so a
/// sponsor's event stream shows the actions they decide).
pub(super) fn subject_of(agent_did: Option<&str>, sponsor_id: Option<&str>) -> String {
    agent_did.or(sponsor_id).unwrap_or("agt").to_owned()
}

/// The details of `action.submitted`.
pub(super) fn submitted_detail(new: &NewAction) -> crate::protocol::audit::action::ActionSubmitted {
    let r = &new.request;
    crate::protocol::audit::action::ActionSubmitted {
        approval_request_id: r.approval_request_id.clone(),
        agent_id: r.agent_id.clone(),
        integration: new.integration.clone(),
        operation: r.operation.clone(),
        target_resource: r.target_resource.clone(),
        action_digest: r.action_digest.clone(),
        input_digest: r.input_digest.clone(),
        expires_at: r.expires_at,
    }
}
