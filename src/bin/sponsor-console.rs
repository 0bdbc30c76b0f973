//! `sponsor-console`: where humans govern AI agents. Without a sub-command it opens the
//! terminal console (on the embedded default unless `--server` or the config names a server);
//! `login`, `whoami` and `logout` are the headless sign-in commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sponsor_console::client::ApiClient;
use sponsor_console::client::login::{self, LoginError, LoginPrompt};
use sponsor_console::client::session::SessionStore;
use sponsor_console::clock::{SharedClock, SystemClock};
use sponsor_console::console::app::{self, Alerts, Keeper};
use sponsor_console::console::config::ConsoleSettings;
use sponsor_console::console::keymap::Keymap;
use sponsor_console::console::state::{Identity, State};
use sponsor_console::console::theme::Theme;
use sponsor_console::demo::embedded;

const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Parser)]
#[command(
    name = "sponsor-console",
    version,
    about = "Where humans govern AI agents"
)]
struct Cli {
    /// Governance server base URL. Without it the console runs the embedded default
    /// (headless commands default to http://127.0.0.1:7070).
    #[arg(long, global = true, env = "GOVERNANCE_SERVER")]
    server: Option<String>,
    /// Console settings file (default: $XDG_CONFIG_HOME/sponsor-console/console.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// No acting keys: approve, deny, suspend, reactivate and revoke are gone.
    #[arg(long)]
    read_only: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in with the device flow: open the URL shown, enter the code, approve.
    Login,
    /// Show who is signed in (refreshing the session if needed).
    Whoami {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke this session's tokens and forget them.
    Logout,
    /// Requests: `requests ls`.
    Requests {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// Approve a request for a bounded time.
    Approve {
        id: String,
        /// How long, e.g. 30m or 1h (at most what was asked and what policy allows).
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Grant only these (comma-separated), a subset of what was asked.
        #[arg(long, value_delimiter = ',')]
        capabilities: Option<Vec<String>>,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Deny a request.
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

#[derive(Debug, Subcommand)]
enum ListCommand {
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
enum AuditCommand {
    /// Verify the whole hash chain; exit code 6 if it is broken.
    Verify,
}

/// Exit codes of the headless commands.
mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_SIGNED_IN: u8 = 3;
    pub const REFUSED: u8 = 4;
    pub const CONFLICT: u8 = 5;
    pub const CHAIN_BROKEN: u8 = 6;
}

fn client_exit(e: &sponsor_console::client::ClientError) -> u8 {
    match e.status().map(|s| s.as_u16()) {
        Some(400 | 413 | 415 | 422) => exit::USAGE,
        Some(401) => exit::NOT_SIGNED_IN,
        Some(403 | 404) => exit::REFUSED,
        Some(409) => exit::CONFLICT,
        _ => exit::FAILURE,
    }
}

fn table(rows: Vec<Vec<String>>) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn safe(s: &str) -> String {
    sponsor_console::console::safe_text::one_line(s)
}

/// The scripted commands: one call each, a clear line, an exit code that says what happened.
async fn scripted(
    command: Command,
    api: &ApiClient,
) -> Result<u8, sponsor_console::client::ClientError> {
    use sponsor_console::protocol::requests::{Decision, DecisionBody, RequestStatus};
    let now = chrono::Utc::now();
    match command {
        Command::Requests {
            command: ListCommand::Ls { json, all },
        } => {
            let query = if all {
                "status=pending&scope=all&limit=10000"
            } else {
                "status=pending&limit=10000"
            };
            let list = api.requests(query).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                let mut rows = vec![vec![
                    "ID".into(),
                    "KIND".into(),
                    "AGENT".into(),
                    "CAPABILITIES".into(),
                    "ASKED".into(),
                    "SENSITIVITY".into(),
                    "LEFT".into(),
                ]];
                for r in list {
                    rows.push(vec![
                        r.id.clone(),
                        r.kind.as_str().into(),
                        safe(&r.agent_name),
                        r.capabilities.join(","),
                        sponsor_console::console::state::human_duration(r.duration_seconds),
                        r.policy.sensitivity.as_str().into(),
                        sponsor_console::console::state::human_duration(
                            (r.expires_at - now).num_seconds(),
                        ),
                    ]);
                }
                table(rows);
            }
        }
        Command::Approve {
            id,
            duration,
            capabilities,
            reason,
        } => {
            let body = DecisionBody {
                decision: Decision::Approve,
                duration_seconds: Some(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)),
                capabilities,
                justification: reason,
            };
            let r = api.decide(&id, &body).await?;
            match r.status {
                RequestStatus::Approved => println!(
                    "approved {} for {}: grant {}",
                    r.id,
                    safe(&r.agent_name),
                    r.grant_id.unwrap_or_default()
                ),
                _ => println!(
                    "approval recorded on {}; {} of {} approvals",
                    r.id,
                    r.approvals.len(),
                    r.policy.approvals_required
                ),
            }
        }
        Command::Deny { id, reason } => {
            let body = DecisionBody {
                decision: Decision::Deny,
                duration_seconds: None,
                capabilities: None,
                justification: reason,
            };
            let r = api.decide(&id, &body).await?;
            println!("denied {} of {}", r.id, safe(&r.agent_name));
        }
        Command::Suspend {
            did,
            reason,
            security,
        } => {
            let s = api.suspend(&did, &reason, security).await?;
            if s.agents.is_empty() {
                println!("nothing changed: {did} was not active");
            } else {
                println!(
                    "suspended {}; revoked {} grant(s), cancelled {} request(s), revoked {} token(s)",
                    s.agents.join(", "),
                    s.grants_revoked.len(),
                    s.requests_cancelled.len(),
                    s.tokens_revoked
                );
            }
        }
        Command::Reactivate { did, reason } => {
            let a = api.reactivate(&did, &reason).await?;
            println!("{} ({}) is {}", safe(&a.name), a.did, a.status.as_str());
        }
        Command::Agents {
            command: ListCommand::Ls { json, all },
        } => {
            let list = api.agents(all).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                let mut rows = vec![vec![
                    "DID".into(),
                    "NAME".into(),
                    "STATUS".into(),
                    "TRUST".into(),
                ]];
                for a in list {
                    rows.push(vec![
                        a.did.clone(),
                        safe(&a.name),
                        a.status.as_str().into(),
                        format!("{} {}", a.trust_tier, a.trust_score),
                    ]);
                }
                table(rows);
            }
        }
        Command::Grants {
            command: ListCommand::Ls { json, all },
        } => {
            let list = api.grants(if all { "scope=all" } else { "" }).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                let mut rows = vec![vec![
                    "ID".into(),
                    "AGENT".into(),
                    "CAPABILITIES".into(),
                    "UNTIL".into(),
                    "LEFT".into(),
                ]];
                for g in list {
                    rows.push(vec![
                        g.id.clone(),
                        g.agent_did.clone(),
                        g.capabilities.join(","),
                        g.not_after.to_rfc3339(),
                        sponsor_console::console::state::human_duration(
                            (g.not_after - now).num_seconds(),
                        ),
                    ]);
                }
                table(rows);
            }
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = api.audit_verify().await?;
            if report.ok {
                println!(
                    "audit chain ok: {} events, head {}",
                    report.count, report.head
                );
            } else {
                println!(
                    "AUDIT CHAIN BROKEN at seq {}: {} ({} events verified before it)",
                    report.first_bad_seq.unwrap_or_default(),
                    report.reason.unwrap_or_default(),
                    report.count
                );
                return Ok(exit::CHAIN_BROKEN);
            }
        }
        Command::Login | Command::Whoami { .. } | Command::Logout => {}
    }
    Ok(0)
}

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

/// Exit codes: 0 done, 1 failure, 2 bad usage or input, 3 not signed in / session ended,
/// 4 refused (forbidden, not found, sign-in denied), 5 conflict (already decided, expired,
/// cancelled), 6 audit chain broken.
async fn headless(command: Command, server: &str) -> Result<ExitCode, LoginError> {
    let api = ApiClient::new(server)?;
    let store = SessionStore::default_location()?;
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Login => {
            let session = login::device_login(&api, clock, login::real_sleep, |prompt| {
                print_prompt(&prompt);
                async {}
            })
            .await?;
            let path = store.save(&session)?;
            println!(
                "Signed in to {} as {}. Session saved to {}.",
                session.server,
                session.username.as_deref().unwrap_or("?"),
                path.display()
            );
        }
        Command::Whoami { json } => {
            let session = login::current_session(&api, &store, &clock).await?;
            let me = api.with_token(&session.access_token).me().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&me).unwrap_or_default());
            } else {
                println!(
                    "{} ({}) on {}\nroles: {}\nsession token valid until {}",
                    me.display_name.as_deref().unwrap_or(&me.sub),
                    me.username.as_deref().unwrap_or("?"),
                    session.server,
                    me.roles.join(", "),
                    session
                        .expires_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                );
            }
        }
        Command::Logout => {
            if login::logout(&api, &store, &clock).await? {
                println!("Signed out of {}.", api.base());
            } else {
                println!("Not signed in to {}.", api.base());
            }
        }
        other => {
            let session = login::current_session(&api, &store, &clock).await?;
            let client = api.with_token(&session.access_token);
            return Ok(match scripted(other, &client).await {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(client_exit(&e))
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn console(cli: Cli) -> anyhow::Result<()> {
    let settings = ConsoleSettings::load(cli.config.as_deref())?;
    let read_only = cli.read_only || settings.console.read_only;
    let keymap = Keymap::new(&settings.keys, read_only)?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = Theme::by_name(&settings.console.theme, no_color).with_context(|| {
        format!(
            "unknown theme {:?}: use default, colour-blind or mono",
            settings.console.theme
        )
    })?;
    let alerts = Alerts {
        bell: settings.notifications.bell,
        osc: settings.notifications.osc,
        desktop: settings.notifications.desktop,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let server = cli
        .server
        .clone()
        .or_else(|| (!settings.console.server.is_empty()).then(|| settings.console.server.clone()));
    let store = SessionStore::default_location()?;
    let log = store.dir().join("console.log");
    sponsor_console::telemetry::init_file(&log, "info")
        .with_context(|| format!("opening the log file {}", log.display()))?;
    match server {
        None => {
            let dir = embedded::data_dir();
            eprintln!(
                "Starting the embedded governance server ({})…",
                dir.display()
            );
            let tenant =
                embedded::start_embedded(&dir, settings.demo.agents, settings.demo.rate).await?;
            let api = ApiClient::new(&tenant.server.base_url())?;
            let identity = Identity {
                username: tenant.sponsor.username.clone(),
                server: tenant.server.base_url(),
                environment: settings.console.environment.clone(),
                embedded: true,
            };
            let keeper = Keeper::new(api, tenant.session.clone(), None, clock);
            let state = State::new(identity, keymap, read_only);
            let ran = app::run(state, keeper, theme, alerts).await;
            tenant.shutdown().await?;
            ran?;
        }
        Some(server) => {
            let api = ApiClient::new(&server)?;
            let session = match login::current_session(&api, &store, &clock).await {
                Ok(s) => s,
                Err(LoginError::NotSignedIn(_) | LoginError::SessionEnded(_)) => {
                    let s = login::device_login(&api, clock.clone(), login::real_sleep, |prompt| {
                        print_prompt(&prompt);
                        async {}
                    })
                    .await?;
                    store.save(&s)?;
                    s
                }
                Err(e) => return Err(e.into()),
            };
            let identity = Identity {
                username: session.username.clone().unwrap_or_default(),
                server: api.base().to_owned(),
                environment: settings.console.environment.clone(),
                embedded: false,
            };
            let keeper = Keeper::new(api, session, Some(store), clock);
            let state = State::new(identity, keymap, read_only);
            app::run(state, keeper, theme, alerts).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(command) => {
            sponsor_console::telemetry::init_stderr("warn");
            let server = cli
                .server
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
            match headless(command, &server).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    match e {
                        LoginError::NotSignedIn(_) | LoginError::SessionEnded(_) => {
                            ExitCode::from(3)
                        }
                        LoginError::Denied | LoginError::Expired => ExitCode::from(exit::REFUSED),
                        LoginError::Client(c) => ExitCode::from(client_exit(&c)),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
        None => match console(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
