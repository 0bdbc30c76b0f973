//! The one list of commands. For each: its name in `[keys]`, what help says, where it applies,
//! its default keys, whether it acts at the server, whether the footer shows it, and how it is
//! typed after `:`. The keymap, the hints, the help screen and the command line all read it.

use super::Context;

/// Everything a key can mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    Quit,
    Help,
    Back,
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Inbox,
    Agents,
    Grants,
    Audit,
    NextScreen,
    Filter,
    CommandLine,
    Refresh,
    Open,
    Mark,
    ClearMarks,
    Sort,
    Approve,
    Deny,
    Suspend,
    SuspendAll,
    Reactivate,
    RevokeGrant,
    Verify,
    // In dialogs (and the filter and command line, which take Activate and Cancel).
    NextField,
    PreviousField,
    PreviousChoice,
    NextChoice,
    Toggle,
    Activate,
    Cancel,
    /// Picks the n-th duration preset (from 0).
    Preset(u8),
}

/// Whether the footer names a command, and with which of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Footer {
    Hidden,
    AllKeys,
    /// Only the first key: the footer stays one line while aliases (arrows) keep working.
    FirstKey,
}

/// How a command is typed after `:`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    /// The first is the one help shows; the others are aliases.
    pub(super) names: &'static [&'static str],
    /// What must follow the name, as help writes it (`suspend DID`).
    pub(super) arg: Option<&'static str>,
    /// Place in help's list of commands.
    pub(super) rank: u8,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    pub(super) command: Command,
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) contexts: &'static [Context],
    pub(super) keys: &'static [&'static str],
    /// Changes something at the server: gone in read-only mode.
    pub(super) acting: bool,
    pub(super) footer: Footer,
    pub(super) line: Option<Line>,
}

const fn spec(
    command: Command,
    name: &'static str,
    help: &'static str,
    contexts: &'static [Context],
    keys: &'static [&'static str],
) -> Spec {
    Spec {
        command,
        name,
        help,
        contexts,
        keys,
        acting: false,
        footer: Footer::AllKeys,
        line: None,
    }
}

impl Spec {
    const fn acting(mut self) -> Self {
        self.acting = true;
        self
    }

    const fn footer(mut self, footer: Footer) -> Self {
        self.footer = footer;
        self
    }

    const fn line(mut self, rank: u8, names: &'static [&'static str]) -> Self {
        self.line = Some(Line {
            names,
            arg: None,
            rank,
        });
        self
    }

    const fn line_with(
        mut self,
        rank: u8,
        names: &'static [&'static str],
        arg: &'static str,
    ) -> Self {
        self.line = Some(Line {
            names,
            arg: Some(arg),
            rank,
        });
        self
    }
}

use Command as K;
use Context as C;

const SCREENS: &[Context] = &[C::Inbox, C::Agents, C::Grants, C::Audit];

pub(super) const SPECS: &[Spec] = &[
    spec(K::Quit, "quit", "quit", &[C::Global], &["q", "ctrl-c"]).line(7, &["quit", "q"]),
    spec(K::Help, "help", "keys", &[C::Global], &["?"]).line(6, &["help"]),
    spec(K::Back, "back", "back", &[C::Global], &["esc"]),
    spec(K::Up, "up", "up", &[C::Global], &["k", "up"]).footer(Footer::Hidden),
    spec(K::Down, "down", "down", &[C::Global], &["j", "down"]).footer(Footer::Hidden),
    spec(K::Top, "top", "first", &[C::Global], &["g", "home"]).footer(Footer::Hidden),
    spec(K::Bottom, "bottom", "last", &[C::Global], &["G", "end"]).footer(Footer::Hidden),
    spec(
        K::PageUp,
        "page_up",
        "page up",
        &[C::Global],
        &["pageup", "ctrl-b"],
    )
    .footer(Footer::Hidden),
    spec(
        K::PageDown,
        "page_down",
        "page down",
        &[C::Global],
        &["pagedown", "ctrl-f"],
    )
    .footer(Footer::Hidden),
    spec(K::Inbox, "inbox", "inbox", &[C::Global], &["1"]).line(0, &["requests", "inbox", "req"]),
    spec(K::Agents, "agents", "agents", &[C::Global], &["2"]).line(1, &["agents", "ag"]),
    spec(K::Grants, "grants", "grants", &[C::Global], &["3"]).line(2, &["grants", "gr"]),
    spec(K::Audit, "audit", "audit", &[C::Global], &["4"]).line(3, &["audit"]),
    spec(
        K::NextScreen,
        "next_screen",
        "next screen",
        &[C::Global],
        &["tab"],
    ),
    spec(K::Filter, "filter", "filter", SCREENS, &["/"]),
    spec(
        K::CommandLine,
        "command_line",
        "command",
        &[C::Global],
        &[":"],
    ),
    spec(K::Refresh, "refresh", "refresh", &[C::Global], &["ctrl-r"]),
    spec(K::Open, "open", "open", &[C::Inbox], &["enter"]),
    spec(K::Mark, "mark", "mark", &[C::Inbox], &["space"]),
    spec(
        K::ClearMarks,
        "clear_marks",
        "clear marks",
        &[C::Inbox],
        &["u"],
    ),
    spec(K::Sort, "sort", "sort", &[C::Inbox], &["o"]),
    spec(
        K::Approve,
        "approve",
        "approve",
        &[C::Inbox, C::Detail],
        &["a"],
    )
    .acting(),
    spec(K::Deny, "deny", "deny", &[C::Inbox, C::Detail], &["d"]).acting(),
    spec(
        K::Suspend,
        "suspend",
        "suspend agent",
        &[C::Inbox, C::Detail, C::Agents],
        &["s"],
    )
    .acting()
    .line_with(5, &["suspend"], "DID"),
    spec(
        K::SuspendAll,
        "suspend_all",
        "suspend all mine",
        &[C::Agents],
        &["S"],
    )
    .acting(),
    spec(
        K::Reactivate,
        "reactivate",
        "reactivate",
        &[C::Agents],
        &["r"],
    )
    .acting(),
    spec(
        K::RevokeGrant,
        "revoke_grant",
        "revoke grant",
        &[C::Grants],
        &["x"],
    )
    .acting(),
    spec(K::Verify, "verify", "verify chain", &[C::Audit], &["v"]).line(4, &["verify"]),
    spec(
        K::NextField,
        "next_field",
        "next field",
        &[C::Dialog],
        &["tab", "down"],
    )
    .footer(Footer::FirstKey),
    spec(
        K::PreviousField,
        "previous_field",
        "previous field",
        &[C::Dialog],
        &["shift-tab", "up"],
    )
    .footer(Footer::Hidden),
    spec(
        K::PreviousChoice,
        "previous_choice",
        "presets and buttons",
        &[C::Dialog],
        &["left"],
    ),
    spec(
        K::NextChoice,
        "next_choice",
        "presets and buttons",
        &[C::Dialog],
        &["right"],
    ),
    spec(K::Toggle, "toggle", "toggles", &[C::Dialog], &["space"]),
    spec(
        K::Activate,
        "activate",
        "activates",
        &[C::Dialog],
        &["enter"],
    ),
    spec(K::Cancel, "cancel", "cancels", &[C::Dialog], &["esc"]),
    spec(
        K::Preset(0),
        "preset_1",
        "duration preset",
        &[C::Dialog],
        &["1"],
    )
    .footer(Footer::Hidden),
    spec(
        K::Preset(1),
        "preset_2",
        "duration preset",
        &[C::Dialog],
        &["2"],
    )
    .footer(Footer::Hidden),
    spec(
        K::Preset(2),
        "preset_3",
        "duration preset",
        &[C::Dialog],
        &["3"],
    )
    .footer(Footer::Hidden),
    spec(
        K::Preset(3),
        "preset_4",
        "duration preset",
        &[C::Dialog],
        &["4"],
    )
    .footer(Footer::Hidden),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_command_line_names_are_unique() {
        let mut names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a config name used twice");
        let mut typed: Vec<&str> = SPECS
            .iter()
            .filter_map(|s| s.line)
            .flat_map(|l| l.names.iter().copied())
            .collect();
        typed.sort_unstable();
        let before = typed.len();
        typed.dedup();
        assert_eq!(typed.len(), before, "a command-line name used twice");
    }
}
