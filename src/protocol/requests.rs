//! Just-in-time requests, decisions, grants, suspension and trust on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::policy::Requirement;
use crate::domain::trust::Tier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Elevation,
    Delegation,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Elevation => "elevation",
            RequestKind::Delegation => "delegation",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "elevation" => Some(RequestKind::Elevation),
            "delegation" => Some(RequestKind::Delegation),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RequestStatus::Pending),
            "approved" => Some(RequestStatus::Approved),
            "denied" => Some(RequestStatus::Denied),
            "expired" => Some(RequestStatus::Expired),
            "cancelled" => Some(RequestStatus::Cancelled),
            _ => None,
        }
    }
}

/// `POST /v1/requests/elevation` (agent token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElevationBody {
    pub capabilities: Vec<String>,
    pub duration_seconds: i64,
    pub justification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The task or tool call that needs the capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The human the agent acts for, if any (username).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// A child agent registered in the same call as the delegation to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChild {
    pub public_key: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// `POST /v1/requests/delegation` (the parent agent's token). Exactly one of `child_did` and
/// `new_child`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_did: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_child: Option<NewChild>,
    pub capabilities: Vec<String>,
    pub duration_seconds: i64,
    pub justification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

/// `POST /v1/requests/{id}/decision` (sponsor token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub decision: Decision,
    /// Approvals: at most min(requested, policy max). Defaults to that maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// Approvals: a subset of the requested capabilities. Defaults to all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    pub justification: String,
}

/// One human's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub approver_id: String,
    pub approver_username: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    pub justification: String,
    #[serde(with = "super::time")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Request {
    pub id: String,
    pub kind: RequestKind,
    pub agent_did: String,
    pub agent_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_did: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_name: Option<String>,
    pub capabilities: Vec<String>,
    pub duration_seconds: i64,
    pub justification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub status: RequestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What policy demanded when the request was made.
    pub policy: Requirement,
    pub approvals: Vec<Approval>,
    /// The requesting agent's trust score when it asked.
    pub trust_score: i64,
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
    pub grant_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestList {
    pub requests: Vec<Request>,
    /// Pending lists: pass as `after` to read the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The first page of a pending list: how many pending requests the list holds in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Cancelling, revoking, suspending: a reason is always required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    pub id: String,
    pub agent_did: String,
    pub capabilities: Vec<String>,
    #[serde(with = "super::time")]
    pub not_before: DateTime<Utc>,
    #[serde(with = "super::time")]
    pub not_after: DateTime<Utc>,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_grant_id: Option<String>,
    #[serde(
        default,
        with = "super::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    /// Neither ended nor revoked at the time of the answer.
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantList {
    pub grants: Vec<Grant>,
}

/// `POST /v1/agents/{did}/suspend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    pub reason: String,
    /// A security suspension is lifted only by a security lead.
    #[serde(default)]
    pub security: bool,
}

/// `POST /v1/agents/suspend`: every agent of a sponsor (default: the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendAllBody {
    pub reason: String,
    #[serde(default)]
    pub security: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sponsor_id: Option<String>,
    /// When given, the call is refused unless exactly this many agents would be suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_count: Option<u32>,
}

/// What a suspension or revocation actually did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Suspension {
    /// Agents whose status changed.
    pub agents: Vec<String>,
    pub grants_revoked: Vec<String>,
    pub requests_cancelled: Vec<String>,
    pub tokens_revoked: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustPoint {
    #[serde(with = "super::time")]
    pub at: DateTime<Utc>,
    pub score: i64,
    pub delta: i64,
    pub reason: String,
}

/// `GET /v1/agents/{did}/trust`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustReport {
    pub did: String,
    /// Now, after idle decay.
    pub score: i64,
    pub tier: Tier,
    /// Oldest first; the last point is now.
    pub history: Vec<TrustPoint>,
}

/// One capability rule of the policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRuleView {
    pub pattern: String,
    pub sensitivity: crate::domain::policy::Sensitivity,
    pub max_seconds: i64,
    pub approvals_required: u8,
    pub approver_roles: Vec<crate::domain::role::Role>,
}

/// `GET /v1/policy`: what the console shows beside a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub pending_ttl_seconds: i64,
    pub fatigue_limit: u32,
    pub fatigue_window_seconds: i64,
    pub min_trust: i64,
    pub max_delegation_depth: i64,
    pub max_requested_seconds: i64,
    pub capabilities: Vec<PolicyRuleView>,
}
