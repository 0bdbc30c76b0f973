//! Group commit: writes that arrive while the writer is busy share its next transaction, so
//! one `synchronous=FULL` fsync makes a whole batch durable instead of one write each.
//!
//! A job that fails leaves nothing: its batch's transaction is rolled back and the others run
//! again without it, in a new one (a savepoint per job would cost a statement on every write;
//! failures are rare, since routes refuse what they can before they queue). Nobody hears an
//! answer before the batch's `COMMIT` has returned: a commit that fails is every job's failure, so no caller is ever told
//! that a write is stored when it is not. There is no waiting for a batch to fill: the first
//! job starts a batch at once, and whatever queued up behind the previous commit joins it, so a
//! lone write costs what it did before and a busy writer amortizes its fsync.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, watch};

use super::Tx;
use super::audit::ChainHead;
use crate::server::store::{Outage, StoreError, StoreResult};

/// The most jobs one transaction carries: bounds how long one commit holds the writer.
const MOST_PER_BATCH: usize = 64;

/// A write waiting for a batch. It may run more than once: when another job's failure takes
/// the whole transaction with it, the rest of the batch runs again in a new one.
trait Job: Send + Sync {
    /// Does the work inside the batch's transaction, keeps its result, and says whether it
    /// succeeded.
    fn run<'c>(&'c self, tx: &'c mut Tx<'static>, head: &'c mut ChainHead) -> BoxFuture<'c, bool>;
    /// Sends the caller its kept result, or `failed_commit` when the batch was not stored.
    fn answer(self: Box<Self>, failed_commit: Option<StoreError>);
}

struct Work<T, F> {
    work: F,
    result: Mutex<Option<StoreResult<T>>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Work<T, F>
where
    T: Send + 'static,
    F: for<'c> Fn(&'c mut Tx<'static>, &'c mut ChainHead) -> BoxFuture<'c, StoreResult<T>>
        + Send
        + Sync
        + 'static,
{
    fn run<'c>(&'c self, tx: &'c mut Tx<'static>, head: &'c mut ChainHead) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let result = (self.work)(tx, head).await;
            let succeeded = result.is_ok();
            if let Ok(mut kept) = self.result.lock() {
                *kept = Some(result);
            }
            succeeded
        })
    }

    fn answer(self: Box<Self>, failed_commit: Option<StoreError>) {
        let kept = self.result.into_inner().ok().flatten();
        let _ = self.reply.send(match (failed_commit, kept) {
            (Some(e), _) => Err(e),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Corrupt("a write was answered unrun".into())),
        });
    }
}

/// The queue in front of the writer connection for group-committed writes.
#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the committer on the writer pool; it stops when the last handle is dropped.
    pub(super) fn start(writer: SqlitePool, changes: Arc<watch::Sender<u64>>) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MOST_PER_BATCH);
        tokio::spawn(committer(writer, changes, queue));
        Self { jobs }
    }

    /// Runs `work` inside the next group transaction and answers once that transaction is
    /// committed. `work` sees a transaction begun with `BEGIN IMMEDIATE`, in which it may
    /// read and write as any writer does; an `Err` rolls back its own changes only. It must
    /// do nothing but database work in `tx`: it may run again if its batch is retried. Its
    /// audit events go through `append_after` with `head`, which knows the chain's head in the
    /// batch, saving each write the statement that reads it.
    pub(super) async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut Tx<'static>, &'c mut ChainHead) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + Sync
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Work {
            work,
            result: Mutex::new(None),
            reply,
        };
        self.jobs.send(Box::new(job)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::SharedCommit {
        outage: Some(Outage::Unavailable),
        message: "the writer has stopped".into(),
    }
}

async fn committer(
    writer: SqlitePool,
    changes: Arc<watch::Sender<u64>>,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
) {
    let mut batch = Vec::with_capacity(MOST_PER_BATCH);
    while queue.recv_many(&mut batch, MOST_PER_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        tracing::trace!(writes = jobs.len(), "group commit");
        let (stored, failed_alone, committed) = run_batch(&writer, jobs).await;
        match &committed {
            Ok(()) => changes.send_modify(|v| *v = v.wrapping_add(1)),
            Err(e) => tracing::warn!(
                error = %e,
                writes = stored.len(),
                "a group commit failed; none of its writes is acknowledged"
            ),
        }
        for job in stored {
            job.answer(committed.as_ref().err().map(StoreError::shared));
        }
        for job in failed_alone {
            job.answer(None);
        }
    }
}

/// Runs a batch in one transaction. Returns the jobs the transaction carried to its commit,
/// the jobs that failed on their own (each answered with its own error), and the commit's
/// result, which is the fate of the first group.
async fn run_batch(
    writer: &SqlitePool,
    mut jobs: Vec<Box<dyn Job>>,
) -> (Vec<Box<dyn Job>>, Vec<Box<dyn Job>>, StoreResult<()>) {
    let mut failed_alone = Vec::new();
    // Each pass either commits or drops the job that failed, so this ends.
    loop {
        let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => return (jobs, failed_alone, Err(e.into())),
        };
        // No savepoint per job: a statement each, on the path every write takes. A job that
        // fails instead costs its batch a second pass without it, and failures are rare: the
        // routes refuse what they can before they queue a write.
        let took_the_transaction = run_jobs(&mut tx, &jobs).await;
        let Some(i) = took_the_transaction else {
            let committed = tx.commit().await.map_err(StoreError::from);
            return (jobs, failed_alone, committed);
        };
        // Nothing of this pass is kept; the failed job keeps its own error, and the others
        // run again.
        let _ = tx.rollback().await;
        failed_alone.push(jobs.remove(i));
        if jobs.is_empty() {
            return (jobs, failed_alone, Ok(()));
        }
    }
}

/// Runs the jobs in order until one fails; returns its index.
async fn run_jobs(tx: &mut Tx<'static>, jobs: &[Box<dyn Job>]) -> Option<usize> {
    let mut head = None;
    for (i, job) in jobs.iter().enumerate() {
        if !job.run(tx, &mut head).await {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::sqlite::SqliteStore;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("a fresh store opens");
        sqlx::query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .execute(&store.writer)
            .await
            .expect("a table for the test");
        (dir, store)
    }

    /// Inserts a note of `size` bytes, or fails on purpose when `fail` is set.
    async fn note(store: &SqliteStore, id: i64, size: usize, fail: bool) -> StoreResult<i64> {
        store
            .group
            .run(move |tx, _| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO notes (id, body) VALUES (?, zeroblob(?))")
                        .bind(id)
                        .bind(i64::try_from(size).unwrap_or(0))
                        .execute(&mut **tx)
                        .await?;
                    if fail {
                        return Err(StoreError::Corrupt("refused on purpose".into()));
                    }
                    Ok(id)
                })
            })
            .await
    }

    async fn stored(store: &SqliteStore) -> Vec<i64> {
        sqlx::query_as::<_, (i64,)>("SELECT id FROM notes ORDER BY id")
            .fetch_all(&store.reader)
            .await
            .expect("notes read")
            .into_iter()
            .map(|(id,)| id)
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_queued_together_share_one_commit_and_a_failed_one_leaves_nothing() {
        let (_dir, store) = store().await;
        let commits_before = *store.changes.subscribe().borrow();
        let calls: Vec<_> = (1..=40)
            .map(|id| {
                let store = store.clone();
                tokio::spawn(async move { note(&store, id, 8, id % 10 == 0).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.expect("the call ran"));
        }
        let commits = store
            .changes
            .subscribe()
            .borrow()
            .wrapping_sub(commits_before);
        assert!(
            (1..=2).contains(&commits),
            "40 writes queued at once took {commits} commits"
        );
        let acknowledged: Vec<i64> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok().copied())
            .collect();
        assert_eq!(acknowledged.len(), 36, "{answers:?}");
        assert!(
            answers
                .iter()
                .filter(|a| a.is_err())
                .all(|a| matches!(a, Err(StoreError::Corrupt(_))))
        );
        assert_eq!(
            stored(&store).await,
            acknowledged,
            "exactly what was acknowledged is stored"
        );
    }

    #[tokio::test]
    async fn a_write_is_acknowledged_only_if_its_batch_is_stored() {
        let (_dir, store) = store().await;
        let pages: (i64,) = sqlx::query_as("PRAGMA page_count")
            .fetch_one(&store.writer)
            .await
            .expect("page count");
        let limit = u32::try_from(pages.0 + 8).unwrap_or(u32::MAX);
        store.set_max_pages(Some(limit)).await.expect("a size cap");
        // Small notes and ones too large for the room left, all at once and in turn, until
        // the database is full; then every answer is checked against what is stored.
        let mut answers = Vec::new();
        for round in 0..20_i64 {
            let calls: Vec<_> = (0..8_i64)
                .map(|i| {
                    let store = store.clone();
                    let id = round * 100 + i;
                    let size = if i % 3 == 2 { 20_000 } else { 600 };
                    tokio::spawn(async move { (id, note(&store, id, size, false).await) })
                })
                .collect();
            for call in calls {
                answers.push(call.await.expect("the call ran"));
            }
        }
        let acknowledged: Vec<i64> = answers
            .iter()
            .filter(|(_, a)| a.is_ok())
            .map(|(id, _)| *id)
            .collect();
        let refused = answers.iter().filter(|(_, a)| a.is_err()).count();
        assert!(refused > 0, "the cap was never reached");
        assert!(!acknowledged.is_empty(), "nothing fit: {answers:?}");
        for (_, answer) in &answers {
            if let Err(e) = answer {
                assert!(
                    e.outage().is_some(),
                    "a full database is an outage, not {e}"
                );
            }
        }
        assert_eq!(
            stored(&store).await,
            acknowledged,
            "exactly what was acknowledged is stored"
        );
    }
}
