//! WAL checkpoints off the commit path. SQLite's default has the connection that commits copy
//! the WAL back into the database file (and fsync it) whenever the WAL passes 1,000 pages, so
//! every thousandth page or so one group commit, and every caller waiting on it, also waits for
//! a checkpoint. Here a connection of its own checkpoints (`PASSIVE`: it never takes the write
//! lock nor waits for readers) shortly after writes, and the writer checkpoints only if the WAL
//! grows past 4,000 pages anyway (`wal_autocheckpoint`, set on the writer with its other
//! pragmas): that bounds the WAL whatever the background manages.
//!
//! Durability does not depend on checkpoints: a commit is durable once its WAL frames are
//! fsync'd (`synchronous=FULL`, unchanged). The checkpointing connection is opened with the
//! same options, `synchronous=FULL` included, so a checkpoint fsyncs the database file before
//! the WAL may be reused, exactly as a checkpoint on the writer does.

use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::watch;

use crate::server::store::StoreResult;

/// How long after a write the background checkpoint waits, so that one checkpoint covers
/// the writes of that while.
const AFTER_WRITES: Duration = Duration::from_millis(100);

/// Opens the checkpointing connection and starts checkpointing after writes (`changes`); it
/// stops when the returned pool is closed or the store is dropped.
pub(super) async fn start(
    options: SqliteConnectOptions,
    changes: watch::Receiver<u64>,
) -> StoreResult<SqlitePool> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    tokio::spawn(checkpoint_after_writes(pool.clone(), changes));
    Ok(pool)
}

async fn checkpoint_after_writes(pool: SqlitePool, mut changes: watch::Receiver<u64>) {
    while changes.changed().await.is_ok() {
        tokio::time::sleep(AFTER_WRITES).await;
        changes.mark_unchanged();
        if pool.is_closed() {
            return;
        }
        let done: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        match done {
            Ok((_, wal, copied)) => tracing::trace!(wal, copied, "checkpoint"),
            Err(_) if pool.is_closed() => return,
            // A busy or failing checkpoint is tried again after the next writes; the writer's
            // own checkpoints still bound the WAL meanwhile.
            Err(e) => tracing::debug!(error = %e, "a background checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::sqlite::SqliteStore;

    /// Committed pages reach the database file soon after the write, though far fewer than the
    /// writer's own threshold: the background checkpoint copied them.
    #[tokio::test]
    async fn writes_are_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path).await.expect("a fresh store opens");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        sqlx::query(
            "CREATE TABLE blobs (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO blobs SELECT zeroblob(4000) FROM n;",
        )
        .execute(&store.writer)
        .await
        .expect("200 pages written");
        assert!(size() < before + 400_000, "the writer checkpointed");
        store.changes.send_modify(|v| *v += 1);
        let mut copied = false;
        for _ in 0..50 {
            tokio::time::sleep(AFTER_WRITES).await;
            if size() >= before + 800_000 {
                copied = true;
                break;
            }
        }
        assert!(copied, "{} bytes, {before} before", size());
    }
}
