//! Group commit: writes that arrive while the writer is busy share its next transaction, so
//! one `synchronous=FULL` fsync makes a whole batch durable instead of one write each.
//!
//! A batch runs as one unit first ([`Batch::run_committed`] over all of its writes: multi-row
//! statements, a few round trips to SQLite for the whole batch, its transaction's `BEGIN` and
//! `COMMIT` included). A write the rules refuse is refused inside that run and writes nothing.
//! If the run fails (a full disk, a constraint, its `COMMIT`), nobody's write is kept: the
//! connection is closed, which rolls back whatever is open, and the batch runs again one write
//! at a time on a fresh one, where a write that fails on its own rolls its pass back and is
//! answered with its own error while the others run again without it. Nobody hears an answer
//! before the `COMMIT` that carried their write has returned: there, a commit that fails is
//! every write's failure, so no caller is ever told that a write is stored when it is not. There is no waiting for a batch to fill: the
//! first write starts a batch at once, and whatever queued up behind the previous commit joins
//! it, so a lone write costs what it did before and a busy writer amortizes its fsync.

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

use super::audit::ChainHead;
use crate::server::store::{Outage, StoreError, StoreResult};

/// The most writes one transaction carries: bounds how long one commit holds the writer.
const MOST_PER_BATCH: usize = 64;

/// One kind of group-committed write, and how a batch of them runs in one transaction.
pub(super) trait Batch: Send + Sync + 'static {
    /// What one caller asks to store.
    type Write: Send + Sync + 'static;
    /// What that caller is told once the batch is committed.
    type Answer: Send + 'static;
    /// Runs `writes` in order on `tx`, inside a transaction, whose audit chain ends at `head`
    /// (read when `None`, left at the last event written). `Ok` holds one answer per write: an
    /// `Err` among them is a refusal, and that write changed nothing. An `Err` of the whole run
    /// means the transaction must not be committed; the writes may be run again, one at a time,
    /// in a new one, so `run` must do nothing but database work in `tx`.
    fn run<'c>(
        tx: &'c mut SqliteConnection,
        head: &'c mut ChainHead,
        writes: &'c [Self::Write],
    ) -> BoxFuture<'c, StoreResult<Vec<StoreResult<Self::Answer>>>>;

    /// Runs `writes` as [`Batch::run`] does, in a transaction of its own on `conn`: begun with
    /// `BEGIN IMMEDIATE` and ended with `COMMIT`, each sent with the batch's own statements
    /// where it can, to spare a round trip to SQLite's thread. `Ok` means `COMMIT` returned,
    /// with one answer per write. `Err` means nothing was committed; the transaction may still
    /// be open, and the connection must not be used again.
    fn run_committed<'c>(
        conn: &'c mut SqliteConnection,
        writes: &'c [Self::Write],
    ) -> BoxFuture<'c, StoreResult<Vec<StoreResult<Self::Answer>>>> {
        Box::pin(async move {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
            let answers = Self::run(&mut tx, &mut None, writes).await?;
            if answers.len() != writes.len() {
                return Err(unanswered());
            }
            tx.commit().await?;
            Ok(answers)
        })
    }
}

/// A write waiting for a batch, and where its answer goes.
struct Queued<B: Batch> {
    write: B::Write,
    reply: oneshot::Sender<StoreResult<B::Answer>>,
}

/// The queue in front of the writer connection for one kind of group-committed write.
pub(super) struct GroupCommit<B: Batch> {
    queue: mpsc::Sender<Queued<B>>,
}

impl<B: Batch> Clone for GroupCommit<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<B: Batch> std::fmt::Debug for GroupCommit<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<B: Batch> GroupCommit<B> {
    /// Starts the committer on the writer pool; it stops when the last handle is dropped.
    pub(super) fn start(writer: SqlitePool, changes: Arc<watch::Sender<u64>>) -> Self {
        let (queue, queued) = mpsc::channel(4 * MOST_PER_BATCH);
        tokio::spawn(committer::<B>(writer, changes, queued));
        Self { queue }
    }

    /// Stores `write` in the next group transaction (begun with `BEGIN IMMEDIATE`) and answers
    /// once that transaction is committed.
    pub(super) async fn run(&self, write: B::Write) -> StoreResult<B::Answer> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { write, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::SharedCommit {
        outage: Some(Outage::Unavailable),
        message: "the writer has stopped".into(),
    }
}

async fn committer<B: Batch>(
    writer: SqlitePool,
    changes: Arc<watch::Sender<u64>>,
    mut queue: mpsc::Receiver<Queued<B>>,
) {
    let mut batch = Vec::with_capacity(MOST_PER_BATCH);
    while queue.recv_many(&mut batch, MOST_PER_BATCH).await > 0 {
        let (writes, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|q| (q.write, q.reply)).unzip();
        tracing::trace!(writes = writes.len(), "group commit");
        let (answers, committed) = run_batch::<B>(&writer, &writes).await;
        match &committed {
            Ok(()) => changes.send_modify(|v| *v = v.wrapping_add(1)),
            Err(e) => tracing::warn!(
                error = %e,
                writes = writes.len(),
                "a group commit failed; none of its writes is acknowledged"
            ),
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(match (&committed, answer) {
                // A write that failed alone was never part of the commit: its own error.
                (_, Settled::Alone(e)) => Err(e),
                (Err(e), Settled::Carried(_)) => Err(e.shared()),
                (Ok(()), Settled::Carried(answer)) => answer,
            });
        }
    }
}

/// What became of one write of a batch.
enum Settled<A> {
    /// The write's answer, which holds if the transaction that carried it commits.
    Carried(StoreResult<A>),
    /// The write failed on its own and was taken out of the batch.
    Alone(StoreError),
}

/// Runs a batch in one transaction: all together, or, when that fails, one write at a time.
/// Returns each write's fate, in order, and the result of the commit that carried them.
async fn run_batch<B: Batch>(
    writer: &SqlitePool,
    writes: &[B::Write],
) -> (Vec<Settled<B::Answer>>, StoreResult<()>) {
    let mut conn = match writer.acquire().await {
        Ok(conn) => Owned(Some(conn)),
        Err(e) => return (carried_failures(writes.len(), &e.into()), Ok(())),
    };
    let Some(raw) = conn.0.as_deref_mut() else {
        return (carried_failures(writes.len(), &unanswered()), Ok(()));
    };
    match B::run_committed(raw, writes).await {
        Ok(answers) => {
            // Committed: the connection is clean and goes back to the pool.
            drop(conn.0.take());
            let mut answers = answers.into_iter();
            let settled = writes
                .iter()
                .map(|_| {
                    answers
                        .next()
                        .map_or(Settled::Alone(unanswered()), Settled::Carried)
                })
                .collect();
            (settled, Ok(()))
        }
        Err(e) => {
            // Nothing was committed (a failed write, or a failed `COMMIT`, which SQLite leaves
            // undone). The transaction may still be open: the connection is closed with it, and
            // the writes run again one at a time on a fresh one.
            tracing::debug!(error = %e, writes = writes.len(), "a batch failed; one at a time");
            if let Some(failed) = conn.0.take() {
                // Closed before the next transaction begins: closing rolls back and frees the
                // write lock.
                let _ = sqlx::Connection::close(failed.detach()).await;
            }
            one_at_a_time::<B>(writer, writes).await
        }
    }
}

/// The writer connection a batch's own transaction runs on. sqlx does not know of that
/// transaction (its `BEGIN` and `COMMIT` travel with the batch's statements), so a connection
/// not taken back after its commit, by a failure or a cancelled batch, is closed rather than
/// handed out again inside a transaction that may still be open.
struct Owned(Option<PoolConnection<Sqlite>>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// Every write failed by an error that is not its own (the writer could not begin).
fn carried_failures<A>(n: usize, e: &StoreError) -> Vec<Settled<A>> {
    (0..n).map(|_| Settled::Alone(e.shared())).collect()
}

/// The batch again, one write after another in one transaction. A write that fails rolls its
/// pass back (no savepoint per write: a statement each, on a path that is only taken when
/// something failed) and the rest run again without it; each pass drops one write or commits,
/// so this ends.
async fn one_at_a_time<B: Batch>(
    writer: &SqlitePool,
    writes: &[B::Write],
) -> (Vec<Settled<B::Answer>>, StoreResult<()>) {
    let mut alone: Vec<Option<StoreError>> = writes.iter().map(|_| None).collect();
    loop {
        let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                let e = StoreError::from(e);
                let settled = alone
                    .into_iter()
                    .map(|a| Settled::Alone(a.unwrap_or_else(|| e.shared())))
                    .collect();
                return (settled, Ok(()));
            }
        };
        let mut head = None;
        let mut answers: Vec<Option<StoreResult<B::Answer>>> =
            writes.iter().map(|_| None).collect();
        let mut failed = None;
        for (i, write) in writes.iter().enumerate() {
            if alone[i].is_some() {
                continue;
            }
            match B::run(&mut tx, &mut head, std::slice::from_ref(write)).await {
                Ok(one) if one.len() == 1 => answers[i] = one.into_iter().next(),
                Ok(_) => failed = Some((i, unanswered())),
                Err(e) => failed = Some((i, e)),
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some((i, e)) = failed {
            let _ = tx.rollback().await;
            alone[i] = Some(e);
            continue;
        }
        let committed = tx.commit().await.map_err(StoreError::from);
        let settled = alone
            .into_iter()
            .zip(answers)
            .map(|fate| match fate {
                (Some(e), _) => Settled::Alone(e),
                (None, Some(answer)) => Settled::Carried(answer),
                (None, None) => Settled::Alone(unanswered()),
            })
            .collect();
        return (settled, committed);
    }
}

fn unanswered() -> StoreError {
    StoreError::Corrupt("a write went unanswered".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Refusal;
    use crate::server::store::sqlite::SqliteStore;

    /// A note to store: its id, its size, and whether its own work fails (after writing) or
    /// the rules refuse it (before writing).
    struct Note {
        id: i64,
        size: usize,
        fail: bool,
        refuse: bool,
    }

    /// Notes written as a batch does: one multi-row statement for all that are not refused.
    struct Notes;

    impl Batch for Notes {
        type Write = Note;
        type Answer = i64;

        fn run<'c>(
            tx: &'c mut SqliteConnection,
            _head: &'c mut ChainHead,
            writes: &'c [Note],
        ) -> BoxFuture<'c, StoreResult<Vec<StoreResult<i64>>>> {
            Box::pin(async move {
                let kept: Vec<(i64, i64)> = writes
                    .iter()
                    .filter(|n| !n.refuse)
                    .map(|n| (n.id, i64::try_from(n.size).unwrap_or(0)))
                    .collect();
                let rows = serde_json::to_string(&kept).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO notes (id, body)
                     SELECT value->>0, zeroblob(value->>1) FROM json_each(?)",
                )
                .bind(rows)
                .execute(&mut *tx)
                .await?;
                if writes.iter().any(|n| n.fail) {
                    return Err(StoreError::Corrupt("failed on purpose".into()));
                }
                Ok(writes
                    .iter()
                    .map(|n| {
                        if n.refuse {
                            Err(Refusal::conflict("refused", "refused on purpose").into())
                        } else {
                            Ok(n.id)
                        }
                    })
                    .collect())
            })
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore, GroupCommit<Notes>) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("a fresh store opens");
        sqlx::query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .execute(&store.writer)
            .await
            .expect("a table for the test");
        let notes = GroupCommit::start(store.writer.clone(), store.changes.clone());
        (dir, store, notes)
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

    fn commits_since(store: &SqliteStore, before: u64) -> u64 {
        store.changes.subscribe().borrow().wrapping_sub(before)
    }

    /// Sends every note at once and waits for every answer, in order.
    async fn all_at_once(notes: &GroupCommit<Notes>, batch: Vec<Note>) -> Vec<StoreResult<i64>> {
        let calls: Vec<_> = batch
            .into_iter()
            .map(|note| {
                let notes = notes.clone();
                tokio::spawn(async move { notes.run(note).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.expect("the call ran"));
        }
        answers
    }

    fn acknowledged(answers: &[StoreResult<i64>]) -> Vec<i64> {
        answers
            .iter()
            .filter_map(|a| a.as_ref().ok().copied())
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_queued_together_share_one_commit_and_a_failed_one_leaves_nothing() {
        let (_dir, store, notes) = store().await;
        let before = *store.changes.subscribe().borrow();
        let batch = (1..=40)
            .map(|id| Note {
                id,
                size: 8,
                fail: id % 10 == 0,
                refuse: false,
            })
            .collect();
        let answers = all_at_once(&notes, batch).await;
        let commits = commits_since(&store, before);
        assert!(
            (1..=2).contains(&commits),
            "40 writes queued at once took {commits} commits"
        );
        assert_eq!(acknowledged(&answers).len(), 36, "{answers:?}");
        assert!(
            answers
                .iter()
                .filter(|a| a.is_err())
                .all(|a| matches!(a, Err(StoreError::Corrupt(_))))
        );
        assert_eq!(
            stored(&store).await,
            acknowledged(&answers),
            "exactly what was acknowledged is stored"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_write_changes_nothing_and_costs_its_batch_no_second_pass() {
        let (_dir, store, notes) = store().await;
        let before = *store.changes.subscribe().borrow();
        let batch = (1..=20)
            .map(|id| Note {
                id,
                size: 8,
                fail: false,
                refuse: id % 4 == 0,
            })
            .collect();
        let answers = all_at_once(&notes, batch).await;
        assert!(commits_since(&store, before) <= 2);
        for (id, answer) in (1..=20).zip(&answers) {
            if id % 4 == 0 {
                assert!(
                    matches!(answer, Err(StoreError::Refused(_))),
                    "{id}: {answer:?}"
                );
            } else {
                assert_eq!(answer.as_ref().ok(), Some(&id));
            }
        }
        assert_eq!(stored(&store).await, acknowledged(&answers));
    }

    #[tokio::test]
    async fn a_write_is_acknowledged_only_if_its_batch_is_stored() {
        let (_dir, store, notes) = store().await;
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
            let batch = (0..8_i64)
                .map(|i| Note {
                    id: round * 100 + i,
                    size: if i % 3 == 2 { 20_000 } else { 600 },
                    fail: false,
                    refuse: false,
                })
                .collect();
            answers.extend(all_at_once(&notes, batch).await);
        }
        let refused = answers.iter().filter(|a| a.is_err()).count();
        assert!(refused > 0, "the cap was never reached");
        assert!(
            !acknowledged(&answers).is_empty(),
            "nothing fit: {answers:?}"
        );
        for answer in &answers {
            if let Err(e) = answer {
                assert!(
                    e.outage().is_some(),
                    "a full database is an outage, not {e}"
                );
            }
        }
        assert_eq!(
            stored(&store).await,
            acknowledged(&answers),
            "exactly what was acknowledged is stored"
        );
    }
}
