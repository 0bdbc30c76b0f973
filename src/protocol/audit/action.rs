//! What an audit event records: one variant per action, each with its typed details. The wire
//! form is the event's `action` string and its `details` object, exactly as the chain hashes
//! them, so events written before these types existed still parse and verify.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::policy::Sensitivity;
use crate::protocol::agents::AgentStatus;
use crate::protocol::requests::RequestKind;

/// An action and its details. Serialized as `{"action": "...", "details": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", content = "details")]
pub enum AuditAction {
    #[serde(rename = "signing_key.rotated")]
    SigningKeyRotated(KeyRotated),
    #[serde(rename = "sponsor.added")]
    SponsorAdded(SponsorChanged),
    #[serde(rename = "sponsor.updated")]
    SponsorUpdated(SponsorChanged),
    #[serde(rename = "sponsor.signed_in")]
    SponsorSignedIn(SignedIn),
    #[serde(rename = "device.approved")]
    DeviceApproved(DeviceDecided),
    #[serde(rename = "device.denied")]
    DeviceDenied(DeviceDecided),
    #[serde(rename = "token.issued")]
    TokenIssued(TokenIssued),
    #[serde(rename = "token.revoked")]
    TokenRevoked(TokenRevoked),
    #[serde(rename = "token.family_revoked")]
    TokenFamilyRevoked(FamilyRevoked),
    #[serde(rename = "agent.registered")]
    AgentRegistered(AgentRegistered),
    #[serde(rename = "agent.suspended")]
    AgentSuspended(TakenDown),
    #[serde(rename = "agent.revoked")]
    AgentRevoked(TakenDown),
    #[serde(rename = "agent.reactivated")]
    AgentReactivated(Reactivated),
    #[serde(rename = "request.submitted")]
    RequestSubmitted(Submitted),
    #[serde(rename = "request.approval_recorded")]
    RequestApprovalRecorded(ApprovalRecorded),
    #[serde(rename = "request.approved")]
    RequestApproved(Approved),
    #[serde(rename = "request.denied")]
    RequestDenied(Denied),
    #[serde(rename = "request.expired")]
    RequestExpired(Expired),
    #[serde(rename = "request.cancelled")]
    RequestCancelled(Cancelled),
    #[serde(rename = "grant.revoked")]
    GrantRevoked(GrantRevoked),
    #[serde(rename = "grant.expired")]
    GrantExpired(GrantExpired),
    #[serde(rename = "audit.state_mismatch")]
    StateMismatch(StateMismatch),
    #[serde(rename = "entra.decided")]
    EntraDecided(EntraDecided),
    #[serde(rename = "action.submitted")]
    ActionSubmitted(ActionSubmitted),
    #[serde(rename = "action.approved")]
    ActionApproved(ActionDecided),
    #[serde(rename = "action.denied")]
    ActionDenied(ActionDecided),
    #[serde(rename = "action.expired")]
    ActionExpired(ActionEnded),
    #[serde(rename = "action.redelivered")]
    ActionRedelivered(ActionRedelivered),
    #[serde(rename = "client.added")]
    ClientAdded(ClientChanged),
    #[serde(rename = "client.removed")]
    ClientRemoved(ClientChanged),
}

/// Why an action could not be split into its wire parts or read back from them.
#[derive(Debug, thiserror::Error)]
#[error("audit action: {0}")]
pub struct ActionError(#[from] serde_json::Error);

impl AuditAction {
    /// The `action` string and `details` object as the chain stores and hashes them.
    pub fn into_parts(self) -> Result<(String, serde_json::Value), ActionError> {
        #[derive(Deserialize)]
        struct Parts {
            action: String,
            details: serde_json::Value,
        }
        let parts: Parts = serde_json::from_value(serde_json::to_value(self)?)?;
        Ok((parts.action, parts.details))
    }

    /// Reads a stored action back; an unknown action or a detail of the wrong shape is an error.
    pub fn from_parts(action: &str, details: &serde_json::Value) -> Result<Self, ActionError> {
        Ok(serde_json::from_value(serde_json::json!({
            "action": action,
            "details": details,
        }))?)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotated {
    pub retired_keys: u64,
    #[serde(with = "crate::protocol::time")]
    pub previous_published_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SponsorChanged {
    pub username: String,
    pub roles: Vec<String>,
    /// `config` or `cli`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedIn {
    pub client_id: String,
    pub scope: String,
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceDecided {
    pub client_id: String,
    pub scope: String,
    pub user_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIssued {
    pub jti: String,
    pub scope: String,
    #[serde(with = "crate::protocol::time")]
    pub expires_at: DateTime<Utc>,
    /// The grants the token carries.
    pub grants: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    /// `access_token`.
    pub token_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FamilyRevokedReason {
    /// A rotated refresh token was presented again: someone holds a copy.
    RefreshTokenReuse,
    /// RFC 7009 revocation of the refresh token.
    RevocationRequest,
    /// An authorization code was presented again (RFC 6749 §4.1.2): the sign-in it began is
    /// revoked.
    AuthorizationCodeReuse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FamilyRevoked {
    pub reason: FamilyRevokedReason,
    pub client_id: String,
    /// Named when the subject is the sponsor rather than the family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
    /// The access tokens it revoked, by `jti` (absent in events written before they were named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentRegistered {
    pub name: String,
    pub capabilities: Vec<String>,
    pub model: Option<String>,
    pub runtime: Option<String>,
    /// `proposed` for a delegation's new child; absent (events before it existed) is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
    #[serde(flatten)]
    pub by: RegisteredBy,
}

/// Who registered an agent: a sponsor directly, or a parent agent through a delegation request
/// naming a new child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RegisteredBy {
    Agent {
        registered_by: String,
        trust_score: i64,
    },
    Sponsor {
        /// Always written (null when there is none): it is what tells a sponsor's registration
        /// from an agent's.
        #[schema(required = true)]
        entra_object_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakenDown {
    pub reason: String,
    pub security: bool,
    pub grants_revoked: Vec<String>,
    pub requests_cancelled: Vec<String>,
    pub tokens_revoked: i64,
    /// The access tokens it revoked, by `jti` (absent in events written before they were named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_tokens: Option<Vec<String>>,
    pub trust_score: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reactivated {
    pub reason: String,
    pub was_security: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submitted {
    pub request_id: String,
    pub kind: RequestKind,
    pub child_did: Option<String>,
    pub capabilities: Vec<String>,
    pub duration_seconds: i64,
    pub sensitivity: Sensitivity,
    #[serde(with = "crate::protocol::time")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecorded {
    pub request_id: String,
    pub approvals: u64,
    pub approvals_required: u8,
    pub duration_seconds: i64,
    pub capabilities: Vec<String>,
    pub justification: String,
}

/// One grant an approval created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantMade {
    pub id: String,
    pub capabilities: Vec<String>,
    #[serde(with = "crate::protocol::time")]
    pub not_after: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approved {
    pub request_id: String,
    pub kind: RequestKind,
    /// The agent that holds the grants: the requester, or the child of a delegation.
    pub grantee: String,
    pub grants: Vec<GrantMade>,
    pub duration_seconds: i64,
    pub justification: String,
    /// Every approver, in the order they approved.
    pub approvers: Vec<String>,
    pub trust_score: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Denied {
    pub request_id: String,
    pub trust_score: i64,
    #[serde(flatten)]
    pub by: DeniedBy,
}

/// Who denied: a human with a justification, or the server for approval fatigue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DeniedBy {
    Fatigue {
        reason: FatigueReason,
        recent_requests: i64,
    },
    Sponsor {
        justification: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FatigueReason {
    ApprovalFatigue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Expired {
    pub request_id: String,
    pub trust_score: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancelled {
    pub request_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRevoked {
    pub grant_id: String,
    pub reason: String,
    /// The grant and every grant delegated from it.
    pub grants_revoked: Vec<String>,
    pub tokens_revoked: i64,
    /// The access tokens it revoked, by `jti` (absent in events written before they were named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_tokens: Option<Vec<String>>,
}

/// A grant ran out (written by the sweep that noticed; `not_after` is when).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantExpired {
    pub grant_id: String,
    pub capabilities: Vec<String>,
    #[serde(with = "crate::protocol::time")]
    pub not_after: DateTime<Utc>,
}

/// The tables disagreed with what the chain records (`audit verify --state`): an alert, written
/// when the set of differences changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateMismatch {
    /// How many differences there are.
    pub differences: u64,
    /// The first few, as sentences.
    pub examples: Vec<String>,
    /// The newest event the check replayed.
    pub head_seq: i64,
}

/// A decision made in Microsoft Entra from the console (a PIM approval step or stage that Graph
/// acknowledged), as the sponsor who made it reported it. The subject is
/// `entra:<source>:<request id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraDecided {
    pub source: crate::domain::entra::EntraSource,
    pub request_id: String,
    pub stage_id: String,
    pub decision: crate::protocol::requests::Decision,
    pub justification: String,
    /// Graph's `request-id` of the PATCH (absent when Graph sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_request_id: Option<String>,
    pub client_request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub target_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    pub requester_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_upn: Option<String>,
}

impl From<crate::protocol::entra::EntraDecisionBody> for EntraDecided {
    fn from(b: crate::protocol::entra::EntraDecisionBody) -> Self {
        Self {
            source: b.source,
            request_id: b.request_id,
            stage_id: b.stage_id,
            decision: b.decision,
            justification: b.justification,
            graph_request_id: b.graph_request_id,
            client_request_id: b.client_request_id,
            tenant_id: b.tenant_id,
            target_id: b.target_id,
            target_name: b.target_name,
            requester_id: b.requester_id,
            requester_upn: b.requester_upn,
        }
    }
}

/// An action request arrived through the AGT webhook. The subject is the local agent, or the
/// integration's sponsor when `agent_id` names no agent we know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSubmitted {
    pub approval_request_id: String,
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource: Option<String>,
    pub action_digest: String,
    pub input_digest: String,
    #[serde(with = "crate::protocol::time")]
    pub expires_at: DateTime<Utc>,
}

/// A sponsor approved or denied an action request (one execution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionDecided {
    pub approval_request_id: String,
    pub justification: String,
}

/// An action request reached `expires_at` undecided: answered as a deny.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionEnded {
    pub approval_request_id: String,
}

/// The same approval request was delivered again (the same body); `status` is what it was
/// then, and what the caller was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRedelivered {
    pub approval_request_id: String,
    pub status: crate::protocol::actions::ActionStatus,
}

/// A resource server registered as a confidential client, or removed (its credential then
/// stops working at once). The subject is its `client_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientChanged {
    pub name: String,
    /// `client_secret_basic` or `private_key_jwt`.
    pub auth_method: String,
}
