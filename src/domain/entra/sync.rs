//! Where one approval source stands: when it last synced, when it is polled next (every
//! `every`, jittered so sources and consoles spread out), and after a failure when it is tried
//! again (what Graph asked for, else a doubling backoff) and why. The console keeps one per
//! source and says it in the status bar; an outage of one never touches the others. Pure:
//! `now` and the jitter are passed in.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::EntraSource;

/// The longest wait between tries of a failing source.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);

/// How a source stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncStatus {
    /// Not polled yet.
    Waiting,
    /// The last poll worked.
    Synced {
        #[serde(with = "crate::protocol::time")]
        at: DateTime<Utc>,
        count: usize,
    },
    /// The last poll failed; the rows of the last good one are still shown.
    Retrying {
        /// A short reason (`503`, `timeout`) with Graph's request-id when there is one.
        reason: String,
        failures: u32,
    },
}

/// One source's polling state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub source: EntraSource,
    /// The polling interval before jitter.
    pub every: Duration,
    pub status: SyncStatus,
    /// The last good poll.
    #[serde(default, with = "crate::protocol::time::option")]
    pub last_sync: Option<DateTime<Utc>>,
    #[serde(with = "crate::protocol::time")]
    pub next_poll: DateTime<Utc>,
}

fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

/// `12 s`, `3 min`, `2 h`.
fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

impl SourceState {
    /// A source to poll now, then every `every`.
    pub fn new(source: EntraSource, every: Duration, now: DateTime<Utc>) -> Self {
        Self {
            source,
            every,
            status: SyncStatus::Waiting,
            last_sync: None,
            next_poll: now,
        }
    }

    /// Whether it is time to poll.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        now >= self.next_poll
    }

    /// How long until the next poll (zero when due).
    pub fn wait(&self, now: DateTime<Utc>) -> Duration {
        (self.next_poll - now).to_std().unwrap_or(Duration::ZERO)
    }

    /// Polled now (`ctrl-r`).
    pub fn poll_now(&mut self, now: DateTime<Utc>) {
        self.next_poll = now;
    }

    /// A poll worked: next one in `every`, ±10% by `jitter` (uniform in `[0, 1)`).
    pub fn synced(&mut self, now: DateTime<Utc>, count: usize, jitter: f64) {
        self.status = SyncStatus::Synced { at: now, count };
        self.last_sync = Some(now);
        let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        self.next_poll = after(now, self.every.mul_f64(factor));
    }

    /// A poll failed with `reason`: tried again when Graph asked (`retry_after`), never
    /// sooner; else after `every · 2^(failures − 1)`, at most [`MAX_RETRY_WAIT`], ±10%.
    pub fn failed(
        &mut self,
        now: DateTime<Utc>,
        reason: impl Into<String>,
        retry_after: Option<Duration>,
        jitter: f64,
    ) {
        let failures = match &self.status {
            SyncStatus::Retrying { failures, .. } => failures.saturating_add(1),
            _ => 1,
        };
        let backoff = self
            .every
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
            .min(MAX_RETRY_WAIT)
            .mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0));
        let wait = match retry_after {
            Some(asked) => asked.max(backoff.min(asked.max(self.every))),
            None => backoff,
        };
        self.status = SyncStatus::Retrying {
            reason: reason.into(),
            failures,
        };
        self.next_poll = after(now, wait);
    }

    /// The status bar's words: `Entra roles synced 12 s ago (3)`, `PIM groups: retrying in
    /// 40 s — 503 (request-id …)`.
    pub fn status_line(&self, now: DateTime<Utc>) -> String {
        let name = match self.source {
            EntraSource::DirectoryRole => "Entra roles",
            EntraSource::PimGroup => "PIM groups",
            EntraSource::AccessPackage => "access packages",
        };
        match &self.status {
            SyncStatus::Waiting => format!("{name}: syncing"),
            SyncStatus::Synced { at, count } => {
                format!("{name} synced {} ago ({count})", span(now - *at))
            }
            SyncStatus::Retrying { reason, .. } => format!(
                "{name}: retrying in {} — {reason}",
                span(self.next_poll - now)
            ),
        }
    }
}

/// The status bar's one phrase for every source together: the first failing one with its
/// reason (`Entra: PIM groups retrying in 40 s — 503`), else `Entra: syncing` until each has
/// been polled once, else the oldest of the last syncs and how many wait in all (`Entra synced
/// 12 s ago (5)`).
pub fn summary(states: &[SourceState], now: DateTime<Utc>) -> String {
    if let Some(failing) = states
        .iter()
        .find(|s| matches!(s.status, SyncStatus::Retrying { .. }))
    {
        let line = failing.status_line(now);
        return format!("Entra: {}", line.replacen(": retrying", " retrying", 1));
    }
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut count = 0;
    for s in states {
        match s.status {
            SyncStatus::Synced { at, count: n } => {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
                count += n;
            }
            _ => return "Entra: syncing".to_owned(),
        }
    }
    match oldest {
        Some(at) => format!("Entra synced {} ago ({count})", span(now - at)),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap()
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    #[test]
    fn polled_at_once_then_every_interval_jittered() {
        let mut s = SourceState::new(EntraSource::DirectoryRole, Duration::from_secs(30), t0());
        assert!(s.due(t0()));
        assert_eq!(s.status_line(t0()), "Entra roles: syncing");
        s.synced(t0(), 3, 0.0);
        assert_eq!(s.next_poll, t0() + secs(27));
        assert!(!s.due(t0() + secs(26)) && s.due(t0() + secs(27)));
        s.synced(t0(), 3, 0.999_999);
        assert!(s.next_poll > t0() + secs(32) && s.next_poll <= t0() + secs(33));
        assert_eq!(
            s.status_line(t0() + secs(12)),
            "Entra roles synced 12 s ago (3)"
        );
        s.poll_now(t0() + secs(1));
        assert!(s.due(t0() + secs(1)));
    }

    #[test]
    fn failures_back_off_and_honour_graphs_wait() {
        let mut s = SourceState::new(EntraSource::PimGroup, Duration::from_secs(30), t0());
        s.synced(t0(), 1, 0.5);
        s.failed(t0(), "503 (request-id r-1)", None, 0.5);
        assert_eq!(s.next_poll, t0() + secs(30));
        assert_eq!(s.last_sync, Some(t0()), "the last good sync is kept");
        s.failed(t0(), "503", None, 0.5);
        assert_eq!(s.next_poll, t0() + secs(60));
        s.failed(t0(), "503", None, 0.5);
        assert_eq!(s.next_poll, t0() + secs(120));
        for _ in 0..20 {
            s.failed(t0(), "503", None, 0.5);
        }
        assert_eq!(s.next_poll, t0() + secs(600), "capped");
        assert!(matches!(
            s.status,
            SyncStatus::Retrying { failures: 23, .. }
        ));
        // Graph's Retry-After wins over a shorter backoff and is never cut.
        s.synced(t0(), 1, 0.5);
        s.failed(t0(), "429", Some(Duration::from_secs(40)), 0.0);
        assert_eq!(s.next_poll, t0() + secs(40));
        assert_eq!(s.status_line(t0()), "PIM groups: retrying in 40 s — 429");
        s.failed(t0(), "429", Some(Duration::from_secs(5)), 0.5);
        assert_eq!(s.next_poll, t0() + secs(30), "not sooner than the interval");
        s.failed(t0(), "429", Some(Duration::from_secs(3600)), 0.5);
        assert_eq!(s.next_poll, t0() + secs(3600));
        assert_eq!(s.wait(t0()), Duration::from_secs(3600));
    }

    #[test]
    fn one_phrase_for_every_source() {
        let every = Duration::from_secs(30);
        let mut states: Vec<SourceState> = EntraSource::ALL
            .into_iter()
            .map(|s| SourceState::new(s, every, t0()))
            .collect();
        assert_eq!(summary(&[], t0()), "");
        assert_eq!(summary(&states, t0()), "Entra: syncing");
        states[0].synced(t0(), 2, 0.5);
        states[1].synced(t0() + secs(5), 1, 0.5);
        assert_eq!(
            summary(&states, t0()),
            "Entra: syncing",
            "one not polled yet"
        );
        states[2].synced(t0() + secs(8), 0, 0.5);
        assert_eq!(
            summary(&states, t0() + secs(12)),
            "Entra synced 12 s ago (3)",
            "the oldest sync, every row"
        );
        states[1].failed(
            t0() + secs(12),
            "503 (request-id r-9)",
            Some(Duration::from_secs(40)),
            0.5,
        );
        assert_eq!(
            summary(&states, t0() + secs(12)),
            "Entra: PIM groups retrying in 40 s — 503 (request-id r-9)"
        );
    }
}
