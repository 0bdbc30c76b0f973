//! The emulator's time: the wall clock, a manual clock tests step, or any function (so a test
//! can share the clock of the server it is testing). Token times, device-code expiry, polling
//! intervals and the 24-hour approval window all read it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

type NowFn = dyn Fn() -> DateTime<Utc> + Send + Sync;

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<AtomicI64>),
    Func(Arc<NowFn>),
}

/// What time it is for the emulator.
#[derive(Clone)]
pub struct EmulatorClock(Source);

impl fmt::Debug for EmulatorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Source::System => "system",
            Source::Manual(_) => "manual",
            Source::Func(_) => "function",
        };
        write!(f, "EmulatorClock({kind}, {})", self.now())
    }
}

impl Default for EmulatorClock {
    fn default() -> Self {
        Self::system()
    }
}

impl EmulatorClock {
    /// The wall clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands at `start` until [`EmulatorClock::advance`] or [`EmulatorClock::set`].
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self(Source::Manual(Arc::new(AtomicI64::new(
            start.timestamp_millis(),
        ))))
    }

    /// A clock that asks `now` every time (for sharing another component's clock).
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Source::Func(Arc::new(now)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now(),
            Source::Manual(ms) => Utc
                .timestamp_millis_opt(ms.load(Ordering::SeqCst))
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            Source::Func(f) => f(),
        }
    }

    /// Moves a manual clock; returns false (and does nothing) for the other kinds.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.0 {
            Source::Manual(ms) => {
                ms.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Sets a manual clock; returns false (and does nothing) for the other kinds.
    pub fn set(&self, at: DateTime<Utc>) -> bool {
        match &self.0 {
            Source::Manual(ms) => {
                ms.store(at.timestamp_millis(), Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }
}

/// Graph's timestamp form: RFC 3339 in UTC with a `Z`.
pub fn graph_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Utc
            .with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap();
        let clock = EmulatorClock::manual(start);
        assert_eq!(clock.now(), start);
        assert!(clock.advance(Duration::seconds(90)));
        assert_eq!(clock.now(), start + Duration::seconds(90));
        assert!(!EmulatorClock::system().advance(Duration::seconds(1)));
        assert_eq!(graph_time(start), "2026-11-24T09:00:00.000Z");
    }
}
