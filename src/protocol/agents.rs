//! Agent identities on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::trust::Tier;

/// `POST /v1/agents`: a sponsor registers an agent by its public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    /// Ed25519 public key, 32 bytes, base64url without padding (the JWK `x`).
    pub public_key: String,
    pub name: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Named as a new child by a delegation no human has approved yet: no token, no requests.
    Proposed,
    Active,
    Suspended,
    Revoked,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Proposed => "proposed",
            AgentStatus::Active => "active",
            AgentStatus::Suspended => "suspended",
            AgentStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "proposed" => Some(AgentStatus::Proposed),
            "active" => Some(AgentStatus::Active),
            "suspended" => Some(AgentStatus::Suspended),
            "revoked" => Some(AgentStatus::Revoked),
            _ => None,
        }
    }
}

/// A sponsor of an agent, as shown to approvers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SponsorRef {
    pub id: String,
    pub username: String,
    pub display_name: String,
}

/// An agent identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub did: String,
    pub name: String,
    pub public_key: String,
    pub sponsors: Vec<SponsorRef>,
    pub capabilities: Vec<String>,
    pub status: AgentStatus,
    /// Why the status last changed (suspension and revocation reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// A security suspension is lifted only by a security lead.
    #[serde(default)]
    pub suspension_security: bool,
    #[serde(
        default,
        with = "super::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub status_changed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_changed_by: Option<String>,
    /// After idle decay, as of the answer.
    pub trust_score: i64,
    pub trust_tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_did: Option<String>,
    pub delegation_depth: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(with = "super::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "super::time")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

/// `GET /v1/me`: who the bearer of a token is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub sub: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub scope: String,
    #[serde(with = "super::time")]
    pub expires_at: DateTime<Utc>,
}
