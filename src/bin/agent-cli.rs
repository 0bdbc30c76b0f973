//! `agent-cli`: what an agent does against the governance server — make its key, be registered
//! by a sponsor, get tokens with `private_key_jwt`, introspect them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::clock::{SharedClock, SystemClock};
use sponsor_console::console::login;
use sponsor_console::console::session::SessionStore;
use sponsor_console::protocol::agents::RegisterAgent;

#[derive(Debug, Parser)]
#[command(
    name = "agent-cli",
    version,
    about = "Act as an AI agent against the governance server"
)]
struct Cli {
    /// Governance server base URL.
    #[arg(
        long,
        global = true,
        env = "GOVERNANCE_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Get an access token with client credentials and print the token response as JSON.
    Token {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        /// Ask for less than the agent holds (space-separated capabilities).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Introspect a token (default: a fresh one of this agent) and print the answer.
    Introspect {
        #[arg(long, default_value = "agent.pem")]
        key: PathBuf,
        /// The token to introspect; an agent may introspect only its own tokens.
        token: Option<String>,
    },
}

async fn agent_token(
    api: &ApiClient,
    key: &AgentKey,
    scope: Option<&str>,
) -> anyhow::Result<String> {
    let assertion = key.assertion(
        &api.token_endpoint(),
        chrono::Utc::now(),
        chrono::Duration::seconds(60),
    )?;
    Ok(api
        .client_credentials(&assertion, scope)
        .await?
        .access_token)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let api = ApiClient::new(&cli.server)?;
    match cli.command {
        Command::Keygen { out } => {
            let key = AgentKey::generate();
            key.save_new(&out)
                .with_context(|| format!("writing {}", out.display()))?;
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
            let token = match token {
                Some(t) => t,
                None => {
                    let clock: SharedClock = Arc::new(SystemClock);
                    let store = SessionStore::default_location()?;
                    login::current_session(&api, &store, &clock)
                        .await?
                        .access_token
                }
            };
            let agent = api
                .with_token(token)
                .register_agent(
                    &RegisterAgent {
                        public_key: key.public_key(),
                        name,
                        capabilities,
                        entra_object_id,
                        model,
                        runtime,
                    },
                    idempotency_key.as_deref(),
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&agent)?);
        }
        Command::Token { key, scope } => {
            let key = AgentKey::load(&key)?;
            let assertion = key.assertion(
                &api.token_endpoint(),
                chrono::Utc::now(),
                chrono::Duration::seconds(60),
            )?;
            let tokens = api.client_credentials(&assertion, scope.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&tokens)?);
        }
        Command::Introspect { key, token } => {
            let key = AgentKey::load(&key)?;
            let own = agent_token(&api, &key, None).await?;
            let target = token.unwrap_or_else(|| own.clone());
            let answer = api.with_token(own).introspect(&target).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sponsor_console::telemetry::init_stderr("warn");
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
