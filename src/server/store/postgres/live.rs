//! What several server instances on one database share beyond the tables: a wake-up after every
//! committed write (`LISTEN/NOTIFY`; the tables stay the truth, a notification only says "read
//! again"), and one leader for the periodic jobs (a session-level advisory lock held on a
//! connection of its own, so it ends with the session when the instance dies).

use std::sync::Weak;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::{ACQUIRE_TIMEOUT, Tx};
use crate::server::store::StoreResult;

/// The channel every instance listens on; the payload is the writer's schema, so stores in
/// other schemas of the same database ignore it.
const CHANNEL: &str = "sponsor_console_changes";

/// The first key of the leaders' advisory lock; the second is the schema's, as for writes.
const LEADER_LOCK_CLASS: i32 = 0x5343_4c44; // "SCLD"

/// Announces a write to every instance; delivered when (and only if) `tx` commits.
pub(super) async fn notify(tx: &mut Tx<'_>) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, current_schema())")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The listener's task; it ends when the last clone of the store is dropped or closed.
#[derive(Debug)]
pub(super) struct Listening(JoinHandle<()>);

impl Listening {
    pub(super) fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Listens on a connection of its own and bumps `changes` for every write committed in
/// `schema`, by this instance or another.
pub(super) async fn listen(
    options: PgConnectOptions,
    schema: String,
    changes: Weak<watch::Sender<u64>>,
) -> StoreResult<Listening> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let task = tokio::spawn(async move {
        loop {
            let wake = match listener.try_recv().await {
                Ok(Some(notification)) => notification.payload() == schema,
                // The connection was lost and made again: what was notified meanwhile is not
                // known, so every reader reads again.
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for writes failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    true
                }
            };
            if wake {
                let Some(changes) = changes.upgrade() else {
                    return;
                };
                changes.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    });
    Ok(Listening(task))
}

/// The leader's lock: whoever holds it runs the periodic jobs.
#[derive(Debug)]
pub(super) struct Leader {
    options: PgConnectOptions,
    /// The connection the lock is tried (and, once taken, held) on, and whether it holds it.
    session: Mutex<Option<(PgConnection, bool)>>,
}

impl Leader {
    pub(super) fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            session: Mutex::new(None),
        }
    }

    /// Whether this store leads: keeps the lock if its session is alive, or tries to take it.
    pub(super) async fn lead(&self) -> StoreResult<bool> {
        let mut session = self.session.lock().await;
        if let Some((conn, true)) = session.as_mut() {
            if conn.ping().await.is_ok() {
                return Ok(true);
            }
            // The session ended, and the lock with it: another instance may lead by now.
            tracing::warn!("the leader's session ended; trying to lead again");
            *session = None;
        }
        if session.is_none() {
            *session = Some((PgConnection::connect_with(&self.options).await?, false));
        }
        let Some((conn, leads)) = session.as_mut() else {
            return Ok(false);
        };
        let tried: Result<(bool,), sqlx::Error> =
            sqlx::query_as("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(LEADER_LOCK_CLASS)
                .fetch_one(&mut *conn)
                .await;
        match tried {
            Ok((got,)) => {
                *leads = got;
                if got {
                    tracing::info!("leading the periodic jobs");
                }
                Ok(got)
            }
            Err(e) => {
                *session = None;
                Err(e.into())
            }
        }
    }

    /// Lets go of the lock (and the connection), so another instance leads at once.
    pub(super) async fn resign(&self) {
        if let Some((conn, _)) = self.session.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}
