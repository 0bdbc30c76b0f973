//! Trust: a score of 0–1000 (default 500) in AGT's tiers, moved by events and decaying by 2
//! points per idle hour (since the last positive signal) down to a floor of 100. Decay is
//! computed from `now`, never by a background job, so it is exact whoever looks and when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SCORE: i64 = 500;
pub const MAX_SCORE: i64 = 1000;
pub const DECAY_FLOOR: i64 = 100;
pub const DECAY_PER_IDLE_HOUR: i64 = 2;
/// A suspended agent's score is capped here, below `probationary`.
pub const SUSPENSION_CAP: i64 = 299;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Untrusted,
    Probationary,
    Standard,
    Trusted,
    VerifiedPartner,
}

impl Tier {
    pub fn of(score: i64) -> Self {
        match score {
            s if s >= 900 => Tier::VerifiedPartner,
            s if s >= 700 => Tier::Trusted,
            s if s >= 500 => Tier::Standard,
            s if s >= 300 => Tier::Probationary,
            _ => Tier::Untrusted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::VerifiedPartner => "verified_partner",
            Tier::Trusted => "trusted",
            Tier::Standard => "standard",
            Tier::Probationary => "probationary",
            Tier::Untrusted => "untrusted",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The score after idle decay: 2 points per whole hour since `last_positive_at`, never taking
/// it below 100 (a score already below 100 does not decay).
pub fn decayed(score: i64, last_positive_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let idle_hours = (now - last_positive_at).num_hours().max(0);
    let decay = idle_hours.saturating_mul(DECAY_PER_IDLE_HOUR);
    score - decay.min((score - DECAY_FLOOR).max(0))
}

/// Applies an event's `delta` to a score, clamped to 0–1000.
pub fn apply(score: i64, delta: i64) -> i64 {
    (score + delta).clamp(0, MAX_SCORE)
}

/// An agent put back in service starts at no less than `floor` (the policy's minimum trust to
/// request), so it is not stuck below it by the cap it had while out of service.
pub fn on_reactivation(score: i64, floor: i64) -> i64 {
    score.max(floor)
}

/// An agent taken out of service keeps its score only below probationary.
pub fn out_of_service(score: i64) -> i64 {
    score.min(SUSPENSION_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn tiers_are_inclusive_at_thresholds() {
        assert_eq!(Tier::of(900), Tier::VerifiedPartner);
        assert_eq!(Tier::of(899), Tier::Trusted);
        assert_eq!(Tier::of(700), Tier::Trusted);
        assert_eq!(Tier::of(500), Tier::Standard);
        assert_eq!(Tier::of(499), Tier::Probationary);
        assert_eq!(Tier::of(300), Tier::Probationary);
        assert_eq!(Tier::of(299), Tier::Untrusted);
    }

    #[test]
    fn decay_is_two_points_per_idle_hour_to_a_floor_of_100() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(decayed(500, t0, t0 + Duration::minutes(59)), 500);
        assert_eq!(decayed(500, t0, t0 + Duration::hours(1)), 498);
        assert_eq!(decayed(500, t0, t0 + Duration::hours(24)), 452);
        assert_eq!(decayed(500, t0, t0 + Duration::days(365)), 100);
        assert_eq!(decayed(80, t0, t0 + Duration::days(365)), 80);
        assert_eq!(decayed(500, t0, t0 - Duration::hours(5)), 500);
    }

    #[test]
    fn events_clamp() {
        assert_eq!(apply(995, 10), 1000);
        assert_eq!(apply(10, -50), 0);
    }
}
