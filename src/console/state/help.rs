//! The help screen: the keys active underneath, generated from the keymap. Its own keys are
//! the keymap's too: back, help and quit close it.

use crossterm::event::KeyEvent;

use super::{Effect, State};
use crate::console::keymap::{Command, Context};

impl State {
    pub(super) fn on_help_key(&mut self, key: &KeyEvent) -> Vec<Effect> {
        if matches!(
            self.keymap.lookup(key, Context::Global),
            Some(Command::Back | Command::Help | Command::Quit)
        ) {
            self.modals.pop();
        }
        Vec::new()
    }

    /// The context whose keys help lists: what is under it.
    pub fn help_context(&self) -> Context {
        match self.modals.iter().rev().nth(1) {
            Some(super::Modal::Detail { .. }) => Context::Detail,
            _ => self.screen.context(),
        }
    }
}
