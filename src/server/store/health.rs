//! Whether the store takes writes now (readiness, as opposed to the process being alive).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Commits one small write; an error says why the store cannot take writes.
    async fn ready(&self, now: DateTime<Utc>) -> StoreResult<()>;
}
