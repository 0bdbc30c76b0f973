//! Audit events as DESIGN §3 defines them, and the answers of the audit routes.

pub mod action;
pub mod checkpoint;
pub mod schema;
pub mod state;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use action::AuditAction;
pub use checkpoint::{CHECKPOINT_TYP, ChainAt, Checkpoint, CheckpointClaims};
pub use schema::EventFrame;
pub use state::{StateDifference, StateReport};

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Sponsor,
    Agent,
    /// The server itself: sweeps, configuration, approval fatigue.
    System,
    /// A stored kind this build does not know (a tampered row): kept so that verification
    /// names the event, whose hash then no longer matches.
    #[serde(other)]
    Unknown,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Sponsor => "sponsor",
            ActorKind::Agent => "agent",
            ActorKind::System => "system",
            ActorKind::Unknown => "unknown",
        }
    }
}

impl ActorKind {
    /// Reads a stored kind; anything unknown becomes [`ActorKind::Unknown`].
    pub fn parse(s: &str) -> Self {
        match s {
            "sponsor" => ActorKind::Sponsor,
            "agent" => ActorKind::Agent,
            "system" => ActorKind::System,
            _ => ActorKind::Unknown,
        }
    }
}

impl std::fmt::Display for ActorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: "governance-server".into(),
        }
    }
    pub fn sponsor(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Sponsor,
            id: id.into(),
        }
    }
    pub fn agent(did: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Agent,
            id: did.into(),
        }
    }
}

impl std::fmt::Display for Actor {
    /// `kind:id`, as the agent's `status_changed_by` and grants' `revoked_by` record it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
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

/// A sealed event, as stored and as served. Its schema is in [`schema`]: the envelope and
/// the typed action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(flatten)]
    pub event: UnhashedEvent,
    pub hash: String,
}

impl AuditEvent {
    /// The typed action of this event; an error for an action this build does not know or
    /// details of the wrong shape (a tampered row, say).
    pub fn action(&self) -> Result<AuditAction, action::ActionError> {
        AuditAction::from_parts(&self.event.action, &self.event.details)
    }
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
    /// The event at the `seq` asked for with `?at=`, for comparing with a kept checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<ChainAt>,
    /// A fresh signed checkpoint of the verified head (only when `ok` and the chain is not
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// `GET /v1/audit?after=SEQ&limit=N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to read the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}
