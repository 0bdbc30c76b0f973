//! Action requests on the wire: approvals asked for by AGT-governed agents through the webhook
//! (`domain::agt`), as sponsors list and decide them under `/v1/actions`, the webhook's answer,
//! and the approver assertion the answer carries on approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query::ListScope;
use super::requests::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Approved => "approved",
            ActionStatus::Denied => "denied",
            ActionStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ActionStatus::Pending),
            "approved" => Some(ActionStatus::Approved),
            "denied" => Some(ActionStatus::Denied),
            "expired" => Some(ActionStatus::Expired),
            _ => None,
        }
    }
}

/// One action request: what the agent's policy engine asked a human to approve, for one
/// execution. Every text field is as the caller sent it (agent-written: escape before display).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Action {
    /// AGT's `approval_request_id` (`ar_` and 32 hex digits).
    pub id: String,
    /// The `agent_id` as sent: a DID, or any string (`*` under AGT's defaults).
    pub agent_id: String,
    /// The local agent `agent_id` names (or the calling agent, for `*`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_did: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// The configured integration the request came through; absent when an agent called with
    /// its own token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource: Option<String>,
    pub policy_decision_id: String,
    pub policy_version: String,
    pub approval_chain_id: String,
    pub approval_chain_version: String,
    /// Covers the tool, its parameters and the target; echoed, never recomputed.
    pub action_digest: String,
    /// Covers the presented fields above; checked on arrival.
    pub input_digest: String,
    pub status: ActionStatus,
    #[serde(with = "super::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "super::time")]
    pub expires_at: DateTime<Utc>,
    #[serde(
        default,
        with = "super::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_username: Option<String>,
    /// The decider's justification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActionList {
    pub actions: Vec<Action>,
    /// Pending lists: pass as `after` to read the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The first page of a pending list: how many pending actions the list holds in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `GET /v1/actions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    /// Default: every status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ActionStatus>,
    /// `mine` (default: actions of agents and integrations the caller sponsors) or `all`
    /// (security leads and admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ListScope>,
    /// Page size, 1 to 10,000 (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Pending lists: the `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl ActionQuery {
    /// A page of pending actions, soonest to expire first.
    pub fn pending(limit: u32, after: Option<String>) -> Self {
        Self {
            status: Some(ActionStatus::Pending),
            limit: Some(limit),
            after,
            ..Self::default()
        }
    }
}

/// `POST /v1/actions/{id}/decision`: an action approval is for one execution, so there is no
/// duration and nothing to narrow; the justification is required either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionDecisionBody {
    pub decision: Decision,
    pub justification: String,
}

/// The webhook's answer, in the shape AGT's `parse_webhook_response` reads (schema 1.0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAnswer {
    pub approval_request_id: String,
    pub action_digest: String,
    pub approved: bool,
    /// `allow` or `deny`.
    pub decision: String,
    pub reason: String,
    pub approver: String,
    /// On approval: a compact JWS (EdDSA, `typ` [`ASSERTION_TYP`], `kid` in the JWKS) with
    /// [`ApproverAssertion`] claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_assertion: Option<String>,
}

/// The JWS `typ` of an approver assertion.
pub const ASSERTION_TYP: &str = "agt-approval+jwt";

/// What an approver assertion says: this sponsor approved this exact action, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApproverAssertion {
    /// The governance server's issuer URL.
    pub iss: String,
    /// The request's `agent_id`, as sent.
    pub aud: String,
    /// The approving sponsor's stable identifier.
    pub sub: String,
    /// The approving sponsor's username, for display.
    pub preferred_username: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub approval_request_id: String,
    pub action_digest: String,
    pub input_digest: String,
    /// Always `allow`: denials carry no assertion.
    pub decision: String,
}
