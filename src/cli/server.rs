//! `governance-server`: its arguments, serving until a signal, and the offline administration
//! of its database (`keys rotate`, `sponsors add|list|hash-password`); `policy show` prints the
//! policy in force.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use crate::clock::SystemClock;
use crate::domain::{Invalid, role};
use crate::protocol::audit::Actor;
use crate::server::passwords::{
    HashError, PASSWORD_RULE, PasswordRuleError, check_password_rule, hash_password,
};
use crate::server::store::{PgStore, PoolSize, SponsorUpsert, SqliteStore, Store, StoreError};
use crate::server::{ServerError, rotate_keys, start_on};
use crate::settings::{self, Database, ServerSettings, SettingsError};

#[derive(Debug, Parser)]
#[command(
    name = "governance-server",
    version,
    about = "Governance server: agent identities, sign-in, tokens and audit"
)]
pub struct Cli {
    /// Settings file (default: $XDG_CONFIG_HOME/sponsor-console/server.toml if it exists, else
    /// the shipped defaults).
    #[arg(long, global = true, env = "GOVERNANCE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database (overrides the settings): a SQLite file (a path or sqlite://PATH) or a
    /// PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE).
    #[arg(long, global = true, env = "GOVERNANCE_DATABASE")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// The governance policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The AGT approval webhook.
    Agt {
        #[command(subcommand)]
        command: AgtCommand,
    },
    /// Resource servers, registered as confidential OAuth clients that may introspect tokens.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a resource server. Without --public-key it authenticates with a secret
    /// (client_secret_basic), printed once and stored only as its SHA-256; with one, with client
    /// assertions signed by that Ed25519 key (private_key_jwt).
    Add {
        name: String,
        /// The Ed25519 public key (the `x` of its JWK, base64url) for private_key_jwt.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// List the registered resource servers.
    List,
    /// Remove one: its credential stops working at once.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AgtCommand {
    /// Make a credential for an integration that calls the webhook without an agent's token:
    /// prints the credential once (give it to the AGT deployment as
    /// `Authorization: Bearer …`) and the `[[agt.integrations]]` entry, which holds only its
    /// SHA-256, to add to the settings file.
    Credential {
        /// The integration's name (letters, digits, '-', '_', '.').
        name: String,
        /// The username of the sponsor who answers for it.
        #[arg(long)]
        sponsor: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy `serve` would use, as TOML: the policy file (`[server] policy`, else
    /// $XDG_CONFIG_HOME/sponsor-console/policy.toml) layered over the shipped defaults.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; the old one stays published until its tokens expire.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum SponsorsCommand {
    /// Add a sponsor, or update one with the same username. Prompts for the password (at least
    /// 12 characters, at most 1024 bytes), or reads one line from stdin with --password-stdin.
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
    /// Print an argon2 hash of a password (at least 12 characters, at most 1024 bytes), for
    /// `[[sponsors]]` in the settings file.
    HashPassword {
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Why a `governance-server` command failed. The wrapped errors keep their own text and
/// causes, so the report reads the same as the error itself.
#[derive(Debug, thiserror::Error)]
pub enum ServerCliError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The cause in full, then what to do about it where that is known.
    #[error("opening the database {database}: {source}{}", source.hint().map(|h| format!(" — {h}")).unwrap_or_default())]
    Open {
        database: Database,
        #[source]
        source: StoreError,
    },
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("a username has no spaces")]
    UsernameWithSpaces,
    #[error("usernames starting with entra: are kept for sponsors from Microsoft Entra")]
    ReservedUsername,
    #[error("the passwords differ")]
    PasswordsDiffer,
    #[error(transparent)]
    PasswordRule(#[from] PasswordRuleError),
}

/// Runs one `governance-server` command; `serve` (the default) returns after SIGINT or SIGTERM.
pub async fn run(cli: Cli) -> Result<(), ServerCliError> {
    match &cli.command {
        None => serve(&cli, None).await,
        Some(Command::Serve { bind }) => serve(&cli, *bind).await,
        Some(Command::Keys {
            command: KeysCommand::Rotate,
        }) => {
            let kid = rotate(&cli).await?;
            println!(
                "now signing with key {kid}; the previous key stays published until its tokens expire"
            );
            Ok(())
        }
        Some(Command::Policy {
            command: PolicyCommand::Show,
        }) => {
            print!("{}", show_policy(&load_settings(&cli)?)?);
            Ok(())
        }
        Some(Command::Agt {
            command: AgtCommand::Credential { name, sponsor },
        }) => {
            print!("{}", agt_credential(name, sponsor)?);
            Ok(())
        }
        Some(Command::Clients { command }) => clients(&cli, command).await,
        Some(Command::Sponsors { command }) => match command {
            SponsorsCommand::HashPassword { password_stdin } => {
                let password = read_password(*password_stdin, true)?;
                println!("{}", hash_password(&password)?);
                Ok(())
            }
            SponsorsCommand::List => list_sponsors(&cli).await,
            SponsorsCommand::Add {
                username,
                roles,
                display_name,
                password_stdin,
            } => {
                crate::domain::text::name("username", username)?;
                if username.contains(char::is_whitespace) {
                    return Err(ServerCliError::UsernameWithSpaces);
                }
                if crate::domain::external::is_reserved_username(username) {
                    return Err(ServerCliError::ReservedUsername);
                }
                let roles = role::parse_list(roles)?;
                let display_name = display_name.clone().unwrap_or_else(|| username.clone());
                crate::domain::text::name("display name", &display_name)?;
                let password = read_password(*password_stdin, true)?;
                add_sponsor(
                    &cli,
                    SponsorUpsert {
                        username: username.clone(),
                        display_name,
                        roles,
                        password_hash: hash_password(&password)?,
                        source: "cli".into(),
                    },
                )
                .await
            }
        },
    }
}

fn load_settings(cli: &Cli) -> Result<ServerSettings, ServerCliError> {
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

/// `policy show`: the merged policy, headed by where it comes from.
fn show_policy(settings: &ServerSettings) -> Result<String, ServerCliError> {
    let file = settings.policy_file()?;
    let origin = match &file.path {
        Some(path) => format!("{} layered over the shipped defaults", path.display()),
        None => "the shipped defaults (config/policy.default.toml)".into(),
    };
    let text = crate::domain::policy::to_toml_text(&file.table)
        .map_err(|e| SettingsError::Invalid(format!("printing the policy: {e}")))?;
    Ok(format!("# The policy in force: {origin}.\n\n{text}"))
}

/// `agt credential`: a new credential and the settings entry with its hash, checked as the
/// server will check it.
fn agt_credential(name: &str, sponsor: &str) -> Result<String, ServerCliError> {
    use sha2::{Digest, Sha256};
    let credential = settings::new_credential();
    let entry = settings::AgtIntegration {
        name: name.to_owned(),
        sponsor: sponsor.to_owned(),
        credential_sha256: hex::encode(Sha256::digest(credential.as_bytes())),
    };
    settings::AgtSettings {
        integrations: vec![entry.clone()],
        ..settings::AgtSettings::default()
    }
    .validate()?;
    let toml = |s: &str| toml::Value::String(s.to_owned()).to_string();
    Ok(format!(
        "# The credential, shown this once (the server keeps only its SHA-256):\n\
         #   {credential}\n\
         # The AGT deployment sends it as the header Authorization: Bearer <credential>.\n\
         # Add this to the server's settings file and restart the server:\n\
         [[agt.integrations]]\nname = {}\nsponsor = {}\ncredential_sha256 = \"{}\"\n",
        toml(&entry.name),
        toml(&entry.sponsor),
        entry.credential_sha256,
    ))
}

fn database(cli: &Cli, settings: &ServerSettings) -> Database {
    cli.database
        .as_deref()
        .or_else(|| (!settings.server.database.is_empty()).then_some(&*settings.server.database))
        .map(Database::parse)
        .unwrap_or_else(|| Database::Sqlite(settings::default_database_path()))
}

fn read_password(from_stdin: bool, confirm: bool) -> Result<Zeroizing<String>, ServerCliError> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        let prompt = format!("Password ({PASSWORD_RULE}): ");
        let first = Zeroizing::new(rpassword::prompt_password(prompt)?);
        // Said before asking for it again, not after.
        check_password_rule(&first)?;
        if confirm {
            let second = Zeroizing::new(rpassword::prompt_password("Again: ")?);
            if first != second {
                return Err(ServerCliError::PasswordsDiffer);
            }
        }
        first
    };
    check_password_rule(&password)?;
    Ok(password)
}

// Every call into the server and its store is below, so changes there meet this file in one
// place.

/// A store opened for an offline command, of either backend.
enum Opened {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Opened {
    fn store(&self) -> &dyn Store {
        match self {
            Self::Sqlite(s) => s,
            Self::Postgres(s) => s,
        }
    }

    async fn close(self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

async fn open_store(
    database: &Database,
    settings: &ServerSettings,
) -> Result<Opened, ServerCliError> {
    let opened = match database {
        Database::Sqlite(path) => SqliteStore::open(path).await.map(Opened::Sqlite),
        Database::Postgres(url) => {
            let size = PoolSize::from_settings(&settings.postgres)?;
            PgStore::connect_pooled(url, size)
                .await
                .map(Opened::Postgres)
        }
    };
    opened.map_err(|source| ServerCliError::Open {
        database: database.clone(),
        source,
    })
}

async fn serve(cli: &Cli, bind: Option<SocketAddr>) -> Result<(), ServerCliError> {
    let mut settings = load_settings(cli)?;
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    let db = database(cli, &settings);
    let addr = settings.server.bind;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerCliError::Bind { addr, source })?;
    let server = match start_on(settings, &db, listener, Arc::new(SystemClock)).await {
        Ok(server) => server,
        // A database that cannot be opened is named, with why.
        Err(ServerError::Store(source)) => {
            return Err(ServerCliError::Open {
                database: db,
                source,
            });
        }
        Err(e) => return Err(e.into()),
    };
    // The address it listens on, and the public issuer when that is another (behind a load
    // balancer, say).
    let local = format!("http://{}", server.addr);
    let issuer = server.base_url();
    let named = if issuer == local {
        String::new()
    } else {
        format!("issuer {issuer}, ")
    };
    eprintln!("governance-server listening on {local} ({named}database {db})");
    shutdown_signal().await;
    eprintln!("shutting down");
    server.shutdown().await?;
    Ok(())
}

async fn rotate(cli: &Cli) -> Result<String, ServerCliError> {
    let settings = load_settings(cli)?;
    let store = open_store(&database(cli, &settings), &settings).await?;
    let kid = rotate_keys(store.store(), &settings, chrono::Utc::now()).await?;
    store.close().await;
    Ok(kid)
}

async fn list_sponsors(cli: &Cli) -> Result<(), ServerCliError> {
    let settings = load_settings(cli)?;
    let store = open_store(&database(cli, &settings), &settings).await?;
    for s in store.store().list_sponsors().await? {
        let roles: Vec<&str> = s.roles.iter().map(|r| r.as_str()).collect();
        println!("{}\t{}\t{}", s.username, roles.join(","), s.display_name);
    }
    store.close().await;
    Ok(())
}

async fn add_sponsor(cli: &Cli, sponsor: SponsorUpsert) -> Result<(), ServerCliError> {
    let settings = load_settings(cli)?;
    let store = open_store(&database(cli, &settings), &settings).await?;
    let record = store
        .store()
        .upsert_sponsor(&sponsor, Actor::system(), chrono::Utc::now())
        .await?;
    println!("sponsor {} saved (id {})", record.username, record.id);
    store.close().await;
    Ok(())
}

/// `clients add|list|remove`.
async fn clients(cli: &Cli, command: &ClientsCommand) -> Result<(), ServerCliError> {
    use crate::server::store::{ClientAuth, ResourceClient};
    let settings = load_settings(cli)?;
    let store = open_store(&database(cli, &settings), &settings).await?;
    let now = chrono::Utc::now();
    match command {
        ClientsCommand::Add { name, public_key } => {
            crate::domain::text::name("name", name)?;
            let client_id = format!(
                "{}{}",
                crate::server::oauth::CLIENT_ID_PREFIX,
                hex::encode(rand::random::<[u8; 16]>())
            );
            let (auth, secret) = match public_key {
                Some(key) => {
                    jsonwebtoken::DecodingKey::from_ed_components(key)
                        .ok()
                        .filter(|_| key.len() == 43)
                        .ok_or_else(|| {
                            Invalid::new(
                                "invalid_key",
                                "--public-key must be an Ed25519 key, base64url",
                            )
                        })?;
                    let key = key.clone();
                    (ClientAuth::PrivateKeyJwt { public_key: key }, None)
                }
                None => {
                    let secret = crate::server::tokens::new_secret();
                    let secret_sha256 = crate::server::tokens::secret_hash(&secret);
                    (ClientAuth::SecretBasic { secret_sha256 }, Some(secret))
                }
            };
            let client = ResourceClient {
                client_id: client_id.clone(),
                name: name.clone(),
                auth,
                created_at: now,
            };
            match store
                .store()
                .add_resource_client(&client, Actor::system(), now)
                .await
            {
                Err(StoreError::Duplicate) => {
                    return Err(
                        Invalid::new("duplicate", format!("a client named {name} exists")).into(),
                    );
                }
                other => other?,
            }
            println!("client_id {client_id}");
            if let Some(secret) = secret {
                println!("client_secret {secret}");
                println!("(shown this once; the server keeps only its SHA-256)");
            }
        }
        ClientsCommand::List => {
            for c in store.store().resource_clients().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.client_id,
                    c.name,
                    c.auth.method(),
                    c.created_at.to_rfc3339()
                );
            }
        }
        ClientsCommand::Remove { name } => {
            if !store
                .store()
                .remove_resource_client(name, Actor::system(), now)
                .await?
            {
                return Err(Invalid::new("not_found", format!("no client named {name}")).into());
            }
            println!("removed {name}");
        }
    }
    store.close().await;
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
