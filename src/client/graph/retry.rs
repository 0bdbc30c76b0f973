//! When to ask Graph again: which answers are worth retrying, how to read `Retry-After`
//! (seconds, decimal seconds as some Graph revisions send, or an HTTP date), and the capped,
//! jittered exponential backoff used when Graph names no wait. Pure: `now` and the jitter are
//! passed in.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How hard one call tries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// The first backoff when Graph names no wait; it doubles each retry.
    pub base_backoff: Duration,
    /// The longest backoff when Graph names no wait.
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited out inside one call; a longer one ends the call with
    /// the error (and its `Retry-After`), so the caller can schedule the next try itself.
    pub max_wait: Duration,
    /// The most one call waits in all.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_wait: Duration::from_secs(30),
            max_total_wait: Duration::from_secs(60),
        }
    }
}

/// Throttled (429), unavailable (503) or a gateway timeout (504): worth another try later.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// The longest `Retry-After` taken at its word (a day); anything longer is read as a day.
const MAX_RETRY_AFTER_SECONDS: f64 = 86_400.0;

/// Reads `Retry-After`: whole or decimal seconds (`10`, `2.128`), or an HTTP date
/// (`Wed, 24 Nov 2026 09:00:03 GMT`) counted from `now`; a date in the past is no wait.
/// Anything else is `None` (then the backoff decides).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER_SECONDS)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(Duration::from_secs_f64(MAX_RETRY_AFTER_SECONDS)))
}

/// How long to wait before retry number `retry` (0 for the first retry), or `None` when the
/// call should end now with its error. `jitter` is uniform in `[0, 1)`.
///
/// - Graph named a wait: that wait, never less, plus up to a tenth of it (at most a second)
///   so clients told the same thing do not all come back at once; `None` past `max_wait`.
/// - Graph named none: `base · 2^retry` capped at `max_backoff`, half of it fixed and half
///   jittered.
pub fn delay(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let jitter = jitter.clamp(0.0, 1.0);
    match retry_after {
        Some(wait) if wait > policy.max_wait => None,
        Some(wait) => {
            let spread = (wait / 10).min(Duration::from_secs(1));
            Some(wait + spread.mul_f64(jitter))
        }
        None => {
            let exp = policy
                .base_backoff
                .saturating_mul(2u32.saturating_pow(retry.min(16)))
                .min(policy.max_backoff);
            Some(exp / 2 + (exp / 2).mul_f64(jitter))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn retry_after_in_seconds_decimals_and_dates() {
        assert_eq!(
            parse_retry_after("10", now()),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after(" 2.128 ", now()),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 09:00:03 GMT", now()),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 08:59:00 GMT", now()),
            Some(Duration::ZERO),
            "a date in the past: no wait"
        );
        assert_eq!(
            parse_retry_after("1e12", now()),
            Some(Duration::from_secs(86_400))
        );
        for bad in ["", "-1", "soon", "NaN", "inf", "2026-11-24T09:00:03Z"] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_named_wait_is_honoured_never_shortened_and_capped() {
        let p = RetryPolicy::default();
        let two = Duration::from_secs(2);
        assert_eq!(delay(&p, 0, Some(two), 0.0), Some(two));
        assert_eq!(
            delay(&p, 0, Some(two), 0.999),
            Some(two + (two / 10).mul_f64(0.999))
        );
        assert_eq!(
            delay(&p, 3, Some(Duration::from_secs(20)), 1.0),
            Some(Duration::from_secs(21)),
            "the spread is at most a second"
        );
        assert_eq!(delay(&p, 0, Some(Duration::from_secs(31)), 0.0), None);
    }

    #[test]
    fn without_a_named_wait_the_backoff_doubles_jittered_and_capped() {
        let p = RetryPolicy::default();
        for retry in 0..40 {
            let exp = Duration::from_millis(500)
                .saturating_mul(1 << retry.min(20))
                .min(Duration::from_secs(8));
            let low = delay(&p, retry, None, 0.0).unwrap();
            let high = delay(&p, retry, None, 0.999_999).unwrap();
            assert_eq!(low, exp / 2, "retry {retry}");
            assert!(high < exp && high > low, "retry {retry}: {high:?}");
        }
        assert!(is_retryable(429) && is_retryable(503) && is_retryable(504));
        assert!(!is_retryable(500) && !is_retryable(409) && !is_retryable(403));
    }
}
