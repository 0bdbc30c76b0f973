//! What keys mean. A `Command` is what a key can be bound to; the keymap binds keys to
//! commands per context, with the shipped defaults overlaid by the user's `[keys]` table. The
//! hint footer and the help screen are generated from it, so they cannot disagree with what
//! the keys do. In read-only mode the acting commands are not in the keymap at all.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

mod commands;
mod line;

pub use commands::Command;
use commands::{Footer, SPECS};
pub use line::{LineCommand, UnknownCommand, line_summary, parse_line};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Global,
    Inbox,
    Detail,
    Agents,
    Grants,
    Audit,
    /// Any dialog. Global bindings do not apply there: a dialog keeps every key to itself.
    Dialog,
}

#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("[keys]: unknown command {0:?}")]
    UnknownCommand(String),
    #[error(
        "[keys] {command}: cannot read key {key:?} (examples: a, A, ctrl-r, enter, esc, space, f5)"
    )]
    BadKey { command: String, key: String },
}

/// One or several keys in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    One(String),
    Many(Vec<String>),
}

/// A binding: which key, in which context, means which command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub key: String,
    pub context: Context,
    pub command: Command,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

/// The canonical name of a key press: `a`, `A`, `ctrl-r`, `enter`, `shift-tab`.
pub fn key_name(key: &KeyEvent) -> Option<String> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let base = match key.code {
        KeyCode::Char(' ') => "space".to_owned(),
        KeyCode::Char(c) => {
            if ctrl {
                c.to_ascii_lowercase().to_string()
            } else {
                c.to_string()
            }
        }
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => "shift-tab".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Delete => "delete".into(),
        KeyCode::Up => "up".into(),
        KeyCode::Down => "down".into(),
        KeyCode::Left => "left".into(),
        KeyCode::Right => "right".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::PageUp => "pageup".into(),
        KeyCode::PageDown => "pagedown".into(),
        KeyCode::F(n) => format!("f{n}"),
        _ => return None,
    };
    let mut name = String::new();
    if ctrl {
        name.push_str("ctrl-");
    }
    if alt {
        name.push_str("alt-");
    }
    name.push_str(&base);
    Some(name)
}

fn valid_key(key: &str) -> bool {
    let base = key.trim_start_matches("ctrl-").trim_start_matches("alt-");
    base.chars().count() == 1
        || matches!(
            base,
            "space"
                | "enter"
                | "esc"
                | "tab"
                | "shift-tab"
                | "backspace"
                | "delete"
                | "up"
                | "down"
                | "left"
                | "right"
                | "home"
                | "end"
                | "pageup"
                | "pagedown"
        )
        || (base.starts_with('f') && base[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)))
}

impl Keymap {
    /// The shipped bindings, overlaid by `overrides` (command name → keys; an empty list unbinds).
    pub fn new(
        overrides: &BTreeMap<String, KeyList>,
        read_only: bool,
    ) -> Result<Self, KeymapError> {
        for name in overrides.keys() {
            if !SPECS.iter().any(|s| s.name == name) {
                return Err(KeymapError::UnknownCommand(name.clone()));
            }
        }
        let mut bindings = Vec::new();
        for spec in SPECS {
            if read_only && spec.acting {
                continue;
            }
            let keys: Vec<String> = match overrides.get(spec.name) {
                None => spec.keys.iter().map(|k| (*k).to_owned()).collect(),
                Some(KeyList::One(k)) => vec![k.clone()],
                Some(KeyList::Many(ks)) => ks.clone(),
            };
            for key in keys {
                if !valid_key(&key) {
                    return Err(KeymapError::BadKey {
                        command: spec.name.into(),
                        key,
                    });
                }
                for context in spec.contexts {
                    bindings.push(Binding {
                        key: key.clone(),
                        context: *context,
                        command: spec.command,
                    });
                }
            }
        }
        Ok(Self { bindings })
    }

    /// The shipped defaults.
    pub fn defaults(read_only: bool) -> Self {
        Self::new(&BTreeMap::new(), read_only).unwrap_or(Self {
            bindings: Vec::new(),
        })
    }

    /// What `key` means in `context`: screen bindings win over global ones; in a dialog only
    /// the dialog's bindings count.
    pub fn lookup(&self, key: &KeyEvent, context: Context) -> Option<Command> {
        let name = key_name(key)?;
        self.bindings
            .iter()
            .find(|b| b.context == context && b.key == name)
            .or_else(|| {
                self.bindings.iter().find(|b| {
                    context != Context::Dialog && b.context == Context::Global && b.key == name
                })
            })
            .map(|b| b.command)
    }

    pub fn has(&self, command: Command) -> bool {
        self.bindings.iter().any(|b| b.command == command)
    }

    /// `(keys, description)` for each command active in `context`, screen commands first: what
    /// the help screen lists.
    pub fn hints(&self, context: Context) -> Vec<(String, &'static str)> {
        self.entries(context, false, &[])
    }

    /// The part of the hints the footer shows.
    pub fn footer(&self, context: Context) -> Vec<(String, &'static str)> {
        self.entries(context, true, &[])
    }

    /// The footer without the hints of `hidden` (approve on one's own request).
    pub fn footer_without(
        &self,
        context: Context,
        hidden: &[Command],
    ) -> Vec<(String, &'static str)> {
        self.entries(context, true, hidden)
    }

    /// The keys bound to `command`, as hints write them (`esc`, `space`, `k/up`).
    pub fn keys(&self, command: Command) -> String {
        let mut keys: Vec<&str> = Vec::new();
        for b in self.bindings.iter().filter(|b| b.command == command) {
            if !keys.contains(&label(&b.key)) {
                keys.push(label(&b.key));
            }
        }
        keys.join("/")
    }

    /// The first key bound to `command`, as hints write it; `?` when it has none (read-only
    /// mode removes some).
    pub fn first_key(&self, command: Command) -> &str {
        self.bindings
            .iter()
            .find(|b| b.command == command)
            .map_or("?", |b| label(&b.key))
    }

    /// Commands that share a description share an entry (`←/→ presets and buttons`).
    fn entries(
        &self,
        context: Context,
        footer: bool,
        hidden: &[Command],
    ) -> Vec<(String, &'static str)> {
        let contexts: &[Context] = if context == Context::Dialog {
            &[Context::Dialog]
        } else {
            &[context, Context::Global]
        };
        let mut out: Vec<(Vec<&str>, &'static str)> = Vec::new();
        for ctx in contexts {
            for spec in SPECS
                .iter()
                .filter(|s| s.contexts.contains(ctx) && !hidden.contains(&s.command))
            {
                let mut keys = self
                    .bindings
                    .iter()
                    .filter(|b| b.command == spec.command && b.context == *ctx)
                    .map(|b| label(&b.key));
                let keys: Vec<&str> = match (footer, spec.footer) {
                    (true, Footer::Hidden) => continue,
                    (true, Footer::FirstKey) => keys.next().into_iter().collect(),
                    _ => keys.collect(),
                };
                if keys.is_empty() {
                    continue;
                }
                match out.iter_mut().find(|(_, help)| *help == spec.help) {
                    Some((known, _)) => {
                        for k in keys {
                            if !known.contains(&k) {
                                known.push(k);
                            }
                        }
                    }
                    None => out.push((keys, spec.help)),
                }
            }
        }
        out.into_iter()
            .map(|(keys, help)| (keys.join("/"), help))
            .collect()
    }
}

/// How hints write a key: the horizontal arrows as glyphs, every other key by its name.
fn label(key: &str) -> &str {
    match key {
        "left" => "←",
        "right" => "→",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn defaults_and_contexts() {
        let k = Keymap::defaults(false);
        assert_eq!(k.lookup(&key('a'), Context::Inbox), Some(Command::Approve));
        assert_eq!(k.lookup(&key('a'), Context::Audit), None);
        assert_eq!(k.lookup(&key('q'), Context::Grants), Some(Command::Quit));
        assert_eq!(
            k.lookup(&key('x'), Context::Grants),
            Some(Command::RevokeGrant)
        );
        let ctrl_r = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(k.lookup(&ctrl_r, Context::Inbox), Some(Command::Refresh));
    }

    #[test]
    fn read_only_removes_acting_keys_from_map_and_hints() {
        let k = Keymap::defaults(true);
        assert_eq!(k.lookup(&key('a'), Context::Inbox), None);
        assert!(!k.has(Command::Suspend));
        assert!(k.hints(Context::Inbox).iter().all(|(_, h)| *h != "approve"));
        assert!(k.hints(Context::Inbox).iter().any(|(_, h)| *h == "filter"));
    }

    #[test]
    fn overrides_rebind_and_unbind() {
        let mut o = BTreeMap::new();
        o.insert("approve".to_owned(), KeyList::One("y".into()));
        o.insert("deny".to_owned(), KeyList::Many(vec![]));
        let k = Keymap::new(&o, false).expect("the overlay is valid");
        assert_eq!(k.lookup(&key('y'), Context::Inbox), Some(Command::Approve));
        assert_eq!(k.lookup(&key('a'), Context::Inbox), None);
        assert!(!k.has(Command::Deny));
        assert!(
            k.hints(Context::Inbox)
                .iter()
                .any(|(keys, h)| keys == "y" && *h == "approve")
        );
        o.insert("launch".to_owned(), KeyList::One("l".into()));
        assert!(matches!(
            Keymap::new(&o, false),
            Err(KeymapError::UnknownCommand(_))
        ));
        let mut bad = BTreeMap::new();
        bad.insert("approve".to_owned(), KeyList::One("hyper-q".into()));
        assert!(matches!(
            Keymap::new(&bad, false),
            Err(KeymapError::BadKey { .. })
        ));
    }

    #[test]
    fn dialogs_keep_their_keys_and_the_footer_is_generated() {
        let k = Keymap::defaults(false);
        let code = |c: KeyCode| KeyEvent::new(c, KeyModifiers::NONE);
        // No global fallback: q does not quit and 1 is a preset, not the inbox.
        assert_eq!(k.lookup(&key('q'), Context::Dialog), None);
        assert_eq!(
            k.lookup(&key('1'), Context::Dialog),
            Some(Command::Preset(0))
        );
        assert_eq!(
            k.lookup(&code(KeyCode::Tab), Context::Dialog),
            Some(Command::NextField)
        );
        assert_eq!(
            k.lookup(&code(KeyCode::Down), Context::Dialog),
            Some(Command::NextField)
        );
        assert_eq!(
            k.lookup(&code(KeyCode::BackTab), Context::Dialog),
            Some(Command::PreviousField)
        );
        assert_eq!(
            k.lookup(&code(KeyCode::Esc), Context::Dialog),
            Some(Command::Cancel)
        );
        let footer: Vec<String> = k
            .footer(Context::Dialog)
            .into_iter()
            .map(|(keys, help)| format!("{keys} {help}"))
            .collect();
        assert_eq!(
            footer.join(" · "),
            "tab next field · ←/→ presets and buttons · space toggles · enter activates · esc cancels"
        );
        assert_eq!(k.keys(Command::Toggle), "space");
        // Movement stays out of the screen footers but is in help.
        assert!(k.footer(Context::Inbox).iter().all(|(_, h)| *h != "up"));
        assert!(
            k.hints(Context::Inbox)
                .iter()
                .any(|(keys, h)| keys == "k/up" && *h == "up")
        );
        // Rebinding shows in the footer.
        let mut o = BTreeMap::new();
        o.insert(
            "activate".to_owned(),
            KeyList::Many(vec!["ctrl-s".into(), "enter".into()]),
        );
        let k = Keymap::new(&o, false).expect("the overlay is valid");
        assert!(
            k.footer(Context::Dialog)
                .iter()
                .any(|(keys, h)| keys == "ctrl-s/enter" && *h == "activates")
        );
    }
}
