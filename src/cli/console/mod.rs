//! `sponsor-console`: its arguments, and the split between the terminal console (no
//! sub-command) and the headless sub-commands (sign-in, and one call each for scripts).

mod actions;
mod entra;
mod entra_requests;
mod headless;
mod launch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use entra::EntraCli;
pub use headless::{Headless, HeadlessError};
pub use launch::{Launch, LaunchError, Prepared};

use crate::client::login::LoginPrompt;

/// Where the headless commands go without `--server`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Parser)]
#[command(
    name = "sponsor-console",
    version,
    about = "Where humans govern AI agents"
)]
pub struct Cli {
    /// Governance server base URL. Without it, `server` in console.toml; without that, the
    /// console runs the embedded default and headless commands go to http://127.0.0.1:7070.
    #[arg(long, global = true, env = "GOVERNANCE_SERVER")]
    pub server: Option<String>,
    /// Console settings file (default: $XDG_CONFIG_HOME/sponsor-console/console.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Nothing that acts: the console has no approve, deny, suspend, reactivate or revoke
    /// keys, and those commands are refused (exit code 4). Also `read_only` in console.toml.
    #[arg(long, global = true)]
    pub read_only: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in with the device flow: open the URL shown, enter the code, approve. With
    /// `[entra]` set, the sign-in is at Microsoft Entra, for Graph and the governance server.
    Login,
    /// Show who is signed in (refreshing the session if needed).
    Whoami {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke this session's tokens and forget them.
    Logout,
    /// Requests: `requests ls` (the governance server's, or with `--source entra` the
    /// Microsoft Entra approvals waiting on you).
    Requests {
        #[command(subcommand)]
        command: RequestsCommand,
    },
    /// Approve a request for a bounded time. An action request (`ar_…`) is approved for one
    /// execution, with no `--for`. An Entra id (`role:<id>`, `group:<id>`,
    /// `package:<id>`, or a bare id from `requests ls --source entra`) is approved for the
    /// window it asked for: Entra does not let an approver change it, so there is no `--for`.
    Approve {
        id: String,
        /// How long, e.g. 30m or 1h (at most what was asked and what policy allows); required
        /// for the governance server's requests.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Grant only these (comma-separated), a subset of what was asked.
        #[arg(long, value_delimiter = ',')]
        capabilities: Option<Vec<String>>,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Deny a request (the governance server's, an action request's, or an Entra id).
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Suspend an agent and its delegated descendants at once.
    Suspend {
        did: String,
        #[arg(long)]
        reason: String,
        /// A security incident: only a security lead may lift it.
        #[arg(long)]
        security: bool,
    },
    /// Lift an agent's suspension.
    Reactivate {
        did: String,
        #[arg(long)]
        reason: String,
    },
    /// Agents: `agents ls`.
    Agents {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// Grants: `grants ls`.
    Grants {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// The audit chain: `audit verify`.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

impl Command {
    /// The name of a command that changes something (a decision, a suspension), which a
    /// read-only console refuses; `None` for the ones that only read or sign in.
    pub fn acts(&self) -> Option<&'static str> {
        match self {
            Command::Approve { .. } => Some("approve"),
            Command::Deny { .. } => Some("deny"),
            Command::Suspend { .. } => Some("suspend"),
            Command::Reactivate { .. } => Some("reactivate"),
            Command::Login
            | Command::Whoami { .. }
            | Command::Logout
            | Command::Requests { .. }
            | Command::Agents { .. }
            | Command::Grants { .. }
            | Command::Audit { .. } => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List (pending requests; my agents; my active grants).
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Everything, not only mine (security leads and admins).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List pending requests.
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Everything, not only mine (security leads and admins; the governance server's).
        #[arg(long)]
        all: bool,
        /// Whose requests: the governance server's (`local`), Microsoft Entra's PIM approvals
        /// waiting on you (`entra`: directory roles, PIM for Groups, access packages), or the
        /// action requests AGT-governed agents wait on (`agt`, ids `ar_…`).
        #[arg(long, value_enum, default_value_t = RequestSource::Local)]
        source: RequestSource,
    },
}

/// Where `requests ls` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestSource {
    Local,
    Entra,
    /// Action requests: AGT's approvals, held by the webhook until decided.
    Agt,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole hash chain against the last signed checkpoint kept for this server (and
    /// keep the new one); exit code 6 if it is broken, shortened or rewritten, 8 if a
    /// checkpoint's signature is refused.
    Verify {
        /// Also check against the newest checkpoint in this file (the server's file sink: one
        /// JSON checkpoint per line).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Also replay the chain against the server's tables (agent status, standing
        /// capabilities, sponsors, grants, revoked tokens, roles); exit code 7 on any
        /// difference.
        #[arg(long)]
        state: bool,
    },
}

/// What the arguments ask for: the terminal console, or one headless command. They log
/// differently (the console owns the terminal), so the binary sets up logging for each.
#[derive(Debug)]
pub enum Mode {
    Console(Launch),
    Headless(Headless),
}

impl Cli {
    pub fn into_mode(self) -> Mode {
        match self.command {
            Some(command) => Mode::Headless(Headless {
                command,
                server: self.server,
                config: self.config,
                read_only: self.read_only,
            }),
            None => Mode::Console(Launch {
                server: self.server,
                config: self.config,
                read_only: self.read_only,
            }),
        }
    }
}

/// The device flow's instructions for the human, with a QR code of the complete URL.
fn print_prompt(prompt: &LoginPrompt) {
    println!("To sign in, open {}", prompt.verification_uri);
    println!("and enter the code {}", prompt.user_code);
    if let Some(complete) = &prompt.verification_uri_complete {
        println!("(or open {complete})");
        if let Ok(code) = qrcode::QrCode::new(complete.as_bytes()) {
            let qr = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build();
            println!("{qr}");
        }
    }
    println!(
        "Waiting for approval (the code expires in {} minutes)…",
        prompt.expires_in.as_secs() / 60
    );
}
