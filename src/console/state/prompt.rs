//! The prompts on the hint line: `/` filters the screen's list as you type, `:` runs a command
//! read by the command list's own parser.

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Effect, Modal, Screen, State};
use crate::console::keymap::{Command, LineCommand, parse_line};

impl State {
    pub(super) fn open_filter(&mut self) {
        let current = if self.screen == Screen::Inbox {
            self.filter.clone()
        } else {
            self.list_filter.clone()
        };
        self.modals.push(Modal::Filter(current));
    }

    pub(super) fn on_filter_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        let inbox = self.screen == Screen::Inbox;
        match key.code {
            KeyCode::Esc => {
                self.modals.pop();
                text.clear();
            }
            KeyCode::Enter => {
                self.modals.pop();
                return Vec::new();
            }
            KeyCode::Backspace => {
                text.pop();
                self.replace_top(Modal::Filter(text.clone()));
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.chars().count() < 200 && !c.is_control() {
                    text.push(c);
                }
                self.replace_top(Modal::Filter(text.clone()));
            }
            _ => return Vec::new(),
        }
        if !inbox {
            self.list_filter = text;
            self.agents_selected = 0;
            self.grants_selected = 0;
            self.audit_selected = 0;
            return Vec::new();
        }
        self.filter = text;
        let keep = self.selected_request().map(|r| r.id.clone());
        self.refresh_inbox(keep);
        Vec::new()
    }

    pub(super) fn on_command_key(
        &mut self,
        key: KeyEvent,
        mut text: String,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => {
                self.modals.pop();
            }
            KeyCode::Backspace => {
                text.pop();
                self.replace_top(Modal::CommandLine(text));
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.chars().count() < 200 && !c.is_control() {
                    text.push(c);
                }
                self.replace_top(Modal::CommandLine(text));
            }
            KeyCode::Enter => {
                self.modals.pop();
                return self.run_line(&text, now);
            }
            _ => {}
        }
        Vec::new()
    }

    fn run_line(&mut self, line: &str, now: DateTime<Utc>) -> Vec<Effect> {
        match parse_line(line) {
            Ok(None) => Vec::new(),
            Err(unknown) => {
                self.flash(unknown.to_string(), true, now);
                Vec::new()
            }
            Ok(Some(LineCommand {
                command: Command::Suspend,
                arg,
            })) => {
                let did = arg.unwrap_or_default();
                if self.read_only || !self.keymap.has(Command::Suspend) {
                    self.flash("suspending is not available here", true, now);
                } else if crate::domain::did::parse(&did).is_err() {
                    self.flash("usage: suspend did:mesh:…", true, now);
                } else {
                    self.open_suspend_did(did);
                }
                Vec::new()
            }
            Ok(Some(LineCommand {
                command: Command::Verify,
                ..
            })) => {
                // Verifying from anywhere shows the verdict where it is drawn.
                self.go(Screen::Audit);
                self.on_command(Command::Verify, now)
            }
            Ok(Some(LineCommand { command, .. })) => self.on_command(command, now),
        }
    }
}
