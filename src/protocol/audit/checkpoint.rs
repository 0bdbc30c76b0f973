//! Signed checkpoints of the audit chain's head: a compact JWS (EdDSA, `typ`
//! `audit-checkpoint+jwt`) over `{iss, iat, seq, hash}`, verifiable by anyone holding the
//! server's JWKS (RFC 7515, RFC 8037). Kept outside the database, a checkpoint makes a later
//! truncation or rewrite of the history it covers visible.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JWS `typ` header of a checkpoint (RFC 8725 §3.11: explicit typing).
pub const CHECKPOINT_TYP: &str = "audit-checkpoint+jwt";

/// The signed claims of a checkpoint: the chain's head was event `seq` (so it held `seq`
/// events) with hash `hash` when `iss` signed it at `iat` (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointClaims {
    pub iss: String,
    pub iat: i64,
    pub seq: i64,
    pub hash: String,
}

/// A signed checkpoint as served and as the file sink writes it (one per line). Only `jws` is
/// trusted: the other fields repeat its claims for people reading the line, and a verifier
/// refuses a checkpoint whose fields disagree with its signed claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    #[serde(with = "crate::protocol::time")]
    pub at: DateTime<Utc>,
    pub issuer: String,
    pub kid: String,
    /// The compact JWS; its payload is a [`CheckpointClaims`].
    pub jws: String,
}

/// What the chain holds at a `seq` a verifier asked about (`GET /v1/audit/verify?at=SEQ`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainAt {
    pub seq: i64,
    /// The hash of event `seq`; absent when the verified chain is shorter than `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}
