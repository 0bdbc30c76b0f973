//! Keys and commands: dialogs and inputs take keys first; the rest go through the keymap to
//! one `Command`, which this dispatches (moving, switching screens, opening dialogs).

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use super::{Effect, Modal, PAGE, Screen, State, dialog};
use crate::console::keymap::Command;

impl State {
    pub(super) fn on_key(&mut self, key: KeyEvent, now: DateTime<Utc>) -> Vec<Effect> {
        // Dialogs and inputs take keys first.
        match self.modals.last() {
            Some(Modal::Help) => return self.on_help_key(&key),
            Some(Modal::Filter(_)) => return self.on_filter_key(&key),
            Some(Modal::CommandLine(_)) => return self.on_command_line_key(&key, now),
            Some(Modal::Dialog(_)) => return self.on_dialog_key(&key),
            Some(Modal::Detail { .. }) | None => {}
        }
        let Some(command) = self.keymap.lookup(&key, self.context()) else {
            return Vec::new();
        };
        self.on_command(command, now)
    }

    /// The generic dialog update; confirming closes the dialog (and the detail under it) and
    /// produces exactly the dialog's action.
    pub(super) fn on_dialog_key(&mut self, key: &KeyEvent) -> Vec<Effect> {
        let Some(Modal::Dialog(dialog)) = self.modals.last_mut() else {
            return Vec::new();
        };
        match dialog.on_key(key, &self.keymap) {
            dialog::Step::Stay => Vec::new(),
            dialog::Step::Close => {
                self.modals.pop();
                Vec::new()
            }
            dialog::Step::Confirmed => {
                let Some(Modal::Dialog(dialog)) = self.modals.pop() else {
                    return Vec::new();
                };
                self.modals.retain(|m| !matches!(m, Modal::Detail { .. }));
                if dialog.action.clears_marks() {
                    self.marks.clear();
                }
                let effects = dialog.effects();
                for effect in &effects {
                    match effect {
                        Effect::DecideEntra { approval, .. } => {
                            if let Some(entra) = self.entra.as_mut() {
                                entra.deciding.insert(approval.key());
                            }
                        }
                        Effect::DecideAction { id, .. } => {
                            self.actions.deciding.insert(id.clone());
                        }
                        _ => {}
                    }
                }
                effects
            }
        }
    }

    pub(super) fn on_command(&mut self, command: Command, now: DateTime<Utc>) -> Vec<Effect> {
        match command {
            Command::Quit => {
                if self.modals.is_empty() {
                    self.quit = true;
                    return vec![Effect::Quit];
                }
                self.modals.pop();
            }
            Command::Back => {
                // Esc backs out and never quits.
                self.modals.pop();
            }
            Command::Help => self.modals.push(Modal::Help),
            Command::Up => self.move_selection(-1),
            Command::Down => self.move_selection(1),
            Command::PageUp => self.move_selection(-(PAGE as i64)),
            Command::PageDown => self.move_selection(PAGE as i64),
            Command::Top => self.move_selection(i64::MIN / 2),
            Command::Bottom => self.move_selection(i64::MAX / 2),
            Command::Inbox => self.go(Screen::Inbox),
            Command::Agents => self.go(Screen::Agents),
            Command::Grants => self.go(Screen::Grants),
            Command::Audit => self.go(Screen::Audit),
            Command::NextScreen => {
                let i = Screen::ALL
                    .iter()
                    .position(|s| *s == self.screen)
                    .unwrap_or(0);
                self.go(Screen::ALL[(i + 1) % Screen::ALL.len()]);
            }
            Command::Filter => self.open_filter(),
            Command::CommandLine => self.modals.push(Modal::CommandLine(String::new())),
            Command::Refresh => {
                let mut effects = self.start();
                effects.extend(self.entra_poll_now(now));
                return effects;
            }
            Command::Open => return self.open_detail(),
            Command::Mark => self.toggle_mark(now),
            Command::ClearMarks => self.marks.clear(),
            Command::Sort => self.cycle_sort(now),
            Command::Approve => self.open_approve(now),
            Command::Deny => self.open_deny(now),
            Command::Suspend => self.open_suspend(),
            Command::SuspendAll => self.open_suspend_all(),
            Command::Reactivate => self.open_reactivate(now),
            Command::RevokeGrant => self.open_revoke_grant(),
            Command::Verify => {
                self.verify = None;
                return vec![Effect::Verify, Effect::CheckRecord];
            }
            // Dialog keys mean nothing outside a dialog.
            Command::NextField
            | Command::PreviousField
            | Command::PreviousChoice
            | Command::NextChoice
            | Command::Toggle
            | Command::Activate
            | Command::Cancel
            | Command::Preset(_) => {}
        }
        Vec::new()
    }

    pub(super) fn go(&mut self, screen: Screen) {
        self.modals.clear();
        self.screen = screen;
        if screen == Screen::Inbox {
            self.badge = 0;
        }
    }

    pub(super) fn move_selection(&mut self, delta: i64) {
        if let Some(Modal::Detail { scroll, .. }) = self.modals.last_mut() {
            *scroll = (i64::from(*scroll) + delta).clamp(0, i64::from(u16::MAX)) as u16;
            return;
        }
        let lens = (
            self.visible_agents().len(),
            self.visible_grants().len(),
            self.visible_audit().len(),
        );
        let (selected, len) = match self.screen {
            Screen::Inbox => (&mut self.inbox_selected, self.inbox.len()),
            Screen::Agents => (&mut self.agents_selected, lens.0),
            Screen::Grants => (&mut self.grants_selected, lens.1),
            Screen::Audit => (&mut self.audit_selected, lens.2),
        };
        if len == 0 {
            *selected = 0;
            return;
        }
        let next = (*selected as i64)
            .saturating_add(delta)
            .clamp(0, len as i64 - 1);
        *selected = next as usize;
    }
}
