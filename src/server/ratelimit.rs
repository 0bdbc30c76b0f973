//! Counting failures (wrong user codes, wrong passwords) per key in a sliding window, on the
//! injected clock. The failures live in the store, so every server instance counts the same
//! attempts and a restart forgives nothing.

use chrono::{DateTime, Duration, Utc};

use super::store::{SignInStore, StoreResult};

#[derive(Debug, Clone)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window_seconds: u32) -> Self {
        Self {
            max_failures,
            window: Duration::seconds(i64::from(window_seconds)),
        }
    }

    /// Whether `key` has used up its failures in the window ending at `now`.
    pub async fn is_blocked(
        &self,
        store: &dyn SignInStore,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(store.failures_since(key, now - self.window).await? >= self.max_failures)
    }

    pub async fn record_failure(
        &self,
        store: &dyn SignInStore,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        store.record_failure(key, now).await
    }
}
