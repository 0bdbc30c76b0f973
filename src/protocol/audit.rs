//! Audit events as DESIGN §3 defines them, and the answers of the audit routes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// `sponsor`, `agent` or `system`.
    pub kind: String,
    pub id: String,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: "governance-server".into(),
        }
    }
    pub fn sponsor(id: impl Into<String>) -> Self {
        Self {
            kind: "sponsor".into(),
            id: id.into(),
        }
    }
    pub fn agent(did: impl Into<String>) -> Self {
        Self {
            kind: "agent".into(),
            id: did.into(),
        }
    }
}

/// An event before it is sealed: exactly the fields the hash covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnhashedEvent {
    pub seq: i64,
    #[serde(with = "super::time")]
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub subject: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
}

/// A sealed event, as stored and as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    #[serde(flatten)]
    pub event: UnhashedEvent,
    pub hash: String,
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainFault {
    pub seq: i64,
    pub reason: String,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    /// Events that verified before the first fault (all of them when `ok`).
    pub count: i64,
    /// Hash of the last good event.
    pub head: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/audit?after=SEQ&limit=N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to read the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}
