//! The device authorization grant (RFC 8628): what one poll of the token endpoint finds, and
//! whether the human on the verification page may still approve or deny a code.

use chrono::{DateTime, Duration, Utc};

use super::Refusal;

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Exchanged for tokens (at most once).
    Redeemed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Redeemed => "redeemed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "redeemed" => DeviceStatus::Redeemed,
            _ => return None,
        })
    }
}

/// What a poll of the token endpoint with a device code finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// No such device code (or issued to another client).
    Unknown,
    Expired,
    /// Polled sooner than the interval; the interval is now `interval_seconds`.
    SlowDown {
        interval_seconds: i64,
    },
    Pending,
    Denied,
    /// Already exchanged once: a device code is redeemed at most once.
    AlreadyRedeemed,
    /// Approved and now redeemed by this poll.
    Redeemed {
        sponsor_id: String,
        scope: String,
        /// When the person approved (an ID token's `auth_time`); unknown for a code approved
        /// before the server remembered it.
        approved_at: Option<DateTime<Utc>>,
    },
}

/// The facts about one device authorization a poll needs.
#[derive(Debug, Clone, Copy)]
pub struct PollFacts<'a> {
    pub client_id: &'a str,
    pub status: DeviceStatus,
    pub sponsor_id: Option<&'a str>,
    pub scope: &'a str,
    pub interval_seconds: i64,
    pub expires_at: DateTime<Utc>,
    pub last_polled_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
}

/// One poll by `client_id` at `now`. The caller records `now` as the last poll unless the
/// answer is `Unknown`, `Expired` or `AlreadyRedeemed`, stores the new interval of a
/// `SlowDown`, and marks a `Redeemed` code so it is never exchanged again.
pub fn poll(facts: &PollFacts<'_>, client_id: &str, now: DateTime<Utc>) -> DevicePoll {
    if facts.client_id != client_id {
        return DevicePoll::Unknown;
    }
    if facts.status == DeviceStatus::Redeemed {
        return DevicePoll::AlreadyRedeemed;
    }
    if facts.expires_at <= now {
        return DevicePoll::Expired;
    }
    let too_soon = facts
        .last_polled_at
        .is_some_and(|last| now - last < Duration::seconds(facts.interval_seconds));
    match facts.status {
        // RFC 8628 §3.5: a client that polls too fast must add 5 seconds from now on.
        DeviceStatus::Pending if too_soon => DevicePoll::SlowDown {
            interval_seconds: facts.interval_seconds + 5,
        },
        DeviceStatus::Pending => DevicePoll::Pending,
        DeviceStatus::Denied => DevicePoll::Denied,
        DeviceStatus::Approved => match facts.sponsor_id {
            Some(sponsor_id) => DevicePoll::Redeemed {
                sponsor_id: sponsor_id.to_owned(),
                scope: facts.scope.to_owned(),
                approved_at: facts.approved_at,
            },
            None => DevicePoll::AlreadyRedeemed,
        },
        DeviceStatus::Redeemed => DevicePoll::AlreadyRedeemed,
    }
}

/// Whether the human may still approve or deny a code in `status` that expires at
/// `expires_at`.
pub fn may_decide(
    status: DeviceStatus,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if expires_at <= now {
        return Err(Refusal::conflict("expired_token", "this code has expired"));
    }
    if status != DeviceStatus::Pending {
        return Err(Refusal::conflict(
            "already_decided",
            "this code has already been used",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    fn facts(status: DeviceStatus, last: Option<i64>) -> PollFacts<'static> {
        PollFacts {
            client_id: "console",
            status,
            sponsor_id: Some("s1"),
            scope: "openid",
            interval_seconds: 5,
            expires_at: t(600),
            last_polled_at: last.map(t),
            approved_at: Some(t(1)),
        }
    }

    #[test]
    fn polls_one_by_one() {
        let pending = facts(DeviceStatus::Pending, Some(0));
        assert_eq!(poll(&pending, "other", t(10)), DevicePoll::Unknown);
        assert_eq!(poll(&pending, "console", t(10)), DevicePoll::Pending);
        assert_eq!(
            poll(&pending, "console", t(4)),
            DevicePoll::SlowDown {
                interval_seconds: 10
            }
        );
        assert_eq!(poll(&pending, "console", t(600)), DevicePoll::Expired);
        assert_eq!(
            poll(&facts(DeviceStatus::Denied, Some(0)), "console", t(1)),
            DevicePoll::Denied
        );
        assert_eq!(
            poll(&facts(DeviceStatus::Approved, Some(0)), "console", t(1)),
            DevicePoll::Redeemed {
                sponsor_id: "s1".into(),
                scope: "openid".into(),
                approved_at: Some(t(1)),
            }
        );
        assert_eq!(
            poll(&facts(DeviceStatus::Redeemed, None), "console", t(900)),
            DevicePoll::AlreadyRedeemed
        );
    }

    #[test]
    fn deciding_a_code() {
        assert!(may_decide(DeviceStatus::Pending, t(10), t(0)).is_ok());
        let code = |r: Result<(), Refusal>| r.err().map_or("ok", |e| e.code());
        assert_eq!(
            code(may_decide(DeviceStatus::Pending, t(10), t(10))),
            "expired_token"
        );
        assert_eq!(
            code(may_decide(DeviceStatus::Denied, t(10), t(0))),
            "already_decided"
        );
    }
}
