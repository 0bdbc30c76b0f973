//! The `:` command line, read from the one command list: a command that can be typed names
//! itself there (with its aliases and argument), so parser and help cannot drift apart.

use super::Command;
use super::commands::SPECS;
use crate::console::safe_text::one_line;

/// A command typed after `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCommand {
    pub command: Command,
    /// What followed the name, for commands that take one (`suspend DID`).
    pub arg: Option<String>,
}

/// The line names no command, or gives one an argument it does not take (or none it needs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command {:?}", one_line(.0))]
pub struct UnknownCommand(pub String);

/// Reads a command line; an empty one is `Ok(None)`.
pub fn parse_line(text: &str) -> Result<Option<LineCommand>, UnknownCommand> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (name, rest) = match text.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (text, ""),
    };
    SPECS
        .iter()
        .find_map(|spec| {
            let line = spec.line?;
            if !line.names.contains(&name) {
                return None;
            }
            match (line.arg, rest.is_empty()) {
                (None, true) => Some(None),
                (Some(_), false) => Some(Some(rest.to_owned())),
                _ => None,
            }
            .map(|arg| LineCommand {
                command: spec.command,
                arg,
            })
        })
        .map(Some)
        .ok_or_else(|| UnknownCommand(text.to_owned()))
}

/// The commands help lists after `:`: `requests, agents, …, suspend DID, help, quit`.
pub fn line_summary() -> String {
    let mut lines: Vec<_> = SPECS.iter().filter_map(|s| s.line).collect();
    lines.sort_by_key(|l| l.rank);
    lines
        .iter()
        .filter_map(|l| {
            let name = l.names.first()?;
            Some(match l.arg {
                Some(arg) => format!("{name} {arg}"),
                None => (*name).to_owned(),
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<(Command, Option<String>)> {
        parse_line(text).ok().flatten().map(|l| (l.command, l.arg))
    }

    #[test]
    fn names_and_aliases_come_from_the_command_list() {
        for (text, command) in [
            ("q", Command::Quit),
            ("quit", Command::Quit),
            ("requests", Command::Inbox),
            ("inbox", Command::Inbox),
            ("req", Command::Inbox),
            ("agents", Command::Agents),
            ("ag", Command::Agents),
            ("grants", Command::Grants),
            ("gr", Command::Grants),
            ("audit", Command::Audit),
            ("verify", Command::Verify),
            ("  help  ", Command::Help),
        ] {
            assert_eq!(parsed(text), Some((command, None)), "{text:?}");
        }
        // Every command that names itself can be typed by each of its names.
        for spec in SPECS {
            for name in spec.line.iter().flat_map(|l| l.names) {
                let text = match spec.line.and_then(|l| l.arg) {
                    Some(_) => format!("{name} x"),
                    None => (*name).to_owned(),
                };
                assert_eq!(parsed(&text).map(|p| p.0), Some(spec.command), "{text}");
            }
        }
    }

    #[test]
    fn arguments_are_required_where_named_and_refused_elsewhere() {
        assert_eq!(
            parsed("suspend   did:mesh:abc "),
            Some((Command::Suspend, Some("did:mesh:abc".into())))
        );
        assert_eq!(parse_line("suspend"), Err(UnknownCommand("suspend".into())));
        assert_eq!(
            parse_line("agents all"),
            Err(UnknownCommand("agents all".into()))
        );
    }

    #[test]
    fn empty_and_unknown_lines() {
        assert_eq!(parse_line("   "), Ok(None));
        assert_eq!(parse_line(""), Ok(None));
        let err = parse_line("launch \u{1b}[31m").err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(r#"unknown command "launch \\e[31m""#)
        );
        // Not every command is typed: acting keys other than suspend are not.
        assert!(parse_line("approve").is_err());
    }

    #[test]
    fn help_lists_the_typed_commands_in_order() {
        assert_eq!(
            line_summary(),
            "requests, agents, grants, audit, verify, suspend DID, help, quit"
        );
    }
}
