//! Counting failures (wrong user codes, wrong passwords) per key in a sliding window, on the
//! injected clock. In memory: a restart forgives, which is acceptable for throttling guessers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Most keys tracked at once; beyond that the oldest windows are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window_seconds: u32) -> Self {
        Self {
            max_failures: max_failures as usize,
            window: Duration::seconds(i64::from(window_seconds)),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` has used up its failures in the current window.
    pub fn is_blocked(&self, key: &str, now: DateTime<Utc>) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return true; // fail closed
        };
        match map.get_mut(key) {
            Some(q) => {
                while q.front().is_some_and(|t| *t <= now - self.window) {
                    q.pop_front();
                }
                q.len() >= self.max_failures
            }
            None => false,
        }
    }

    pub fn record_failure(&self, key: &str, now: DateTime<Utc>) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            let cutoff = now - self.window;
            map.retain(|_, q| q.back().is_some_and(|t| *t > cutoff));
        }
        let q = map.entry(key.to_owned()).or_default();
        q.push_back(now);
        while q.len() > self.max_failures {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn blocks_after_failures_and_forgives_after_window() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let l = FailureLimiter::new(3, 60);
        for i in 0..3 {
            assert!(!l.is_blocked("ip", t0 + Duration::seconds(i)));
            l.record_failure("ip", t0 + Duration::seconds(i));
        }
        assert!(l.is_blocked("ip", t0 + Duration::seconds(10)));
        assert!(!l.is_blocked("other", t0));
        assert!(!l.is_blocked("ip", t0 + Duration::seconds(62)));
    }
}
