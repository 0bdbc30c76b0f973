//! The dialogs: the form each keeps, and the keys each handles. Every dialog opens on Cancel
//! and only confirming submits.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Effect, Modal, State, human_duration};
use crate::protocol::requests::{Decision, DecisionBody};

/// Where the focus is in a dialog. Every dialog opens on `Cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Presets,
    Custom,
    Capability(usize),
    Text,
    Toggle,
    Cancel,
    Confirm,
}

/// Duration presets of the decide dialog, in seconds.
pub const PRESETS: [(i64, &str); 4] = [(900, "15m"), (3600, "1h"), (14_400, "4h"), (28_800, "8h")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecideForm {
    pub request_id: String,
    pub agent: String,
    pub grantee: String,
    /// min(requested, policy max).
    pub max_seconds: i64,
    /// Index into `PRESETS`, or `PRESETS.len()` for custom.
    pub preset: usize,
    pub custom: String,
    pub capabilities: Vec<(String, bool)>,
    pub justification: String,
    pub focus: Focus,
    pub error: Option<String>,
}

impl DecideForm {
    /// The duration chosen, if valid.
    pub fn seconds(&self) -> Result<i64, String> {
        let secs = if self.preset < PRESETS.len() {
            PRESETS[self.preset].0
        } else {
            let d = humantime::parse_duration(self.custom.trim())
                .map_err(|_| "type a duration such as 45m or 2h".to_owned())?;
            i64::try_from(d.as_secs()).map_err(|_| "too long".to_owned())?
        };
        if secs < 60 {
            return Err("at least one minute".into());
        }
        if secs > self.max_seconds {
            return Err(format!("at most {}", human_duration(self.max_seconds)));
        }
        Ok(secs)
    }

    pub fn chosen(&self) -> Vec<String> {
        self.capabilities
            .iter()
            .filter(|(_, on)| *on)
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn preset_allowed(&self, i: usize) -> bool {
        i >= PRESETS.len() || PRESETS[i].0 <= self.max_seconds
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonKind {
    Deny,
    Reactivate,
    RevokeGrant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonForm {
    pub kind: ReasonKind,
    /// Request ids (deny), a DID (reactivate) or a grant id.
    pub targets: Vec<String>,
    pub title: String,
    pub reason: String,
    pub focus: Focus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendForm {
    pub did: String,
    pub name: String,
    pub reason: String,
    pub security: bool,
    /// What the suspension will revoke, as far as the console knows.
    pub consequences: Vec<String>,
    pub focus: Focus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendAllForm {
    pub count: usize,
    pub typed: String,
    pub reason: String,
    pub focus: Focus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkApproveForm {
    pub request_ids: Vec<String>,
    pub lines: Vec<String>,
    pub justification: String,
    pub focus: Focus,
    pub error: Option<String>,
}

fn is_text_input(focus: Focus) -> bool {
    matches!(focus, Focus::Text | Focus::Custom)
}

impl State {
    /// Common text editing of a focused input.
    fn edit(text: &mut String, key: &KeyEvent, limit: usize) -> bool {
        match key.code {
            KeyCode::Backspace => {
                text.pop();
                true
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.len() < limit && !c.is_control() {
                    text.push(c);
                }
                true
            }
            _ => false,
        }
    }

    pub(super) fn on_decide_key(&mut self, key: KeyEvent, mut form: DecideForm) -> Vec<Effect> {
        let order: Vec<Focus> = std::iter::once(Focus::Presets)
            .chain((form.preset == PRESETS.len()).then_some(Focus::Custom))
            .chain((0..form.capabilities.len()).map(Focus::Capability))
            .chain([Focus::Text, Focus::Cancel, Focus::Confirm])
            .collect();
        // Keys only this dialog has: arrows between fields outside text, presets, toggles.
        match key.code {
            KeyCode::Down | KeyCode::Up if !is_text_input(form.focus) => {
                form.focus = cycle(form.focus, &order, key.code == KeyCode::Up);
                return self.keep(Modal::Decide(form));
            }
            KeyCode::Left | KeyCode::Right if form.focus == Focus::Presets => {
                let n = PRESETS.len() + 1;
                let mut next = form.preset;
                for _ in 0..n {
                    next = if key.code == KeyCode::Right {
                        (next + 1) % n
                    } else {
                        (next + n - 1) % n
                    };
                    if form.preset_allowed(next) {
                        break;
                    }
                }
                form.preset = next;
                if form.preset == PRESETS.len() && form.custom.is_empty() {
                    form.custom = human_duration(form.max_seconds);
                }
                return self.keep(Modal::Decide(form));
            }
            KeyCode::Char(' ') if matches!(form.focus, Focus::Capability(_)) => {
                if let Focus::Capability(i) = form.focus {
                    if let Some(c) = form.capabilities.get_mut(i) {
                        c.1 = !c.1;
                    }
                }
                return self.keep(Modal::Decide(form));
            }
            _ => {}
        }
        match navigate(&key, &mut form.focus, &order) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::Decide(form)),
            Nav::Other => {
                match form.focus {
                    Focus::Text => Self::edit(&mut form.justification, &key, 4096),
                    Focus::Custom => Self::edit(&mut form.custom, &key, 32),
                    _ => false,
                };
                self.keep(Modal::Decide(form))
            }
            Nav::Submit => {
                let seconds = form.seconds();
                let caps = form.chosen();
                let error = match (
                    &seconds,
                    caps.is_empty(),
                    form.justification.trim().is_empty(),
                ) {
                    (Err(e), _, _) => Some(format!("duration: {e}")),
                    (_, true, _) => Some("keep at least one capability".to_owned()),
                    (_, _, true) => Some("a justification is required".to_owned()),
                    _ => None,
                };
                if let Some(e) = error {
                    form.error = Some(e);
                    self.replace_top(Modal::Decide(form));
                    return Vec::new();
                }
                self.modals
                    .retain(|m| !matches!(m, Modal::Decide(_) | Modal::Detail { .. }));
                let all = caps.len() == form.capabilities.len();
                vec![Effect::Decide {
                    id: form.request_id,
                    body: DecisionBody {
                        decision: Decision::Approve,
                        duration_seconds: seconds.ok(),
                        capabilities: (!all).then_some(caps),
                        justification: form.justification,
                    },
                }]
            }
        }
    }

    /// Puts the edited dialog back with its error cleared.
    fn keep(&mut self, mut modal: Modal) -> Vec<Effect> {
        match &mut modal {
            Modal::Decide(f) => f.error = None,
            Modal::Reason(f) => f.error = None,
            Modal::Suspend(f) => f.error = None,
            Modal::SuspendAll(f) => f.error = None,
            Modal::BulkApprove(f) => f.error = None,
            _ => {}
        }
        self.replace_top(modal);
        Vec::new()
    }

    fn close_dialog(&mut self) -> Vec<Effect> {
        self.modals.pop();
        Vec::new()
    }

    pub(super) fn on_reason_key(&mut self, key: KeyEvent, mut form: ReasonForm) -> Vec<Effect> {
        match navigate(
            &key,
            &mut form.focus,
            &[Focus::Text, Focus::Cancel, Focus::Confirm],
        ) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::Reason(form)),
            Nav::Other => {
                if form.focus == Focus::Text {
                    Self::edit(&mut form.reason, &key, 4096);
                }
                self.keep(Modal::Reason(form))
            }
            Nav::Submit => {
                if form.reason.trim().is_empty() {
                    form.error = Some("a reason is required".into());
                    self.replace_top(Modal::Reason(form));
                    return Vec::new();
                }
                self.modals
                    .retain(|m| !matches!(m, Modal::Reason(_) | Modal::Detail { .. }));
                let reason = form.reason;
                match form.kind {
                    ReasonKind::Deny => {
                        self.marks.clear();
                        form.targets
                            .into_iter()
                            .map(|id| Effect::Decide {
                                id,
                                body: DecisionBody {
                                    decision: Decision::Deny,
                                    duration_seconds: None,
                                    capabilities: None,
                                    justification: reason.clone(),
                                },
                            })
                            .collect()
                    }
                    ReasonKind::Reactivate => form
                        .targets
                        .into_iter()
                        .map(|did| Effect::Reactivate {
                            did,
                            reason: reason.clone(),
                        })
                        .collect(),
                    ReasonKind::RevokeGrant => form
                        .targets
                        .into_iter()
                        .map(|id| Effect::RevokeGrant {
                            id,
                            reason: reason.clone(),
                        })
                        .collect(),
                }
            }
        }
    }

    pub(super) fn on_suspend_key(&mut self, key: KeyEvent, mut form: SuspendForm) -> Vec<Effect> {
        if key.code == KeyCode::Char(' ') && form.focus == Focus::Toggle {
            form.security = !form.security;
            return self.keep(Modal::Suspend(form));
        }
        let order = [Focus::Text, Focus::Toggle, Focus::Cancel, Focus::Confirm];
        match navigate(&key, &mut form.focus, &order) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::Suspend(form)),
            Nav::Other => {
                if form.focus == Focus::Text {
                    Self::edit(&mut form.reason, &key, 4096);
                }
                self.keep(Modal::Suspend(form))
            }
            Nav::Submit => {
                if form.reason.trim().is_empty() {
                    form.error = Some("a reason is required".into());
                    self.replace_top(Modal::Suspend(form));
                    return Vec::new();
                }
                self.modals
                    .retain(|m| !matches!(m, Modal::Suspend(_) | Modal::Detail { .. }));
                vec![Effect::Suspend {
                    did: form.did,
                    reason: form.reason,
                    security: form.security,
                }]
            }
        }
    }

    pub(super) fn on_suspend_all_key(
        &mut self,
        key: KeyEvent,
        mut form: SuspendAllForm,
    ) -> Vec<Effect> {
        let order = [Focus::Custom, Focus::Text, Focus::Cancel, Focus::Confirm];
        match navigate(&key, &mut form.focus, &order) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::SuspendAll(form)),
            Nav::Other => {
                match form.focus {
                    Focus::Custom => Self::edit(&mut form.typed, &key, 8),
                    Focus::Text => Self::edit(&mut form.reason, &key, 4096),
                    _ => false,
                };
                self.keep(Modal::SuspendAll(form))
            }
            Nav::Submit => {
                let error = if form.typed.trim() != form.count.to_string() {
                    Some(format!(
                        "type {} to confirm how many agents stop",
                        form.count
                    ))
                } else if form.reason.trim().is_empty() {
                    Some("a reason is required".into())
                } else {
                    None
                };
                if let Some(e) = error {
                    form.error = Some(e);
                    self.replace_top(Modal::SuspendAll(form));
                    return Vec::new();
                }
                self.modals.pop();
                vec![Effect::SuspendAll {
                    reason: form.reason,
                    expected: form.count,
                }]
            }
        }
    }

    pub(super) fn on_bulk_key(&mut self, key: KeyEvent, mut form: BulkApproveForm) -> Vec<Effect> {
        match navigate(
            &key,
            &mut form.focus,
            &[Focus::Text, Focus::Cancel, Focus::Confirm],
        ) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::BulkApprove(form)),
            Nav::Other => {
                if form.focus == Focus::Text {
                    Self::edit(&mut form.justification, &key, 4096);
                }
                self.keep(Modal::BulkApprove(form))
            }
            Nav::Submit => {
                if form.justification.trim().is_empty() {
                    form.error = Some("a justification is required".into());
                    self.replace_top(Modal::BulkApprove(form));
                    return Vec::new();
                }
                self.modals.pop();
                self.marks.clear();
                form.request_ids
                    .into_iter()
                    .map(|id| Effect::Decide {
                        id,
                        body: DecisionBody {
                            decision: Decision::Approve,
                            duration_seconds: None,
                            capabilities: None,
                            justification: form.justification.clone(),
                        },
                    })
                    .collect()
            }
        }
    }
}

/// What a key did to a dialog.
enum Nav {
    /// Esc, or Enter on Cancel.
    Close,
    /// Enter on Confirm.
    Submit,
    /// The focus moved.
    Handled,
    /// Not navigation: the focused field gets the key.
    Other,
}

/// The keys every dialog shares: Tab and Shift-Tab move through `order`, ←/→ switch between
/// the buttons, Enter activates the focused button (or moves on from a field), Esc cancels.
fn navigate(key: &KeyEvent, focus: &mut Focus, order: &[Focus]) -> Nav {
    match key.code {
        KeyCode::Esc => Nav::Close,
        KeyCode::Tab => {
            *focus = cycle(*focus, order, false);
            Nav::Handled
        }
        KeyCode::BackTab => {
            *focus = cycle(*focus, order, true);
            Nav::Handled
        }
        KeyCode::Left | KeyCode::Right if matches!(*focus, Focus::Cancel | Focus::Confirm) => {
            *focus = if *focus == Focus::Cancel {
                Focus::Confirm
            } else {
                Focus::Cancel
            };
            Nav::Handled
        }
        KeyCode::Enter => match *focus {
            Focus::Cancel => Nav::Close,
            Focus::Confirm => Nav::Submit,
            _ => {
                *focus = cycle(*focus, order, false);
                Nav::Handled
            }
        },
        _ => Nav::Other,
    }
}

/// The next (or previous) focus in `order`.
fn cycle(focus: Focus, order: &[Focus], back: bool) -> Focus {
    let pos = order.iter().position(|f| *f == focus).unwrap_or(0);
    if back {
        order[(pos + order.len() - 1) % order.len()]
    } else {
        order[(pos + 1) % order.len()]
    }
}
