//! The window a PIM request asks for: a start (or "from approval") and an expiration that is a
//! date, an ISO 8601 duration, or none. Approvers cannot change it (entra-graph.md §2.6), so
//! the console shows it as it is, with its exact end.

use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};

/// An ISO 8601 duration as PIM writes them (`PT4H`, `PT5H30M`, `P7D`, `P1M`), kept as written;
/// years and months are calendar months, so the end is exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoDuration {
    text: String,
    months: u32,
    days: u32,
    millis: u64,
}

impl IsoDuration {
    /// Parses `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`; `None` for anything else (or nothing).
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        let rest = upper.strip_prefix('P')?;
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return None,
            None => (rest, None),
        };
        let (mut months, mut days, mut millis) = (0u64, 0u64, 0u64);
        let mut any = false;
        for (number, unit) in fields(date)? {
            let n: u64 = number.parse().ok()?;
            match unit {
                'Y' => months = months.checked_add(n.checked_mul(12)?)?,
                'M' => months = months.checked_add(n)?,
                'W' => days = days.checked_add(n.checked_mul(7)?)?,
                'D' => days = days.checked_add(n)?,
                _ => return None,
            }
            any = true;
        }
        for (number, unit) in fields(time.unwrap_or(""))? {
            let ms = match unit {
                'H' => number.parse::<u64>().ok()?.checked_mul(3_600_000)?,
                'M' => number.parse::<u64>().ok()?.checked_mul(60_000)?,
                'S' => {
                    let seconds: f64 = number.parse().ok()?;
                    (0.0..1e12)
                        .contains(&seconds)
                        .then(|| (seconds * 1000.0).round() as u64)?
                }
                _ => return None,
            };
            millis = millis.checked_add(ms)?;
            any = true;
        }
        if !any {
            return None;
        }
        Some(Self {
            text: text.trim().to_owned(),
            months: u32::try_from(months).ok()?,
            days: u32::try_from(days).ok()?,
            millis,
        })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `start` plus this duration, calendar months first; `None` past the end of time.
    pub fn after(&self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        start
            .checked_add_months(Months::new(self.months))?
            .checked_add_signed(Duration::days(i64::from(self.days)))?
            .checked_add_signed(Duration::milliseconds(i64::try_from(self.millis).ok()?))
    }
}

/// `4H30M` → `[("4", 'H'), ("30", 'M')]`; `None` when a number has no unit or a unit no number.
fn fields(s: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            if i == start {
                return None;
            }
            out.push((&s[start..i], c));
            start = i + 1;
        } else if !(c.is_ascii_digit() || c == '.' || c == ',') {
            return None;
        }
    }
    (start == s.len()).then_some(out)
}

impl Serialize for IsoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an ISO 8601 duration: {text}")))
    }
}

/// How a requested window ends (`expirationPattern`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Expiration {
    /// `afterDuration`: this long after the start.
    AfterDuration { duration: IsoDuration },
    /// `afterDateTime`: at this instant.
    AfterDateTime {
        #[serde(with = "crate::protocol::time")]
        end: DateTime<Utc>,
    },
    /// `noExpiration`: never (permanent).
    NoExpiration,
    /// `notSpecified`, or a value this build cannot read (kept as written).
    NotSpecified {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<String>,
    },
}

/// The window a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedWindow {
    /// The start asked for; none: from approval.
    #[serde(default, with = "crate::protocol::time::option")]
    pub start: Option<DateTime<Utc>>,
    pub expiration: Expiration,
}

impl RequestedWindow {
    /// When access starts if approved at `approved_at`: the start asked for, or approval.
    pub fn starts(&self, approved_at: DateTime<Utc>) -> DateTime<Utc> {
        self.start.unwrap_or(approved_at)
    }

    /// The exact end if approved at `approved_at`: the date asked for, or the start plus the
    /// duration; `None` when it does not end (or the request does not say).
    pub fn ends(&self, approved_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.expiration {
            Expiration::AfterDateTime { end } => Some(*end),
            Expiration::AfterDuration { duration } => duration.after(self.starts(approved_at)),
            Expiration::NoExpiration | Expiration::NotSpecified { .. } => None,
        }
    }

    /// Whether the end depends on when it is approved (a duration from approval).
    pub fn ends_with_approval(&self) -> bool {
        self.start.is_none() && matches!(self.expiration, Expiration::AfterDuration { .. })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn durations_as_pim_writes_them() {
        let d = |s: &str| IsoDuration::parse(s).map(|d| d.after(at(9, 0)));
        assert_eq!(d("PT4H"), Some(Some(at(13, 0))));
        assert_eq!(d("PT5H30M"), Some(Some(at(14, 30))));
        assert_eq!(d("pt90m"), Some(Some(at(10, 30))));
        assert_eq!(
            d("PT0.5S"),
            Some(Some(at(9, 0) + Duration::milliseconds(500)))
        );
        assert_eq!(d("P7D"), Some(Some(at(9, 0) + Duration::days(7))));
        assert_eq!(d("P1W"), Some(Some(at(9, 0) + Duration::days(7))));
        assert_eq!(
            d("P1M"),
            Some(Some(
                Utc.with_ymd_and_hms(2026, 12, 24, 9, 0, 0)
                    .single()
                    .unwrap()
            ))
        );
        assert_eq!(
            d("P1Y2DT1H"),
            Some(Some(
                Utc.with_ymd_and_hms(2027, 11, 26, 10, 0, 0)
                    .single()
                    .unwrap()
            ))
        );
        for bad in [
            "", "P", "PT", "4H", "PT4", "PTH", "P4H", "PT4D", "PT-1H", "PT1H2", "PXT", "P1.5.5D",
        ] {
            assert_eq!(IsoDuration::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            IsoDuration::parse(" PT4H ").map(|d| d.as_str().to_owned()),
            Some("PT4H".into())
        );
    }

    #[test]
    fn the_exact_end_of_each_kind_of_window() {
        let four_hours = Expiration::AfterDuration {
            duration: IsoDuration::parse("PT4H").unwrap(),
        };
        let from_approval = RequestedWindow {
            start: None,
            expiration: four_hours.clone(),
        };
        assert!(from_approval.ends_with_approval());
        assert_eq!(from_approval.ends(at(10, 15)), Some(at(14, 15)));
        let scheduled = RequestedWindow {
            start: Some(at(12, 0)),
            expiration: four_hours,
        };
        assert!(!scheduled.ends_with_approval());
        assert_eq!(scheduled.ends(at(10, 15)), Some(at(16, 0)));
        let until = RequestedWindow {
            start: None,
            expiration: Expiration::AfterDateTime { end: at(18, 0) },
        };
        assert_eq!(until.ends(at(10, 0)), Some(at(18, 0)));
        let forever = RequestedWindow {
            start: None,
            expiration: Expiration::NoExpiration,
        };
        assert_eq!(forever.ends(at(10, 0)), None);
        let json = serde_json::to_value(&scheduled).unwrap();
        assert_eq!(
            json["expiration"],
            serde_json::json!({"type": "after_duration", "duration": "PT4H"})
        );
        assert_eq!(
            serde_json::from_value::<RequestedWindow>(json).unwrap(),
            scheduled
        );
    }
}
