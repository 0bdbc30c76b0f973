//! The one dialog model. A dialog is data: a title, rows (text, a duration choice, check
//! lists, text fields), two buttons, and the action that confirming produces. One update
//! function handles the keys of every dialog, from the keymap; opening a dialog does nothing
//! at the server, only confirming does.

mod fields;
#[cfg(test)]
mod tests;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::Effect;
use crate::console::keymap::{Command, Context, Keymap};
use crate::domain::entra::{EntraApproval, RequestedWindow};
use crate::protocol::actions::ActionDecisionBody;
use crate::protocol::requests::{Decision, DecisionBody};
use fields::CUSTOM_LIMIT;
pub use fields::{
    Checks, DialogError, DurationError, DurationField, FieldId, PRESETS, Rule, TextField,
};

/// What confirming a dialog does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    /// One request, for the chosen duration and capabilities.
    Approve {
        request_id: String,
    },
    /// Marked requests, each as asked (capped by policy).
    ApproveMarked {
        request_ids: Vec<String>,
    },
    Deny {
        request_ids: Vec<String>,
    },
    Suspend {
        did: String,
    },
    /// Every active agent of mine; the server refuses unless exactly `count` would stop.
    SuspendAll {
        count: usize,
    },
    Reactivate {
        did: String,
    },
    RevokeGrant {
        id: String,
    },
    /// An Entra approval, decided in Graph for the window it asked for.
    DecideEntra {
        approval: Box<EntraApproval>,
        decision: Decision,
    },
    /// An action request, for one execution: no duration, nothing to narrow.
    DecideAction {
        id: String,
        decision: Decision,
    },
}

impl Confirm {
    /// Acting on marked requests uses the marks up.
    pub fn clears_marks(&self) -> bool {
        matches!(self, Confirm::Deny { .. } | Confirm::ApproveMarked { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// Text as it is.
    Line(String),
    /// Dim text saying what follows.
    Heading(String),
    /// One item of a list.
    Bullet(String),
    Blank,
    Duration(DurationField),
    Checks(Checks),
    Text(TextField),
    /// Exactly what approving grants, to whom, until when: drawn from the duration and checks.
    GrantSummary {
        grantee: String,
        did: String,
    },
    /// An Entra request's window, fixed: from when, the exact end if approved now, how long.
    EntraWindow(RequestedWindow),
}

/// Where the keys go. `item` is the preset row (0) or the custom text (1) of a duration, or
/// the n-th entry of a check list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Field { row: usize, item: usize },
    Cancel,
    Confirm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub title: String,
    pub rows: Vec<Row>,
    pub confirm_label: String,
    pub focus: Focus,
    pub error: Option<DialogError>,
    pub action: Confirm,
}

/// What a key did to a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Stay,
    Close,
    /// Valid and confirmed: the caller takes the dialog and runs `effects`.
    Confirmed,
}

/// A key that types a character (modifiers other than ctrl type too, as before).
fn printable(key: &KeyEvent) -> Option<char> {
    match key.code {
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) && !c.is_control() => {
            Some(c)
        }
        _ => None,
    }
}

fn push(text: &mut String, c: char, limit: usize) {
    if text.len() < limit {
        text.push(c);
    }
}

impl Dialog {
    /// Every dialog here changes something at the server, so each opens on Cancel.
    pub fn new(
        title: impl Into<String>,
        rows: Vec<Row>,
        confirm_label: impl Into<String>,
        action: Confirm,
    ) -> Self {
        Self {
            title: title.into(),
            rows,
            confirm_label: confirm_label.into(),
            focus: Focus::Cancel,
            error: None,
            action,
        }
    }

    /// The places focus visits, in order.
    pub fn stops(&self) -> Vec<Focus> {
        let mut stops = Vec::new();
        for (row, r) in self.rows.iter().enumerate() {
            let items = match r {
                Row::Duration(d) => 1 + usize::from(d.is_custom()),
                Row::Checks(c) => c.items.len(),
                Row::Text(_) => 1,
                _ => 0,
            };
            stops.extend((0..items).map(|item| Focus::Field { row, item }));
        }
        stops.extend([Focus::Cancel, Focus::Confirm]);
        stops
    }

    pub fn duration(&self) -> Option<&DurationField> {
        self.rows.iter().find_map(|r| match r {
            Row::Duration(d) => Some(d),
            _ => None,
        })
    }

    pub fn checks(&self, id: FieldId) -> Option<&Checks> {
        self.rows.iter().find_map(|r| match r {
            Row::Checks(c) if c.id == id => Some(c),
            _ => None,
        })
    }

    /// The ticked entries of a check list.
    pub fn checked(&self, id: FieldId) -> Vec<String> {
        self.checks(id)
            .map(|c| {
                c.items
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(label, _)| label.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn text(&self, id: FieldId) -> &str {
        self.rows
            .iter()
            .find_map(|r| match r {
                Row::Text(t) if t.id == id => Some(t.value.as_str()),
                _ => None,
            })
            .unwrap_or("")
    }

    /// The text under the focus, with its length limit.
    fn focused_text(&mut self) -> Option<(&mut String, usize)> {
        let Focus::Field { row, item } = self.focus else {
            return None;
        };
        match (self.rows.get_mut(row)?, item) {
            (Row::Text(t), 0) => {
                let limit = t.limit();
                Some((&mut t.value, limit))
            }
            (Row::Duration(d), 1) => Some((&mut d.custom, CUSTOM_LIMIT)),
            _ => None,
        }
    }

    /// Handles one key. Typing always reaches a text field: on a text field it types; anywhere
    /// else a character no dialog key claims moves the focus to the first text field and types
    /// there (before, it was lost).
    pub fn on_key(&mut self, key: &KeyEvent, keymap: &Keymap) -> Step {
        self.error = None;
        let typed = printable(key);
        if let Some((text, limit)) = self.focused_text() {
            if let Some(c) = typed {
                push(text, c, limit);
                return Step::Stay;
            }
            if key.code == KeyCode::Backspace {
                text.pop();
                return Step::Stay;
            }
        }
        match keymap.lookup(key, Context::Dialog) {
            Some(Command::Cancel) => return Step::Close,
            Some(Command::Activate) => match self.focus {
                Focus::Cancel => return Step::Close,
                Focus::Confirm => return self.submit(),
                // Enter on the last field goes to Confirm, not to Cancel: one more Enter
                // confirms, so a decision is the reason, Enter, Enter.
                Focus::Field { .. } if self.on_last_field() => self.focus = Focus::Confirm,
                Focus::Field { .. } => self.move_focus(false),
            },
            Some(Command::NextField) => self.move_focus(false),
            Some(Command::PreviousField) => self.move_focus(true),
            Some(Command::PreviousChoice) => self.step_choice(true),
            Some(Command::NextChoice) => self.step_choice(false),
            Some(Command::Toggle) if self.toggle() => {}
            Some(Command::Preset(i)) if self.duration().is_some() => self.pick(usize::from(i)),
            _ => {
                if let Some(c) = typed {
                    self.type_into_first_text(c);
                }
            }
        }
        Step::Stay
    }

    /// Whether the focus is on the last field before the buttons.
    fn on_last_field(&self) -> bool {
        let stops = self.stops();
        let last_field = stops
            .iter()
            .rev()
            .find(|f| matches!(f, Focus::Field { .. }));
        last_field == Some(&self.focus)
    }

    fn move_focus(&mut self, back: bool) {
        let stops = self.stops();
        let pos = stops.iter().position(|f| *f == self.focus).unwrap_or(0);
        let n = stops.len();
        let next = if back {
            (pos + n - 1) % n
        } else {
            (pos + 1) % n
        };
        if let Some(f) = stops.get(next) {
            self.focus = *f;
        }
    }

    /// ←/→: through the presets, or between the buttons.
    fn step_choice(&mut self, back: bool) {
        match self.focus {
            Focus::Cancel => self.focus = Focus::Confirm,
            Focus::Confirm => self.focus = Focus::Cancel,
            Focus::Field { row, item: 0 } => {
                if let Some(Row::Duration(d)) = self.rows.get_mut(row) {
                    d.step(back);
                }
            }
            Focus::Field { .. } => {}
        }
    }

    /// Ticks the focused check; false when the focus is not on one.
    fn toggle(&mut self) -> bool {
        let Focus::Field { row, item } = self.focus else {
            return false;
        };
        match self.rows.get_mut(row) {
            Some(Row::Checks(c)) => match c.items.get_mut(item) {
                Some(entry) => {
                    entry.1 = !entry.1;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn pick(&mut self, i: usize) {
        for row in &mut self.rows {
            if let Row::Duration(d) = row {
                if let Err(e) = d.pick(i) {
                    self.error = Some(DialogError::Duration(e));
                }
                return;
            }
        }
    }

    fn type_into_first_text(&mut self, c: char) {
        let first = self.rows.iter().position(|r| matches!(r, Row::Text(_)));
        if let Some(row) = first {
            self.focus = Focus::Field { row, item: 0 };
            if let Some((text, limit)) = self.focused_text() {
                push(text, c, limit);
            }
        }
    }

    /// Every field's rule, in the order the fields are shown.
    pub fn validate(&self) -> Result<(), DialogError> {
        for row in &self.rows {
            match row {
                Row::Duration(d) => {
                    d.seconds().map_err(DialogError::Duration)?;
                }
                Row::Checks(c) if c.at_least_one && c.items.iter().all(|(_, on)| !on) => {
                    return Err(DialogError::NothingChosen(c.id));
                }
                Row::Text(t) => t.check()?,
                _ => {}
            }
        }
        Ok(())
    }

    fn submit(&mut self) -> Step {
        match self.validate() {
            Ok(()) => Step::Confirmed,
            Err(e) => {
                self.error = Some(e);
                Step::Stay
            }
        }
    }

    /// What confirming does, from the action and the fields' values.
    pub fn effects(&self) -> Vec<Effect> {
        let decide = |id: &String, decision: Decision, justification: &str| Effect::Decide {
            id: id.clone(),
            body: DecisionBody {
                decision,
                duration_seconds: None,
                capabilities: None,
                justification: justification.to_owned(),
            },
        };
        match &self.action {
            Confirm::Approve { request_id } => {
                let chosen = self.checked(FieldId::Capabilities);
                let all = self
                    .checks(FieldId::Capabilities)
                    .is_none_or(|c| c.items.len() == chosen.len());
                vec![Effect::Decide {
                    id: request_id.clone(),
                    body: DecisionBody {
                        decision: Decision::Approve,
                        duration_seconds: self.duration().and_then(|d| d.seconds().ok()),
                        capabilities: (!all).then_some(chosen),
                        justification: self.text(FieldId::Justification).to_owned(),
                    },
                }]
            }
            Confirm::ApproveMarked { request_ids } => request_ids
                .iter()
                .map(|id| decide(id, Decision::Approve, self.text(FieldId::Justification)))
                .collect(),
            Confirm::Deny { request_ids } => request_ids
                .iter()
                .map(|id| decide(id, Decision::Deny, self.text(FieldId::Reason)))
                .collect(),
            Confirm::Suspend { did } => vec![Effect::Suspend {
                did: did.clone(),
                reason: self.text(FieldId::Reason).to_owned(),
                security: !self.checked(FieldId::Security).is_empty(),
            }],
            Confirm::SuspendAll { count } => vec![Effect::SuspendAll {
                reason: self.text(FieldId::Reason).to_owned(),
                expected: *count,
            }],
            Confirm::Reactivate { did } => vec![Effect::Reactivate {
                did: did.clone(),
                reason: self.text(FieldId::Reason).to_owned(),
            }],
            Confirm::RevokeGrant { id } => vec![Effect::RevokeGrant {
                id: id.clone(),
                reason: self.text(FieldId::Reason).to_owned(),
            }],
            Confirm::DecideEntra { approval, decision } => vec![Effect::DecideEntra {
                approval: approval.clone(),
                decision: *decision,
                justification: self.text(FieldId::Justification).to_owned(),
            }],
            Confirm::DecideAction { id, decision } => vec![Effect::DecideAction {
                id: id.clone(),
                body: ActionDecisionBody {
                    decision: *decision,
                    justification: self.text(FieldId::Justification).to_owned(),
                },
            }],
        }
    }
}

/// The dialogs that need only a reason: deny, reactivate, revoke a grant.
pub fn reason(title: impl Into<String>, action: Confirm) -> Dialog {
    Dialog::new(
        title,
        vec![
            Row::Text(TextField::new(FieldId::Reason, "Reason", Rule::Required)),
            Row::Blank,
        ],
        "Confirm",
        action,
    )
}
