//! The headless sub-commands: sign-in (`login`, `whoami`, `logout`) and the scripted ones, each
//! one API call, one clear line (or a table, or JSON), and an exit code that says what happened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::actions;
use super::entra::EntraCli;
use super::entra_requests::is_local_id;
use super::{
    AuditCommand, Command, DEFAULT_SERVER, ListCommand, RequestSource, RequestsCommand,
    print_prompt,
};
use crate::cli::exit;
use crate::cli::output::{print_json, print_table};
use crate::client::checkpoint::{self, CheckpointError, CheckpointProblem, CheckpointStore};
use crate::client::entra::EntraError;
use crate::client::graph::{DecideError, GraphError};
use crate::client::login::{self, LoginError};
use crate::client::session::{SessionError, SessionStore};
use crate::client::{ApiClient, ClientError};
use crate::clock::{SharedClock, SystemClock};
use crate::console::config::{ConfigError, ConsoleSettings};
use crate::console::safe_text::one_line as safe;
use crate::console::state::human_duration;
use crate::domain::checkpoint::latest_in;
use crate::protocol::audit::StateReport;
use crate::protocol::query::{GrantQuery, ListScope, RequestQuery};
use crate::protocol::requests::{Decision, DecisionBody, RequestStatus};

/// One headless command for one server.
#[derive(Debug)]
pub struct Headless {
    pub command: Command,
    /// `--server` (or `GOVERNANCE_SERVER`); without it, `server` in console.toml, then
    /// [`DEFAULT_SERVER`].
    pub server: Option<String>,
    /// The console settings file (`--config`); its `server`, `read_only` and `[entra]` apply
    /// here too.
    pub config: Option<PathBuf>,
    /// `--read-only`: commands that act are refused.
    pub read_only: bool,
}

/// Why a headless command failed; [`HeadlessError::exit_code`] says how to exit.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {message}")]
    CheckpointFile { path: PathBuf, message: String },
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error(transparent)]
    Entra(#[from] EntraError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Decide(#[from] DecideError),
    #[error("{0}")]
    Usage(String),
    #[error(
        "`{0}` acts, and this console is read-only (--read-only, or read_only in console.toml)"
    )]
    ReadOnly(&'static str),
}

impl HeadlessError {
    pub fn exit_code(&self) -> u8 {
        match self {
            HeadlessError::Login(e) => exit::of_login(e),
            HeadlessError::Client(e) => exit::of_client(e),
            HeadlessError::Checkpoint(CheckpointError::Client(e)) => exit::of_client(e),
            HeadlessError::CheckpointFile { .. }
            | HeadlessError::Settings(_)
            | HeadlessError::Usage(_) => exit::USAGE,
            HeadlessError::Entra(e) => exit::of_entra(e),
            HeadlessError::Graph(e) => exit::of_graph(e),
            HeadlessError::Decide(e) => exit::of_decide(e),
            HeadlessError::ReadOnly(_) => exit::REFUSED,
            HeadlessError::Session(_) | HeadlessError::Json(_) | HeadlessError::Checkpoint(_) => {
                exit::FAILURE
            }
        }
    }
}

impl Headless {
    /// Runs the command and returns its exit code. Exit codes: 0 done, 1 failure, 2 bad usage
    /// or input, 3 not signed in / session ended, 4 refused (forbidden, not found, sign-in
    /// denied), 5 conflict (already decided, expired, cancelled), 6 audit chain broken,
    /// shortened or rewritten, 8 an audit checkpoint refused.
    pub async fn run(self) -> Result<u8, HeadlessError> {
        let settings = ConsoleSettings::load(self.config.as_deref())?;
        if let Some(name) = self.command.acts()
            && (self.read_only || settings.console.read_only)
        {
            return Err(HeadlessError::ReadOnly(name));
        }
        let server =
            self.server
                .clone()
                .unwrap_or_else(|| match settings.console.server.is_empty() {
                    true => DEFAULT_SERVER.to_owned(),
                    false => settings.console.server.clone(),
                });
        let api = ApiClient::new(&server)?;
        let store = SessionStore::default_location()?;
        let clock: SharedClock = Arc::new(SystemClock);
        let entra = match settings.entra.is_set() {
            true => Some(EntraCli::new(settings.entra, &store, clock.clone())?),
            false => None,
        };
        if let Some(entra) = &entra {
            match self.command {
                Command::Login => return entra.login(&api).await,
                Command::Whoami { json } => return entra.whoami(&api, json).await,
                Command::Logout => return entra.logout(),
                _ => {}
            }
        }
        if let Command::Requests {
            command:
                RequestsCommand::Ls {
                    json,
                    source: RequestSource::Entra,
                    ..
                },
        } = self.command
        {
            let entra = entra.as_ref().ok_or(EntraError::NotConfigured)?;
            return entra.list(json).await;
        }
        match self.command {
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
                    print_json(&me)?;
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
                // Signed in through Entra when the server takes its tokens, else as before.
                let governed = match &entra {
                    Some(e) if e.config.api_scope().is_some() => e.governance(&api).await?,
                    _ => {
                        let session = login::current_session(&api, &store, &clock).await?;
                        api.with_token(&session.access_token)
                    }
                };
                if let Some(entra) = &entra {
                    // An Entra id: decided in Graph, recorded with the governance server.
                    match other {
                        Command::Approve {
                            id,
                            duration,
                            capabilities,
                            reason,
                        } if !is_local_id(&id) => {
                            if duration.is_some() || capabilities.is_some() {
                                return Err(HeadlessError::Usage(
                                    "Entra approvals keep the window they asked for: leave out --for and --capabilities".into(),
                                ));
                            }
                            return entra
                                .decide(&governed, &id, Decision::Approve, &reason)
                                .await;
                        }
                        Command::Deny { id, reason } if !is_local_id(&id) => {
                            return entra.decide(&governed, &id, Decision::Deny, &reason).await;
                        }
                        other => {
                            let checkpoints = CheckpointStore::beside(&store);
                            return scripted(other, &governed, &checkpoints).await;
                        }
                    }
                }
                let checkpoints = CheckpointStore::beside(&store);
                return scripted(other, &governed, &checkpoints).await;
            }
        }
        Ok(exit::SUCCESS)
    }
}

/// The scripted commands, as the signed-in sponsor.
async fn scripted(
    command: Command,
    api: &ApiClient,
    checkpoints: &CheckpointStore,
) -> Result<u8, HeadlessError> {
    let now = chrono::Utc::now();
    match command {
        Command::Requests {
            command:
                RequestsCommand::Ls {
                    json,
                    all,
                    source: RequestSource::Agt,
                },
        } => return actions::list(api, json, all).await,
        Command::Approve {
            id,
            duration,
            capabilities,
            reason,
        } if actions::is_action_id(&id) => {
            if duration.is_some() || capabilities.is_some() {
                return Err(HeadlessError::Usage(
                    "an action request is approved for one execution: leave out --for and --capabilities".into(),
                ));
            }
            return actions::decide(api, &id, Decision::Approve, reason).await;
        }
        Command::Deny { id, reason } if actions::is_action_id(&id) => {
            return actions::decide(api, &id, Decision::Deny, reason).await;
        }
        Command::Requests {
            command: RequestsCommand::Ls { json, all, .. },
        } => {
            let mut query = RequestQuery::pending(500, None);
            query.scope = all.then_some(ListScope::All);
            let list = api.all_requests(query).await?;
            if json {
                print_json(&list)?;
            } else {
                let mut rows = vec![header(&[
                    "ID",
                    "KIND",
                    "AGENT",
                    "CAPABILITIES",
                    "ASKED",
                    "SENSITIVITY",
                    "LEFT",
                ])];
                for r in list {
                    rows.push(vec![
                        r.id.clone(),
                        r.kind.as_str().into(),
                        safe(&r.agent_name),
                        r.capabilities.join(","),
                        human_duration(r.duration_seconds),
                        r.policy.sensitivity.as_str().into(),
                        human_duration((r.expires_at - now).num_seconds()),
                    ]);
                }
                print_table(&rows);
            }
        }
        Command::Approve {
            id,
            duration,
            capabilities,
            reason,
        } => {
            let duration = duration.ok_or_else(|| {
                HeadlessError::Usage(
                    "--for is required to approve the governance server's requests (e.g. --for 1h)"
                        .into(),
                )
            })?;
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
                print_json(&list)?;
            } else {
                let mut rows = vec![header(&["DID", "NAME", "STATUS", "TRUST"])];
                for a in list {
                    rows.push(vec![
                        a.did.clone(),
                        safe(&a.name),
                        a.status.as_str().into(),
                        format!("{} {}", a.trust_tier, a.trust_score),
                    ]);
                }
                print_table(&rows);
            }
        }
        Command::Grants {
            command: ListCommand::Ls { json, all },
        } => {
            let list = api
                .grants(&GrantQuery {
                    scope: all.then_some(ListScope::All),
                    ..GrantQuery::default()
                })
                .await?;
            if json {
                print_json(&list)?;
            } else {
                let mut rows = vec![header(&["ID", "AGENT", "CAPABILITIES", "UNTIL", "LEFT"])];
                for g in list {
                    rows.push(vec![
                        g.id.clone(),
                        g.agent_did.clone(),
                        g.capabilities.join(","),
                        g.not_after.to_rfc3339(),
                        human_duration((g.not_after - now).num_seconds()),
                    ]);
                }
                print_table(&rows);
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { checkpoint, state },
        } => {
            let verified = audit_verify(api, checkpoints, checkpoint.as_deref()).await?;
            if verified != exit::SUCCESS {
                return Ok(verified);
            }
            if state {
                let report = api.check_audit_state().await?;
                print_state(&report);
                if !report.ok {
                    return Ok(exit::STATE_DIFFERS);
                }
            }
        }
        Command::Login | Command::Whoami { .. } | Command::Logout => {}
    }
    Ok(exit::SUCCESS)
}

fn print_state(report: &StateReport) {
    if report.ok {
        println!(
            "state ok: the tables hold what the chain records (replayed to seq {})",
            report.head_seq
        );
    } else {
        println!(
            "STATE DIFFERS FROM THE RECORD: {} difference(s) (replayed to seq {})",
            report.count, report.head_seq
        );
        for d in &report.differences {
            println!("  {}", safe(&d.to_string()));
        }
        if report.differences.is_empty() {
            println!("  (a security lead or admin can read them)");
        }
    }
    if let Some(note) = &report.note {
        println!("note: {note}");
    }
}

/// `audit verify`: the server's report, then the checkpoints kept and given.
async fn audit_verify(
    api: &ApiClient,
    checkpoints: &CheckpointStore,
    file: Option<&Path>,
) -> Result<u8, HeadlessError> {
    let given = match file {
        None => None,
        Some(path) => {
            let bad = |message: String| HeadlessError::CheckpointFile {
                path: path.to_owned(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            Some(latest_in(&text).map_err(|e| bad(e.to_string()))?)
        }
    };
    let verdict = checkpoint::verify(api, Some(checkpoints), given).await?;
    let r = &verdict.report;
    for c in &verdict.compared {
        println!(
            "checkpoint of seq {} (signed {}): {}",
            c.seq,
            c.at.to_rfc3339(),
            if matches!(verdict.problem, Some(CheckpointProblem::Disagrees(_)))
                && Some(c) == verdict.compared.last()
            {
                "DISAGREES"
            } else {
                "the chain agrees"
            }
        );
    }
    if let Some(problem) = &verdict.problem {
        println!("AUDIT CHECK FAILED: {}", safe(&problem.to_string()));
        return Ok(match problem {
            CheckpointProblem::Disagrees(_) => exit::CHAIN_BROKEN,
            CheckpointProblem::Refused { .. } => exit::CHECKPOINT_REFUSED,
        });
    }
    if !r.ok {
        println!(
            "AUDIT CHAIN BROKEN at seq {}: {} ({} events verified before it)",
            r.first_bad_seq.unwrap_or_default(),
            safe(r.reason.as_deref().unwrap_or_default()),
            r.count
        );
        return Ok(exit::CHAIN_BROKEN);
    }
    println!("audit chain ok: {} events, head {}", r.count, safe(&r.head));
    if let Some(k) = &verdict.kept {
        println!(
            "checkpoint kept: seq {} signed {} by {} ({})",
            k.seq,
            k.at.to_rfc3339(),
            safe(&k.issuer),
            checkpoints.path(api.base()).display()
        );
    }
    Ok(exit::SUCCESS)
}

pub(super) fn header(titles: &[&str]) -> Vec<String> {
    titles.iter().map(|t| (*t).to_owned()).collect()
}
