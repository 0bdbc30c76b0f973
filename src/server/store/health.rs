//! Whether the store takes writes now (readiness, as opposed to the process being alive).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Commits one small write; an error says why the store cannot take writes.
    async fn ready(&self, now: DateTime<Utc>) -> StoreResult<()>;

    /// Whether this instance runs the periodic jobs (expiry, checkpoints, the state check),
    /// asked before each run. A store one process serves alone (SQLite, behind its serve
    /// lock) always leads; on PostgreSQL one instance at a time holds the leader's lock.
    async fn lead(&self) -> StoreResult<bool> {
        Ok(true)
    }

    /// Lets go of leading, so another instance takes over at once (a graceful shutdown).
    async fn resign(&self) {}
}
