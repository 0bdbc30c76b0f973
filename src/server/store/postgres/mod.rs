//! PostgreSQL implementation of the store traits, on a pool of connections. Every write takes
//! one transaction-scoped advisory lock first, so writes to one store serialize as they do on
//! SQLite's single writer, from any number of connections or server instances: the facts a
//! rule reads stay true until its outcome commits, and the audit chain's `seq` is gap-free in
//! commit order. One module per area implements that area's trait, as for SQLite. `live.rs`
//! is what instances share beyond the tables: wake-ups by `LISTEN/NOTIFY` and the leader's lock.

mod actions;
mod agents;
mod approval;
mod audit;
mod clients;
mod grants;
mod live;
mod requests;
mod rows;
mod sign_in;
mod state;
mod tokens;
mod trust;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Transaction};
use tokio::sync::watch;

use super::records::{caps_of, from_ms, json_list, ms, opt_from_ms, parse_list};
use crate::domain::idempotency;
use crate::protocol::agents::AgentStatus;
use crate::server::store::{Idempotency, StoreError, StoreResult, StoredResponse};
use crate::settings::{PostgresSettings, SettingsError};

type Tx<'a> = Transaction<'a, Postgres>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The first key of the writers' advisory lock; the second is the schema's, so stores in
/// different schemas of one database do not wait for each other.
const WRITE_LOCK_CLASS: i32 = 0x5343_4f4e; // "SCON"

/// How long a request waits for a connection before the store counts as unavailable (a 503
/// with `Retry-After`), rather than hanging while the database is away.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// An instance's pool: how many connections it keeps for requests, and how long a request
/// waits for one before the store counts as unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSize {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: ACQUIRE_TIMEOUT,
        }
    }
}

impl PoolSize {
    /// The size `[postgres]` in the server settings asks for.
    pub fn from_settings(settings: &PostgresSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Self {
            max_connections: settings.max_connections,
            acquire_timeout: settings.acquire_timeout()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Bumped after every committed write, this instance's or (by `NOTIFY`) another's, so
    /// live readers (SSE, long polls, the revocation index) wake up.
    changes: Arc<watch::Sender<u64>>,
    listening: Arc<live::Listening>,
    leader: Arc<live::Leader>,
}

/// Whether every migration this build knows is applied, unchanged, and no other: then the
/// migrator (whose first statement is a `CREATE TABLE IF NOT EXISTS`) need not run, and a
/// role with only `SELECT`, `INSERT`, `UPDATE` and `DELETE` rights may serve. A migration
/// applied that this build does not know, or one changed since, is refused as the migrator
/// would refuse it.
async fn up_to_date(conn: &mut PgConnection) -> StoreResult<bool> {
    use sqlx::migrate::MigrateError;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(false);
    }
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?;
    let known: Vec<_> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    for (version, checksum, success) in &applied {
        match known.iter().find(|m| m.version == *version) {
            None => return Err(MigrateError::VersionMissing(*version).into()),
            Some(m) if *m.checksum != **checksum => {
                return Err(MigrateError::VersionMismatch(*version).into());
            }
            // A failed one: the migrator says what to do about it.
            Some(_) if !success => return Ok(false),
            Some(_) => {}
        }
    }
    Ok(applied.len() == known.len())
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) with the default pool and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_pooled(url, PoolSize::default()).await
    }

    /// Connects to `url` with a pool of `size` and runs the migrations.
    pub async fn connect_pooled(url: &str, size: PoolSize) -> StoreResult<Self> {
        Self::connect_with_pool(PgConnectOptions::from_str(url)?, size).await
    }

    /// Connects with `options` (a schema through its `search_path`, say) and runs the
    /// migrations.
    pub async fn connect_with(options: PgConnectOptions) -> StoreResult<Self> {
        Self::connect_with_pool(options, PoolSize::default()).await
    }

    async fn connect_with_pool(options: PgConnectOptions, size: PoolSize) -> StoreResult<Self> {
        // The migrations run on a connection of their own, made directly: a database that
        // cannot be reached says why (a pool would only say it timed out).
        let mut conn = PgConnection::connect_with(&options).await?;
        if !up_to_date(&mut conn).await? {
            MIGRATOR.run(&mut conn).await?;
        }
        conn.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(size.max_connections)
            .acquire_timeout(size.acquire_timeout)
            // A connection that died with the database is found before use and replaced, so
            // the store recovers by itself when the database is back.
            .test_before_acquire(true)
            .connect_with(options.clone())
            .await?;
        let (schema,): (String,) = sqlx::query_as("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let changes = Arc::new(watch::channel(0).0);
        let listening = live::listen(options.clone(), schema, Arc::downgrade(&changes)).await?;
        Ok(Self {
            pool,
            changes,
            listening: Arc::new(listening),
            leader: Arc::new(live::Leader::new(options)),
        })
    }

    /// Starts a write: a transaction holding the store's write lock until it ends.
    async fn write(&self) -> StoreResult<Tx<'static>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(WRITE_LOCK_CLASS)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Commits and wakes everyone waiting for changes, here at once and on every instance by
    /// the `NOTIFY` the commit delivers. Only a commit that returned Ok is acknowledged.
    async fn finish(&self, mut tx: Tx<'_>) -> StoreResult<()> {
        live::notify(&mut tx).await?;
        tx.commit().await?;
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        Ok(())
    }

    /// Stops listening, lets go of the leader's lock and closes the pool.
    pub async fn close(&self) {
        self.listening.stop();
        self.leader.resign().await;
        self.pool.close().await;
    }
}

/// Free text as a JSON string, for the columns that keep it as `json`: PostgreSQL's `text`
/// cannot hold U+0000, a JSON string can (as `\u0000`), and it goes into the request JSON as
/// it is.
fn json_text(text: &str) -> StoreResult<String> {
    serde_json::to_string(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Starts a read of one consistent snapshot of every table.
pub(super) async fn snapshot(pool: &PgPool) -> StoreResult<Tx<'static>> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?)
}

/// The columns of a new agent.
pub(super) struct AgentRow<'a> {
    pub did: &'a str,
    /// `active`, or `proposed` for a delegation's new child.
    pub status: AgentStatus,
    /// A delegation's new child is linked to its parent from the start.
    pub parent: Option<(&'a str, i64)>,
    pub name: &'a str,
    pub public_key: &'a str,
    pub capabilities: &'a [String],
    pub trust_score: i64,
    pub entra_object_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub runtime: Option<&'a str>,
}

/// Inserts an agent; a key already registered is [`StoreError::Duplicate`].
pub(super) async fn insert_agent(
    tx: &mut Tx<'_>,
    row: &AgentRow<'_>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO agents (did, name, public_key, capabilities, status, trust_score, entra_object_id,
                             model, runtime, created_at, updated_at, trust_positive_at, parent_did,
                             delegation_depth)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10, $11, $12)",
    )
    .bind(row.did)
    .bind(row.name)
    .bind(row.public_key)
    .bind(json_list(row.capabilities)?)
    .bind(row.status.as_str())
    .bind(row.trust_score)
    .bind(row.entra_object_id)
    .bind(row.model)
    .bind(row.runtime)
    .bind(ms(now))
    .bind(row.parent.map(|p| p.0))
    .bind(row.parent.map_or(0, |p| p.1))
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// How many agents (not revoked) each of `sponsors` holds, in the same order.
pub(super) async fn agents_held(tx: &mut Tx<'_>, sponsors: &[String]) -> StoreResult<Vec<i64>> {
    let mut out = Vec::with_capacity(sponsors.len());
    for sponsor in sponsors {
        let (held,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM agent_sponsors s JOIN agents a ON a.did = s.agent_did
             WHERE s.sponsor_id = $1 AND a.status != 'revoked'",
        )
        .bind(sponsor)
        .fetch_one(&mut **tx)
        .await?;
        out.push(held);
    }
    Ok(out)
}

/// The stored answer to a repeated `Idempotency-Key` with the same body; a conflict when the
/// body differs; `None` for a new key.
pub(super) async fn replay(
    tx: &mut Tx<'_>,
    idem: &Idempotency,
) -> StoreResult<Option<StoredResponse>> {
    let seen: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
    )
    .bind(&idem.principal)
    .bind(&idem.key)
    .fetch_optional(&mut **tx)
    .await?;
    match seen {
        None => Ok(None),
        Some((hash, status, body)) => {
            idempotency::replay(&hash, &idem.request_hash)?;
            Ok(Some(StoredResponse {
                status: u16::try_from(status).unwrap_or(200),
                body,
            }))
        }
    }
}

/// Stores the answer to replay for an `Idempotency-Key`, in the transaction that made it.
pub(super) async fn remember<T: serde::Serialize>(
    tx: &mut Tx<'_>,
    idem: &Idempotency,
    status: u16,
    answer: &T,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let body = serde_json::to_string(answer).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&idem.principal)
    .bind(&idem.key)
    .bind(&idem.request_hash)
    .bind(i64::from(status))
    .bind(body)
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl crate::server::store::HealthStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn ready(&self, now: DateTime<Utc>) -> StoreResult<()> {
        // A real write, behind the write lock: it fails (or waits) as a write would.
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO store_health (id, checked_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at",
        )
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        // Not `finish`: nothing anyone watches changed.
        tx.commit().await?;
        Ok(())
    }

    async fn lead(&self) -> StoreResult<bool> {
        self.leader.lead().await
    }

    async fn resign(&self) {
        self.leader.resign().await;
    }
}
