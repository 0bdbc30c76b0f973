//! `governance-server`: the system of record for agent identities and the OAuth server of the
//! local tenant. `serve` runs it; `keys rotate` and `sponsors …` administer its database.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sponsor_console::clock::SystemClock;
use sponsor_console::domain::role;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::server::passwords::hash_password;
use sponsor_console::server::store::{SponsorUpsert, SqliteStore, Store};
use sponsor_console::server::{rotate_keys, start};
use sponsor_console::settings::{self, ServerSettings};
use zeroize::Zeroizing;

#[derive(Debug, Parser)]
#[command(
    name = "governance-server",
    version,
    about = "Governance server: agent identities, sign-in, tokens and audit"
)]
struct Cli {
    /// Settings file (default: $XDG_CONFIG_HOME/sponsor-console/server.toml if it exists, else
    /// the shipped defaults).
    #[arg(long, global = true, env = "GOVERNANCE_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite database file (overrides the settings).
    #[arg(long, global = true, env = "GOVERNANCE_DATABASE")]
    database: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve {
        /// Address to listen on (overrides the settings).
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Human accounts of the local tenant.
    Sponsors {
        #[command(subcommand)]
        command: SponsorsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Start signing with a new key; the old one stays published until its tokens expire.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum SponsorsCommand {
    /// Add a sponsor, or update one with the same username. Prompts for the password (or reads
    /// one line from stdin with --password-stdin).
    Add {
        username: String,
        /// Comma-separated: sponsor, security-lead, on-call, admin.
        #[arg(long, default_value = "sponsor")]
        roles: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List sponsors.
    List,
    /// Print an argon2 hash of a password, for `[[sponsors]]` in the settings file.
    HashPassword {
        #[arg(long)]
        password_stdin: bool,
    },
}

fn load_settings(cli: &Cli) -> anyhow::Result<ServerSettings> {
    let path = cli
        .config
        .clone()
        .or_else(|| settings::user_config_file("server.toml"));
    let settings = ServerSettings::load(path.as_deref())?;
    if let Some(p) = &path {
        tracing::info!(path = %p.display(), "settings loaded");
    }
    Ok(settings)
}

fn database_path(cli: &Cli, settings: &ServerSettings) -> PathBuf {
    cli.database
        .clone()
        .or_else(|| {
            (!settings.server.database.is_empty()).then(|| PathBuf::from(&settings.server.database))
        })
        .unwrap_or_else(settings::default_database_path)
}

fn read_password(from_stdin: bool, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        let first = Zeroizing::new(rpassword::prompt_password("Password: ")?);
        if confirm {
            let second = Zeroizing::new(rpassword::prompt_password("Again: ")?);
            if first != second {
                bail!("the passwords differ");
            }
        }
        first
    };
    if password.chars().count() < 12 {
        bail!("use a password of at least 12 characters");
    }
    if password.len() > 1024 {
        bail!("the password is longer than 1024 bytes");
    }
    Ok(password)
}

async fn open_store(path: &Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

async fn serve(cli: &Cli, bind: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut settings = load_settings(cli)?;
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    let db = database_path(cli, &settings);
    let listener = tokio::net::TcpListener::bind(settings.server.bind)
        .await
        .with_context(|| format!("binding {}", settings.server.bind))?;
    let server = start(settings, &db, listener, Arc::new(SystemClock)).await?;
    eprintln!(
        "governance-server listening on {} (database {})",
        server.base_url(),
        db.display()
    );
    shutdown_signal().await;
    eprintln!("shutting down");
    server.shutdown().await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sponsor_console::telemetry::init_stderr("info");
    match &cli.command {
        None => serve(&cli, None).await,
        Some(Command::Serve { bind }) => serve(&cli, *bind).await,
        Some(Command::Keys {
            command: KeysCommand::Rotate,
        }) => {
            let settings = load_settings(&cli)?;
            let store = open_store(&database_path(&cli, &settings)).await?;
            let kid = rotate_keys(&store, &settings, chrono::Utc::now()).await?;
            println!(
                "now signing with key {kid}; the previous key stays published until its tokens expire"
            );
            store.close().await;
            Ok(())
        }
        Some(Command::Sponsors { command }) => match command {
            SponsorsCommand::HashPassword { password_stdin } => {
                let password = read_password(*password_stdin, true)?;
                println!("{}", hash_password(&password)?);
                Ok(())
            }
            SponsorsCommand::List => {
                let settings = load_settings(&cli)?;
                let store = open_store(&database_path(&cli, &settings)).await?;
                for s in store.list_sponsors().await? {
                    let roles: Vec<&str> = s.roles.iter().map(|r| r.as_str()).collect();
                    println!("{}\t{}\t{}", s.username, roles.join(","), s.display_name);
                }
                store.close().await;
                Ok(())
            }
            SponsorsCommand::Add {
                username,
                roles,
                display_name,
                password_stdin,
            } => {
                sponsor_console::domain::text::name("username", username)?;
                if username.contains(char::is_whitespace) {
                    bail!("a username has no spaces");
                }
                let roles = role::parse_list(roles)?;
                let display_name = display_name.clone().unwrap_or_else(|| username.clone());
                sponsor_console::domain::text::name("display name", &display_name)?;
                let password = read_password(*password_stdin, true)?;
                let settings = load_settings(&cli)?;
                let store = open_store(&database_path(&cli, &settings)).await?;
                let record = store
                    .upsert_sponsor(
                        &SponsorUpsert {
                            username: username.clone(),
                            display_name,
                            roles,
                            password_hash: hash_password(&password)?,
                            source: "cli".into(),
                        },
                        Actor::system(),
                        chrono::Utc::now(),
                    )
                    .await?;
                println!("sponsor {} saved (id {})", record.username, record.id);
                store.close().await;
                Ok(())
            }
        },
    }
}
