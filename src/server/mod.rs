//! The governance server: axum router, state, auth, the OAuth/OIDC authorization server of the
//! local tenant, the `/v1` API and the store behind it.

pub mod chain;
pub mod dpop;
pub mod error;
pub mod extract;
pub mod held;
pub mod id_token;
pub mod idempotency;
pub mod leader;
pub mod oauth;
pub mod passwords;
pub mod ratelimit;
pub mod record;
pub mod revocations;
pub mod routes;
pub mod state;
pub mod store;
pub mod tokens;
pub mod trusted;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::domain::role;
use crate::protocol::audit::Actor;
use crate::settings::{Database, ServerSettings};
use ratelimit::FailureLimiter;
use state::AppState;
use store::{PgStore, PoolSize, SqliteStore, Store, StoreError};
use tokens::{AgentKeys, KeyError, KeyRing};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Lock(#[from] store::LockError),
}

/// Builds the state for a store: loads keys and seeds sponsors declared in the settings.
pub async fn build_state(
    store: Arc<dyn Store>,
    settings: ServerSettings,
    clock: SharedClock,
    issuer: String,
) -> Result<AppState, ServerError> {
    let now = clock.now();
    let keys = KeyRing::load(store.as_ref(), now).await?;
    for s in &settings.sponsors {
        let roles = role::parse_list(&s.roles.join(","))
            .map_err(|e| ServerError::Config(format!("sponsor {}: {e}", s.username)))?;
        if !passwords::is_valid_hash(&s.password_hash) {
            return Err(ServerError::Config(format!(
                "sponsor {}: password_hash is not an argon2 PHC string (use `governance-server sponsors hash-password`)",
                s.username
            )));
        }
        let current = store.sponsor_by_username(&s.username).await?;
        let unchanged = current.as_ref().is_some_and(|c| {
            c.roles == roles && c.password_hash == s.password_hash && c.display_name == display(s)
        });
        if !unchanged {
            let upsert = store::SponsorUpsert {
                username: s.username.clone(),
                display_name: display(s),
                roles,
                password_hash: s.password_hash.clone(),
                source: "config".into(),
            };
            store.upsert_sponsor(&upsert, Actor::system(), now).await?;
        }
    }
    let policy = settings
        .resolve_policy()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let trusted = trusted::TrustedIssuers::from_settings(&settings.trusted_issuers)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let limits = &settings.rate_limits;
    // After the sponsors are written: the index starts from the tables as they are now.
    let lifetime = settings
        .tokens
        .agent_access_seconds
        .max(settings.tokens.sponsor_access_seconds);
    let revocations = revocations::Revocations::load(
        store.as_ref(),
        now,
        chrono::Duration::seconds(i64::from(lifetime)),
    )
    .await?;
    Ok(AppState {
        store,
        keys,
        agent_keys: AgentKeys::default(),
        dpop_proofs: dpop::ProofReplay::default(),
        clock,
        issuer,
        user_code_failures: FailureLimiter::new(
            limits.user_code_failures,
            limits.user_code_window_seconds,
        ),
        password_failures: FailureLimiter::new(
            limits.password_failures,
            limits.password_window_seconds,
        ),
        account_failures: FailureLimiter::new(
            limits.account_failures,
            limits.password_window_seconds,
        ),
        address_failures: FailureLimiter::new(
            limits.address_failures,
            limits.password_window_seconds,
        ),
        device_authorizations: FailureLimiter::new(
            limits.device_authorizations,
            limits.device_window_seconds,
        ),
        record: record::RecordWatch::default(),
        stopping: Arc::new(tokio::sync::watch::channel(false).0),
        held: held::HeldCalls::default(),
        revocations,
        trusted,
        policy: Arc::new(policy),
        settings: Arc::new(settings),
    })
}

fn display(s: &crate::settings::SponsorSettings) -> String {
    if s.display_name.is_empty() {
        s.username.clone()
    } else {
        s.display_name.clone()
    }
}

/// A server running on a bound listener; dropping it does not stop it, `shutdown` does.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), std::io::Error>>>,
    /// The database's serve lock, held while this server runs (none for a store the caller
    /// opened itself).
    _lock: Option<store::ServeLock>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        self.state.issuer.clone()
    }

    /// Stops accepting, finishes in-flight requests, and waits.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| ServerError::Config(format!("server task: {e}")))??;
        }
        Ok(())
    }
}

/// Opens the store at `db`, binds `listener`'s address as issuer unless configured, and serves
/// in a background task.
pub async fn start(
    settings: ServerSettings,
    db: &Path,
    listener: TcpListener,
    clock: SharedClock,
) -> Result<RunningServer, ServerError> {
    let addr = listener.local_addr()?;
    let holder = format!("pid {}, listening on {addr}", std::process::id());
    let lock = store::ServeLock::acquire(db, &holder)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await?);
    let mut running = start_with_store(settings, store, listener, clock).await?;
    running._lock = Some(lock);
    Ok(running)
}

/// Opens the store `database` names (a SQLite file, as [`start`] does, or PostgreSQL) and
/// serves in a background task. PostgreSQL takes no serve lock: the database serializes writers
/// itself.
pub async fn start_on(
    settings: ServerSettings,
    database: &Database,
    listener: TcpListener,
    clock: SharedClock,
) -> Result<RunningServer, ServerError> {
    match database {
        Database::Sqlite(path) => start(settings, path, listener, clock).await,
        Database::Postgres(url) => {
            let size = PoolSize::from_settings(&settings.postgres)
                .map_err(|e| ServerError::Config(e.to_string()))?;
            let store: Arc<dyn Store> = Arc::new(PgStore::connect_pooled(url, size).await?);
            start_with_store(settings, store, listener, clock).await
        }
    }
}

pub async fn start_with_store(
    settings: ServerSettings,
    store: Arc<dyn Store>,
    listener: TcpListener,
    clock: SharedClock,
) -> Result<RunningServer, ServerError> {
    let addr = listener.local_addr()?;
    let issuer = settings.issuer_for(addr);
    let every = settings
        .audit
        .checkpoint_interval()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let state_check_every = settings
        .audit
        .state_check_interval()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let sinks = chain::CheckpointSinks::from_settings(&settings.audit);
    let state = build_state(store, settings, clock, issuer).await?;
    let app = routes::router(state.clone());
    // One instance on a shared database runs the periodic jobs; the others skip them.
    let (leadership, leading) = leader::start(state.store.clone()).await;
    let (tx, rx) = oneshot::channel::<()>();
    // Keep the key ring current: picks up `keys rotate` run by another process and drops
    // retired keys once their tokens have expired.
    let refresher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                if let Err(e) = state
                    .keys
                    .reload(state.store.as_ref(), state.clock.now())
                    .await
                {
                    tracing::warn!(error = %e, "key ring reload failed");
                }
            }
        })
    };
    // Pending requests past their TTL expire (a deny) whether or not anyone is looking.
    let sweeper = {
        let state = state.clone();
        let leadership = leadership.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                if !leadership.leads() {
                    continue;
                }
                if let Err(e) = sweep(&state).await {
                    tracing::warn!(error = %e, "expiring pending requests failed");
                }
            }
        })
    };
    // Changes made by other processes and instances reach the revocation index.
    let follower = revocations::spawn_follower(state.clone());
    // Held webhook calls are woken by the decisions and expiries the chain records.
    let held = held::spawn_follower(state.held.clone(), state.store.clone());
    // The tables agree with the audit chain: checked now and on a schedule.
    let record_check = record::spawn(state.clone(), state_check_every, leadership.clone());
    // Signed checkpoints of the audit head, to sinks outside the database, when it changed.
    let checkpoints = (!sinks.is_empty()).then(|| {
        let state = state.clone();
        let mut checkpointer = chain::Checkpointer::new(sinks);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if !leadership.leads() {
                    continue;
                }
                if let Err(e) = checkpointer.step(&state).await {
                    tracing::error!(error = %e, "audit checkpoint failed");
                }
            }
        })
    });
    let store = state.store.clone();
    let stopping = state.stopping.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
            // Event streams never end on their own: end them, or shutdown waits for ever.
            stopping.send_replace(true);
        })
        .await;
        refresher.abort();
        sweeper.abort();
        record_check.abort();
        follower.abort();
        held.abort();
        if let Some(c) = checkpoints {
            c.abort();
        }
        leading.abort();
        // Another instance takes the jobs over at once rather than when this one exits.
        store.resign().await;
        served
    });
    tracing::info!(%addr, "governance server listening");
    Ok(RunningServer {
        addr,
        state,
        shutdown: Some(tx),
        task: Some(task),
        _lock: None,
    })
}

/// Rotates the signing key in a database: the old key stays published for as long as the
/// longest-lived token it signed can still be valid.
pub async fn rotate_keys(
    store: &dyn Store,
    settings: &ServerSettings,
    now: chrono::DateTime<Utc>,
) -> Result<String, ServerError> {
    let longest = settings
        .tokens
        .agent_access_seconds
        .max(settings.tokens.sponsor_access_seconds);
    let key = tokens::generate_signing_key(now)?;
    let kid = key.kid.clone();
    // The RSA key that signs ID tokens is rotated with it.
    let id_key = id_token::generate_id_token_key(now)?;
    store
        .rotate_signing_keys(
            &[key, id_key],
            now + chrono::Duration::seconds(i64::from(longest)),
            Actor::system(),
        )
        .await?;
    Ok(kid)
}

/// Expires every pending request past its TTL; returns their ids.
pub async fn sweep(state: &AppState) -> Result<Vec<String>, StoreError> {
    let now = state.clock.now();
    let expired = state
        .store
        .expire_requests(now, state.policy.trust.expired)
        .await?;
    state.store.expire_grants(now).await?;
    // Action requests whose webhook call is gone (a held call expires its own).
    state.store.expire_actions(now).await?;
    state.store.forget_expired_assertions(now).await?;
    Ok(expired)
}
