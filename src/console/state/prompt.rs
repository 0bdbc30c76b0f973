//! The prompts on the hint line: `/` filters the screen's list as you type, `:` runs a command
//! read by the command list's own parser. Typing goes to the prompt; confirm and cancel are
//! the dialog keys of the keymap.

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Effect, Modal, Screen, State};
use crate::console::keymap::{Command, Context, LineCommand, parse_line};

const PROMPT_LIMIT: usize = 200;

/// How a key changed a prompt's text.
enum Edit {
    Changed,
    Done,
    Cancelled,
    Ignored,
}

fn edit(text: &mut String, key: &KeyEvent, command: Option<Command>) -> Edit {
    match key.code {
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
            if text.chars().count() < PROMPT_LIMIT && !c.is_control() {
                text.push(c);
            }
            Edit::Changed
        }
        KeyCode::Backspace => {
            text.pop();
            Edit::Changed
        }
        _ => match command {
            Some(Command::Activate) => Edit::Done,
            Some(Command::Cancel) => Edit::Cancelled,
            _ => Edit::Ignored,
        },
    }
}

impl State {
    pub(super) fn open_filter(&mut self) {
        let current = if self.screen == Screen::Inbox {
            self.filter.clone()
        } else {
            self.list_filter.clone()
        };
        self.modals.push(Modal::Filter(current));
    }

    pub(super) fn on_filter_key(&mut self, key: &KeyEvent) -> Vec<Effect> {
        let command = self.keymap.lookup(key, Context::Dialog);
        let Some(Modal::Filter(text)) = self.modals.last_mut() else {
            return Vec::new();
        };
        let text = match edit(text, key, command) {
            Edit::Changed => text.clone(),
            Edit::Done => {
                self.modals.pop();
                return Vec::new();
            }
            // Cancelling clears the filter.
            Edit::Cancelled => {
                self.modals.pop();
                String::new()
            }
            Edit::Ignored => return Vec::new(),
        };
        if self.screen != Screen::Inbox {
            self.list_filter = text;
            self.agents_selected = 0;
            self.grants_selected = 0;
            self.audit_selected = 0;
            return Vec::new();
        }
        self.filter = text;
        let keep = self.selected_key();
        self.refresh_inbox(keep);
        Vec::new()
    }

    pub(super) fn on_command_line_key(
        &mut self,
        key: &KeyEvent,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        let command = self.keymap.lookup(key, Context::Dialog);
        let Some(Modal::CommandLine(text)) = self.modals.last_mut() else {
            return Vec::new();
        };
        match edit(text, key, command) {
            Edit::Done => {
                let line = std::mem::take(text);
                self.modals.pop();
                self.run_line(&line, now)
            }
            Edit::Cancelled => {
                self.modals.pop();
                Vec::new()
            }
            Edit::Changed | Edit::Ignored => Vec::new(),
        }
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
