//! `audit verify --state`: whether the tables hold what the audit chain records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a state check found: every difference between the tables and the replayed chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateReport {
    /// True when the tables hold exactly what the chain records.
    pub ok: bool,
    #[serde(with = "crate::protocol::time")]
    pub checked_at: DateTime<Utc>,
    /// The newest event replayed; the tables were read at the same instant.
    pub head_seq: i64,
    /// How many differences there are (callers who may not read them still see the count).
    pub count: u64,
    /// The differences, for callers who read the whole chain (security leads and admins).
    pub differences: Vec<StateDifference>,
    /// What the check could not compare, if anything (e.g. events written before token
    /// revocations named their tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One thing the tables hold that the chain does not record, or the other way round.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct StateDifference {
    /// `agent`, `sponsor`, `grant`, `token`, `refresh_family` or `chain`.
    pub area: String,
    /// The agent's DID, the sponsor's id, the grant's id, the token's `jti`, the family's id,
    /// or the `seq` of an event the check could not read.
    pub id: String,
    /// `presence`, `status`, `capabilities`, `sponsors`, `parent`, `roles`, `not_after`,
    /// `revoked`, `ended` or `event`.
    pub field: String,
    /// What the chain records.
    pub record: String,
    /// What the tables hold.
    pub table: String,
}

impl std::fmt::Display for StateDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} is {} in the tables, {} on the record",
            self.area, self.id, self.field, self.table, self.record
        )
    }
}
