//! What `agent-cli` suggests on stderr after a request: the agent's next command and the
//! sponsor's, ready to paste.

use std::path::Path;

use crate::protocol::requests::{Request, RequestStatus};

/// What to run next after `request`, for stderr (stdout keeps the JSON): the agent's `wait`
/// and the sponsor's decision; or, when it was refused at once, that there is nothing to wait
/// for.
pub(super) fn next_steps(asked: &Request, key: &Path, server_arg: &str) -> String {
    let id = &asked.id;
    if asked.status != RequestStatus::Pending {
        return format!(
            "{id} is {} already{}: nothing to wait for\n",
            asked.status.as_str(),
            asked
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let grantable = asked.policy.grantable_seconds(asked.duration_seconds);
    let grantable = humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(grantable).unwrap_or(0),
    ));
    format!(
        "{id} is pending until {} unless a sponsor decides it.\n\
         next: agent-cli{server_arg} wait --key {} {id}   (blocks until a sponsor decides, up to \
         1h or --timeout; run it in its own terminal)\n\
         sponsor: sponsor-console{server_arg} approve {id} --for {grantable} --reason \"…\"   \
         (or: sponsor-console{server_arg} deny {id} --reason \"…\")\n",
        asked.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
        shell_word(&key.display().to_string()),
    )
}

/// `word` as one shell word: as it is when that is safe, else in single quotes.
pub(super) fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn a_word_the_shell_would_split_is_quoted() {
        assert_eq!(shell_word("bot.pem"), "bot.pem");
        assert_eq!(shell_word("http://127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(shell_word("my key.pem"), "'my key.pem'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
