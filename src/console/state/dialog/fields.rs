//! The fields a dialog is made of: a duration choice capped by policy, check lists, text
//! fields with their rule, and the errors that keep a dialog from confirming.

use std::fmt;

use super::super::human_duration;

/// Duration presets of the decide dialog, in seconds.
pub const PRESETS: [(i64, &str); 4] = [(900, "15m"), (3600, "1h"), (14_400, "4h"), (28_800, "8h")];

const TEXT_LIMIT: usize = 4096;
pub(super) const CUSTOM_LIMIT: usize = 32;
const COUNT_LIMIT: usize = 8;

/// Names a field, so that the action can read it and errors can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldId {
    Justification,
    Reason,
    Count,
    Capabilities,
    Security,
}

impl fmt::Display for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldId::Justification => "justification",
            FieldId::Reason => "reason",
            FieldId::Count => "count",
            FieldId::Capabilities => "capability",
            FieldId::Security => "security",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("type a duration such as 45m or 2h")]
    Unreadable,
    #[error("too long")]
    Overflow,
    #[error("at least one minute")]
    TooShort,
    #[error("at most {}", human_duration(*max))]
    TooLong { max: i64 },
}

/// Why confirming was refused; the dialog stays open and shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("duration: {0}")]
    Duration(DurationError),
    #[error("keep at least one {0}")]
    NothingChosen(FieldId),
    #[error("a {0} is required")]
    Required(FieldId),
    #[error("type {0} to confirm how many agents stop")]
    Count(usize),
}

/// Duration presets capped at `max_seconds`, or a typed custom duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationField {
    /// Index into `PRESETS`, or `PRESETS.len()` for custom.
    pub chosen: usize,
    pub custom: String,
    pub max_seconds: i64,
}

impl DurationField {
    /// Chosen at exactly `max_seconds` (what was asked, capped by policy): its preset if it is
    /// one, else a custom duration of it. Never silently something else.
    pub fn new(max_seconds: i64) -> Self {
        let chosen = (0..PRESETS.len())
            .find(|i| PRESETS[*i].0 == max_seconds)
            .unwrap_or(PRESETS.len());
        let mut field = Self {
            chosen,
            custom: String::new(),
            max_seconds,
        };
        field.fill_custom();
        field
    }

    pub fn is_custom(&self) -> bool {
        self.chosen == PRESETS.len()
    }

    pub fn allowed(&self, i: usize) -> bool {
        PRESETS.get(i).is_none_or(|p| p.0 <= self.max_seconds)
    }

    /// The duration chosen, if valid.
    pub fn seconds(&self) -> Result<i64, DurationError> {
        let secs = match PRESETS.get(self.chosen) {
            Some((secs, _)) => *secs,
            None => {
                let d = humantime::parse_duration(self.custom.trim())
                    .map_err(|_| DurationError::Unreadable)?;
                i64::try_from(d.as_secs()).map_err(|_| DurationError::Overflow)?
            }
        };
        if secs < 60 {
            return Err(DurationError::TooShort);
        }
        if secs > self.max_seconds {
            return Err(DurationError::TooLong {
                max: self.max_seconds,
            });
        }
        Ok(secs)
    }

    /// The next (or previous) allowed choice; custom is always allowed.
    pub(super) fn step(&mut self, back: bool) {
        let n = PRESETS.len() + 1;
        for _ in 0..n {
            self.chosen = if back {
                (self.chosen + n - 1) % n
            } else {
                (self.chosen + 1) % n
            };
            if self.allowed(self.chosen) {
                break;
            }
        }
        self.fill_custom();
    }

    pub(super) fn pick(&mut self, i: usize) -> Result<(), DurationError> {
        if !self.allowed(i) {
            return Err(DurationError::TooLong {
                max: self.max_seconds,
            });
        }
        self.chosen = i.min(PRESETS.len());
        self.fill_custom();
        Ok(())
    }

    /// Custom starts from the maximum, so it only needs shortening.
    fn fill_custom(&mut self) {
        if self.is_custom() && self.custom.is_empty() {
            self.custom = human_duration(self.max_seconds);
        }
    }
}

/// A list of things to tick, under an optional heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    pub id: FieldId,
    pub heading: Option<&'static str>,
    pub items: Vec<(String, bool)>,
    /// Confirming needs at least one ticked.
    pub at_least_one: bool,
}

/// What a text field must hold for the dialog to confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Required,
    /// Exactly this number (how many agents stop).
    Count(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextField {
    pub id: FieldId,
    pub label: String,
    pub value: String,
    pub rule: Rule,
}

impl TextField {
    pub fn new(id: FieldId, label: impl Into<String>, rule: Rule) -> Self {
        Self {
            id,
            label: label.into(),
            value: String::new(),
            rule,
        }
    }

    pub(super) fn limit(&self) -> usize {
        match self.rule {
            Rule::Required => TEXT_LIMIT,
            Rule::Count(_) => COUNT_LIMIT,
        }
    }

    pub(super) fn check(&self) -> Result<(), DialogError> {
        match self.rule {
            Rule::Required if self.value.trim().is_empty() => Err(DialogError::Required(self.id)),
            Rule::Count(n) if self.value.trim() != n.to_string() => Err(DialogError::Count(n)),
            _ => Ok(()),
        }
    }
}
