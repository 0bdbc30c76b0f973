//! SQLite implementation of the store traits: WAL, foreign keys on, a busy timeout, and one
//! writer connection so transactions that extend the audit chain never race each other. One
//! module per area implements that area's trait; `rows` reads rows back into records.

mod actions;
mod agents;
mod approval;
mod audit;
mod checkpoint;
mod clients;
mod grants;
mod group;
mod issuance;
mod lock;
mod requests;
mod rows;
mod sign_in;
mod state;
mod tokens;
mod trust;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Executor, Sqlite, Transaction, TransactionManager};
use tokio::sync::watch;

use crate::domain::idempotency;
use crate::protocol::agents::AgentStatus;
use crate::server::store::{Idempotency, StoreError, StoreResult, StoredResponse};

pub use lock::{LockError, ServeLock};

pub(super) use super::records::{caps_of, json_list, parse_list};
use super::records::{from_ms, ms, opt_from_ms};

type Tx<'a> = Transaction<'a, Sqlite>;

/// Run on every writer connection: see `open`. The second is `checkpoint`'s backstop.
const WRITER_PRAGMAS: &str = "PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 4000";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The connection that checkpoints the WAL, off the writer's path (see `checkpoint`).
    checkpoints: SqlitePool,
    /// Bumped after every committed write, so live readers (SSE, long polls) wake up.
    changes: Arc<watch::Sender<u64>>,
    /// The most pages the database may grow to (0: no limit), applied to every writer
    /// connection; an operator's cap on its size, and how tests fill it without root.
    max_pages: Arc<AtomicU32>,
    /// Token issuances: those queued at once share a transaction (and its fsync).
    issuances: group::GroupCommit<issuance::Issuances>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Corrupt(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 16 MiB of page cache per connection (SQLite's default is 2 MiB): the indexes
            // token issuance writes stay in memory as the tables grow.
            .pragma("cache_size", "-16384");
        // Migrations run on their own connection with foreign keys off, as SQLite's table
        // rebuilds need; every foreign key is checked before the store opens.
        {
            let mut conn =
                sqlx::SqliteConnection::connect_with(&options.clone().foreign_keys(false)).await?;
            MIGRATOR.run(&mut conn).await?;
            let broken: Vec<(String, i64, String, i64)> =
                sqlx::query_as("PRAGMA foreign_key_check")
                    .fetch_all(&mut conn)
                    .await?;
            if let Some((table, row, parent, _)) = broken.first() {
                return Err(StoreError::Corrupt(format!(
                    "{table} row {row} refers to a missing {parent} ({} such rows)",
                    broken.len()
                )));
            }
            conn.close().await?;
        }
        let max_pages = Arc::new(AtomicU32::new(0));
        let limit = max_pages.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| {
                let pages = limit.load(Ordering::Acquire);
                Box::pin(async move {
                    // Statement journals (a multi-row statement's undo, never needed after a
                    // crash) stay in memory instead of spilling to a temporary file. The WAL is
                    // checkpointed in the background (`checkpoint`); a commit checkpoints only
                    // once the WAL is past 4,000 pages, which bounds it.
                    conn.execute(WRITER_PRAGMAS).await?;
                    if pages > 0 {
                        conn.execute(format!("PRAGMA max_page_count = {pages}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            // A connection whose transaction did not end cleanly (a COMMIT that failed on a
            // full disk, and the rollback after it) is closed, never handed out again: a later
            // write would otherwise run inside the dead transaction and never be committed.
            .after_release(|conn, _| {
                Box::pin(async move {
                    let depth =
                        <Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth;
                    if depth(conn) == 0 {
                        // Committed or rolled back, and acknowledged: nothing is queued.
                        return Ok(true);
                    }
                    // Runs the rollback a dropped transaction queued.
                    conn.ping().await?;
                    Ok(depth(conn) == 0)
                })
            })
            // A ping before each use would ask SQLite's thread whether it is still there: a
            // round trip on every write, for a connection that cannot lose its peer.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await?;
        let changes = Arc::new(watch::channel(0).0);
        let checkpoints = checkpoint::start(options, changes.subscribe()).await?;
        Ok(Self {
            issuances: group::GroupCommit::start(writer.clone(), changes.clone()),
            writer,
            reader,
            checkpoints,
            changes,
            max_pages,
        })
    }

    /// Caps the database at `pages` pages (`None`: no cap); writes past it fail as a full disk
    /// does.
    pub async fn set_max_pages(&self, pages: Option<u32>) -> StoreResult<()> {
        let pages = pages.unwrap_or(0);
        self.max_pages.store(pages, Ordering::Release);
        // SQLite's own ceiling when "no limit" is asked for.
        let value = if pages == 0 { 4_294_967_294 } else { pages };
        let mut conn = self.writer.acquire().await?;
        conn.execute(format!("PRAGMA max_page_count = {value}").as_str())
            .await?;
        Ok(())
    }

    /// Starts a write. `BEGIN IMMEDIATE` takes the write lock at once, and refuses to nest:
    /// a connection left inside a transaction can never turn this into a savepoint of it.
    async fn write(&self) -> StoreResult<Tx<'static>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Commits and wakes everyone waiting for changes. Only a commit that returned Ok is
    /// acknowledged; a failed one leaves nothing behind (see the writer's `after_release`).
    async fn finish(&self, tx: Tx<'_>) -> StoreResult<()> {
        tx.commit().await?;
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        Ok(())
    }

    /// Closes the pools (flushing the WAL).
    pub async fn close(&self) {
        self.checkpoints.close().await;
        self.writer.close().await;
        self.reader.close().await;
    }
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
    let caps =
        serde_json::to_string(row.capabilities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO agents (did, name, public_key, capabilities, status, trust_score, entra_object_id,
                             model, runtime, created_at, updated_at, trust_positive_at, parent_did,
                             delegation_depth)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.did)
    .bind(row.name)
    .bind(row.public_key)
    .bind(caps)
    .bind(row.status.as_str())
    .bind(row.trust_score)
    .bind(row.entra_object_id)
    .bind(row.model)
    .bind(row.runtime)
    .bind(ms(now))
    .bind(ms(now))
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
             WHERE s.sponsor_id = ? AND a.status != 'revoked'",
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
        "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = ? AND key = ?",
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
         VALUES (?, ?, ?, ?, ?, ?)",
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
impl crate::server::store::HealthStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn ready(&self, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Room for four pages, taken and given back: a database that cannot grow fails here
        // as a real write would.
        sqlx::query(
            "INSERT INTO store_health (id, checked_at, room) VALUES (2, ?, zeroblob(16384))",
        )
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM store_health WHERE id = 2")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT OR REPLACE INTO store_health (id, checked_at) VALUES (1, ?)")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        // Not `finish`: nothing anyone watches changed.
        tx.commit().await?;
        Ok(())
    }
}
