//! `agent-cli`: what an agent does against the governance server — make its key, be registered
//! by a sponsor, get tokens with `private_key_jwt`, ask for more and wait — and the fleet
//! simulator as a load generator.

use std::num::TryFromIntError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod fleet;
mod next_steps;

use self::fleet::fleet;
use self::next_steps::{next_steps, shell_word};
use super::exit;
use super::output::print_json;
use crate::client::agent_key::{AgentKey, KeyFileError};
use crate::client::login::{self, LoginError};
use crate::client::session::{SessionError, SessionStore};
use crate::client::{ApiClient, ClientError};
use crate::clock::{SharedClock, SystemClock};
use crate::demo::fleet::FleetConfig;
use crate::protocol::agents::RegisterAgent;
use crate::protocol::dpop::INVALID_DPOP_PROOF;
use crate::protocol::oauth::TokenResponse;
use crate::protocol::query::GrantQuery;
use crate::protocol::requests::{DelegationBody, ElevationBody, NewChild, Request, RequestStatus};

#[derive(Debug, Parser)]
#[command(
    name = "agent-cli",
    version,
    about = "Act as an AI agent against the governance server"
)]
pub struct Cli {
    /// Governance server base URL.
    #[arg(
        long,
        global = true,
        env = "GOVERNANCE_SERVER",
        default_value = DEFAULT_SERVER
    )]
    pub server: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an Ed25519 key (PKCS#8 PEM, mode 0600) and print the agent's DID.
    Keygen {
        /// Where to write the key; never overwritten.
        #[arg(long, default_value = "agent.pem")]
        out: PathBuf,
    },
    /// Register the agent of a key, as a sponsor. Uses SPONSOR_TOKEN, or the session of
    /// `sponsor-console login` for this server.
    Register {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        #[arg(long)]
        name: String,
        /// A standing capability (repeat): verb:resource or verb:prefix:*.
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        runtime: Option<String>,
        #[arg(long)]
        entra_object_id: Option<String>,
        #[arg(long, env = "SPONSOR_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Makes retries safe: the same key and body register once.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Get an access token with client credentials and print the token response as JSON. A
    /// bearer token, unless --dpop asks for one bound to the key or policy requires that; a
    /// bound token (`token_type: DPoP`) needs a proof for each use (see `proof`).
    Token {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        /// Ask for less than the agent holds (space-separated capabilities).
        #[arg(long)]
        scope: Option<String>,
        /// Bind the token to the key (DPoP, RFC 9449).
        #[arg(long)]
        dpop: bool,
    },
    /// Print a DPoP proof (RFC 9449) for one request with a bound token, e.g.
    /// `curl -H "Authorization: DPoP $TOKEN" -H "DPoP: $(agent-cli proof --token $TOKEN URL)" URL`.
    Proof {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        /// The request's method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The bound access token that goes with the request (sets the proof's `ath`).
        #[arg(long)]
        token: Option<String>,
        /// The request's full URL.
        url: String,
    },
    /// Introspect a token (default: a fresh one of this agent) and print the answer.
    Introspect {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        /// The token to introspect; an agent may introspect only its own tokens.
        token: Option<String>,
    },
    /// Ask a human for more: elevation for this agent, or delegation to a child.
    Request {
        #[command(subcommand)]
        kind: RequestCommand,
    },
    /// Wait until a request is decided (long polls), then print it.
    Wait {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        id: String,
        /// Give up after this long (e.g. 10m); exit code 3 if still pending.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Withdraw a pending request.
    Cancel {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Fetch a token and show which capabilities it carries and until when.
    Use {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        #[arg(long)]
        scope: Option<String>,
    },
    /// Simulate a fleet of agents submitting requests (demo and load generator). Keeps its
    /// agents' keys under the state directory ($SPONSOR_CONSOLE_STATE_DIR, else
    /// $XDG_STATE_HOME/sponsor-console) in fleet/, reuses those still registered and active,
    /// and registers the missing ones with a sponsor's token (SPONSOR_TOKEN or the console
    /// session).
    Fleet {
        #[arg(long, default_value_t = 8)]
        agents: usize,
        /// Submissions per second across the fleet.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Stop after this many submissions.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long (e.g. 5m). Without --count or --duration: until Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Share of submissions that delegate to a new child (0–1).
        #[arg(long, default_value_t = 0.15)]
        delegation_share: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, env = "SPONSOR_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for capabilities for this agent, for a bounded time.
    Elevation {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        #[command(flatten)]
        asking: Asking,
        #[arg(long)]
        on_behalf_of: Option<String>,
    },
    /// Give a child agent a subset of this agent's capabilities.
    Delegation {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        /// An existing child agent.
        #[arg(long, conflicts_with = "child_key")]
        child_did: Option<String>,
        /// A new child: its key file (see keygen) …
        #[arg(long, requires = "child_name")]
        child_key: Option<PathBuf>,
        /// … and its name.
        #[arg(long)]
        child_name: Option<String>,
        #[command(flatten)]
        asking: Asking,
    },
}

/// What every request says, elevation or delegation.
#[derive(Debug, clap::Args)]
pub struct Asking {
    #[arg(long = "capability", required = true)]
    capabilities: Vec<String>,
    /// How long, e.g. 30m or 2h.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    #[arg(long)]
    justification: String,
    #[arg(long)]
    ticket: Option<String>,
    #[arg(long)]
    context: Option<String>,
    /// Makes a retry safe: the same key and body get the same request.
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// Why an `agent-cli` command failed. The wrapped errors keep their own text and causes.
#[derive(Debug, thiserror::Error)]
pub enum AgentCliError {
    #[error("writing {}", path.display())]
    WriteKey {
        path: PathBuf,
        #[source]
        source: KeyFileError,
    },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    OutOfRange(#[from] TryFromIntError),
}

impl AgentCliError {
    /// The exit code, from the same table as `sponsor-console`'s: a server's 4xx says which
    /// (2 bad input, 3 not authenticated, 4 refused, 5 conflict), a key file that cannot be
    /// read is bad input, anything else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentCliError::Client(e) => exit::of_client(e),
            AgentCliError::Login(e) => exit::of_login(e),
            AgentCliError::Key(_) | AgentCliError::OutOfRange(_) => exit::USAGE,
            AgentCliError::WriteKey { .. } | AgentCliError::Session(_) | AgentCliError::Json(_) => {
                exit::FAILURE
            }
        }
    }
}

/// The server `agent-cli` talks to unless told otherwise.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Runs one `agent-cli` command and returns its exit code: [`exit::SUCCESS`], or
/// [`exit::STILL_PENDING`] when `wait` gave up.
pub async fn run(cli: Cli) -> Result<u8, AgentCliError> {
    let api = ApiClient::new(&cli.server)?;
    // Commands it suggests name the server only when it is not the default.
    let server_arg = if cli.server == DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {}", shell_word(&cli.server))
    };
    match cli.command {
        Command::Keygen { out } => {
            let key = AgentKey::generate();
            key.save_new(&out)
                .map_err(|source| AgentCliError::WriteKey {
                    path: out.clone(),
                    source,
                })?;
            println!("did:        {}", key.did());
            println!("public_key: {}", key.public_key());
            println!("key file:   {} (mode 0600)", out.display());
        }
        Command::Register {
            key,
            name,
            capabilities,
            model,
            runtime,
            entra_object_id,
            token,
            idempotency_key,
        } => {
            let key = AgentKey::load(&key)?;
            let sponsor = sponsor_client(&api, token).await?;
            let body = RegisterAgent {
                public_key: key.public_key(),
                name,
                capabilities,
                entra_object_id,
                model,
                runtime,
            };
            print_json(
                &sponsor
                    .register_agent(&body, idempotency_key.as_deref())
                    .await?,
            )?;
        }
        Command::Token { key, scope, dpop } => {
            let key = AgentKey::load(&key)?;
            print_json(&agent_tokens(&api, &key, scope.as_deref(), dpop).await?)?;
        }
        Command::Proof {
            key,
            method,
            token,
            url,
        } => {
            let proof = AgentKey::load(&key)?.dpop_proof(
                &method,
                &url,
                token.as_deref(),
                chrono::Utc::now(),
            )?;
            println!("{proof}");
        }
        Command::Introspect { key, token } => {
            let (me, own) = api
                .dpop_agent(&AgentKey::load(&key)?, system_clock(), None)
                .await?;
            let target = token.unwrap_or(own.access_token);
            print_json(&me.introspect(&target).await?)?;
        }
        Command::Request { kind } => {
            let (asked, key) = request(&api, kind).await?;
            eprint!("{}", next_steps(&asked, &key, &server_arg));
        }
        Command::Wait { key, id, timeout } => {
            return wait(&api, &key, &id, timeout, &server_arg).await;
        }
        Command::Cancel { key, id, reason } => {
            let me = as_agent(&api, &AgentKey::load(&key)?).await?;
            print_json(&me.cancel_request(&id, &reason).await?)?;
        }
        Command::Use { key, scope } => show_token(&api, &key, scope.as_deref()).await?,
        Command::Fleet {
            agents,
            rate,
            count,
            duration,
            delegation_share,
            seed,
            token,
        } => {
            let config = FleetConfig {
                agents,
                rate,
                delegation_share,
                seed,
                count,
                duration,
                concurrency: 64,
            };
            fleet(&api, token, &config).await?;
        }
    }
    Ok(exit::SUCCESS)
}

/// A client acting for a sponsor: `token` (SPONSOR_TOKEN), else the session `sponsor-console
/// login` saved for this server.
async fn sponsor_client(
    api: &ApiClient,
    token: Option<String>,
) -> Result<ApiClient, AgentCliError> {
    let token = match token {
        Some(t) => t,
        None => {
            let clock: SharedClock = Arc::new(SystemClock);
            let store = SessionStore::default_location()?;
            login::current_session(api, &store, &clock)
                .await?
                .access_token
        }
    };
    Ok(api.with_token(token))
}

fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// Fresh tokens for the agent of `key` to print: client credentials with a `private_key_jwt`
/// assertion valid for a minute; bound to the key with `dpop`, or when policy refuses a plain
/// token (`invalid_dpop_proof`).
async fn agent_tokens(
    api: &ApiClient,
    key: &AgentKey,
    scope: Option<&str>,
    dpop: bool,
) -> Result<TokenResponse, AgentCliError> {
    if !dpop {
        let assertion = key.assertion(
            &api.token_endpoint(),
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
        )?;
        match api.client_credentials(&assertion, scope).await {
            Err(e) if e.code() == Some(INVALID_DPOP_PROOF) => {
                eprintln!("policy requires a DPoP-bound token: {e}; asking for one");
            }
            other => return Ok(other?),
        }
    }
    let (_, tokens) = api.dpop_agent(key, system_clock(), scope).await?;
    eprintln!(
        "the token is bound to the key: send it as Authorization: DPoP with a proof for each \
         request (agent-cli proof)"
    );
    Ok(tokens)
}

/// A client acting as the agent of `key`, with a fresh token bound to the key (DPoP): every
/// call it makes carries a proof.
async fn as_agent(api: &ApiClient, key: &AgentKey) -> Result<ApiClient, AgentCliError> {
    Ok(api.dpop_agent(key, system_clock(), None).await?.0)
}

fn seconds(d: std::time::Duration) -> Result<i64, TryFromIntError> {
    i64::try_from(d.as_secs())
}

/// Submits the request and prints it as JSON; returns it with the key that asked.
async fn request(
    api: &ApiClient,
    kind: RequestCommand,
) -> Result<(Request, PathBuf), AgentCliError> {
    let (asked, key) = match kind {
        RequestCommand::Elevation {
            key,
            asking,
            on_behalf_of,
        } => {
            let me = as_agent(api, &AgentKey::load(&key)?).await?;
            let body = ElevationBody {
                capabilities: asking.capabilities,
                duration_seconds: seconds(asking.duration)?,
                justification: asking.justification,
                ticket: asking.ticket,
                context: asking.context,
                on_behalf_of,
            };
            let asked = me
                .request_elevation(&body, asking.idempotency_key.as_deref())
                .await?;
            (asked, key)
        }
        RequestCommand::Delegation {
            key,
            child_did,
            child_key,
            child_name,
            asking,
        } => {
            let path = key;
            let key = AgentKey::load(&path)?;
            let new_child = match (child_key, child_name) {
                (Some(path), Some(name)) => Some(NewChild {
                    public_key: AgentKey::load(&path)?.public_key(),
                    name,
                    model: None,
                    runtime: None,
                }),
                _ => None,
            };
            let me = as_agent(api, &key).await?;
            let body = DelegationBody {
                child_did,
                new_child,
                capabilities: asking.capabilities,
                duration_seconds: seconds(asking.duration)?,
                justification: asking.justification,
                ticket: asking.ticket,
                context: asking.context,
            };
            let asked = me
                .request_delegation(&body, asking.idempotency_key.as_deref())
                .await?;
            (asked, path)
        }
    };
    print_json(&asked)?;
    Ok((asked, key))
}

/// Long-polls until the request is decided or `timeout` passes; prints it either way.
async fn wait(
    api: &ApiClient,
    key: &Path,
    id: &str,
    timeout: std::time::Duration,
    server_arg: &str,
) -> Result<u8, AgentCliError> {
    let path = key;
    let key = AgentKey::load(path)?;
    eprintln!(
        "waiting up to {} (--timeout) for a sponsor to decide {id}; Ctrl-C stops waiting, the \
         request stays pending",
        humantime::format_duration(timeout)
    );
    let deadline = std::time::Instant::now() + timeout;
    loop {
        // Tokens live 15 minutes; take a fresh one for each long poll.
        let me = as_agent(api, &key).await?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let request = me.wait_request(id, left.as_secs().min(60)).await?;
        if request.status != RequestStatus::Pending {
            print_json(&request)?;
            return Ok(exit::SUCCESS);
        }
        if left.is_zero() {
            print_json(&request)?;
            eprintln!(
                "{id} is still pending; wait again with: agent-cli{server_arg} wait --key {} {id}",
                shell_word(&path.display().to_string())
            );
            return Ok(exit::STILL_PENDING);
        }
    }
}

/// `use`: what a fresh token carries, and whether each capability is standing or granted.
async fn show_token(api: &ApiClient, key: &Path, scope: Option<&str>) -> Result<(), AgentCliError> {
    let key = AgentKey::load(key)?;
    let (me, tokens) = api.dpop_agent(&key, system_clock(), scope).await?;
    let agent = me.agent(&key.did()).await?;
    let grants = me.grants(&GrantQuery::default()).await?;
    let until = chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(tokens.expires_in)?);
    println!("agent   {} ({})", agent.name, agent.did);
    println!(
        "token   valid until {} ({} s)",
        until.format("%Y-%m-%d %H:%M:%S UTC"),
        tokens.expires_in
    );
    for cap in tokens
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|c| !c.is_empty())
    {
        let source = grants
            .iter()
            .find(|g| g.capabilities.iter().any(|c| c == cap))
            .map(|g| {
                format!(
                    "grant {} until {}",
                    g.id,
                    g.not_after.format("%H:%M:%S UTC")
                )
            })
            .unwrap_or_else(|| "standing".into());
        println!("carries {cap:<32} {source}");
    }
    Ok(())
}
