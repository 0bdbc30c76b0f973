//! The help screen: the keys active underneath, generated from the keymap.

use crossterm::event::{KeyCode, KeyEvent};

use super::{Effect, State};

impl State {
    pub(super) fn on_help_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if matches!(
            key.code,
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?')
        ) {
            self.modals.pop();
        }
        Vec::new()
    }
}
