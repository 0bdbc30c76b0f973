//! The audit chain in SQLite: each event is linked and hashed inside the transaction of the
//! change it records; the writer connection serializes appends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::watch;

use super::rows::audit_from_row;
use super::{SqliteStore, Tx, from_ms, ms};
use crate::domain::audit::{GENESIS_HASH, seal};
use crate::domain::record::StateSnapshot;
use crate::protocol::audit::{AuditEvent, UnhashedEvent};
use crate::server::store::{
    AuditScope, AuditStore, NewAuditEvent, RevocationSnapshot, StoreError, StoreResult,
};

/// The newest event's `seq` and hash, as `tx` sees the chain.
pub(super) type ChainHead = Option<(i64, String)>;

/// Appends an audit event inside `tx`: reads the head, links, hashes, inserts.
pub(super) async fn append(
    tx: &mut Tx<'_>,
    event: NewAuditEvent,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    append_after(tx, &mut None, event, now).await
}

/// [`append`] for a writer that already knows the head in `tx` (a group commit's batch, whose
/// own appends are the only ones since it began): `head` is read when `None` and left as the
/// new event.
pub(super) async fn append_after(
    tx: &mut Tx<'_>,
    head: &mut ChainHead,
    event: NewAuditEvent,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let known = known_head(tx, head).await?;
    let sealed = seal_after(known, event, now)?;
    let e = &sealed.event;
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, subject, details, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.seq)
    .bind(ms(e.at))
    .bind(e.actor.kind.as_str())
    .bind(&e.actor.id)
    .bind(&e.action)
    .bind(&e.subject)
    .bind(e.details.to_string())
    .bind(&e.prev_hash)
    .bind(&sealed.hash)
    .execute(&mut **tx)
    .await?;
    let seq = e.seq;
    *head = Some((seq, sealed.hash));
    Ok(seq)
}

/// Links each of `events` to the one before it, the first to `head`, and hashes them, in
/// order; `head` is left as the last. Returns them as the rows to insert, a JSON array of
/// `[seq, at, actor_kind, actor_id, action, subject, details, prev_hash, hash]` for
/// `json_each`, so a batch's events are written with one statement.
pub(super) fn seal_all_after(
    head: &mut ChainHead,
    events: Vec<(NewAuditEvent, DateTime<Utc>)>,
) -> StoreResult<String> {
    let mut rows = Vec::with_capacity(events.len());
    for (event, now) in events {
        let sealed = seal_after(head.take(), event, now)?;
        let e = sealed.event;
        *head = Some((e.seq, sealed.hash.clone()));
        rows.push((
            e.seq,
            ms(e.at),
            e.actor.kind.as_str(),
            e.actor.id,
            e.action,
            e.subject,
            e.details.to_string(),
            e.prev_hash,
            sealed.hash,
        ));
    }
    serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The head of the chain in `tx`: `head` when known (taken from it), else read.
async fn known_head(tx: &mut Tx<'_>, head: &mut ChainHead) -> StoreResult<ChainHead> {
    match head.take() {
        Some(known) => Ok(Some(known)),
        None => Ok(
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?,
        ),
    }
}

/// `event` as the next after `head` (`None`: the chain is empty), linked and hashed.
fn seal_after(
    head: ChainHead,
    event: NewAuditEvent,
    now: DateTime<Utc>,
) -> StoreResult<AuditEvent> {
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    // Millisecond precision, the precision the row keeps, so the hash recomputes exactly.
    let at = from_ms(ms(now));
    let (action, details) = event
        .action
        .into_parts()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    seal(UnhashedEvent {
        seq,
        at,
        actor: event.actor,
        action,
        subject: event.subject,
        details,
        prev_hash,
    })
    .map_err(|e| StoreError::Corrupt(format!("audit event not serializable: {e}")))
}

/// The events a reader in `scope` may see; more conditions follow with `AND`.
fn scoped(scope: &AuditScope) -> QueryBuilder<'_, Sqlite> {
    let mut q = QueryBuilder::new("SELECT * FROM audit_events WHERE ");
    match scope {
        AuditScope::All => {
            q.push("1 = 1");
        }
        AuditScope::Sponsor(id) => {
            q.push("(actor_id = ")
                .push_bind(id)
                .push(" OR subject = ")
                .push_bind(id)
                .push(" OR subject IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ")
                .push_bind(id)
                .push("))");
        }
    }
    q
}

#[async_trait]
impl AuditStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn audit_page(
        &self,
        scope: &AuditScope,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut q = scoped(scope);
        q.push(" AND seq > ")
            .push_bind(after)
            .push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(audit_from_row).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn append_audit(&self, event: NewAuditEvent, now: DateTime<Utc>) -> StoreResult<i64> {
        let mut tx = self.write().await?;
        let seq = append(&mut tx, event, now).await?;
        self.finish(tx).await?;
        Ok(seq)
    }

    #[tracing::instrument(skip_all)]
    async fn audit_tail(&self, scope: &AuditScope, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        let mut q = scoped(scope);
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.reader).await?;
        let mut events: Vec<AuditEvent> = rows
            .iter()
            .map(audit_from_row)
            .collect::<StoreResult<_>>()?;
        events.reverse();
        Ok(events)
    }

    #[tracing::instrument(skip_all)]
    async fn audit_head(&self) -> StoreResult<i64> {
        let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
            .fetch_one(&self.reader)
            .await?;
        Ok(head)
    }

    #[tracing::instrument(skip_all)]
    async fn state_snapshot(&self) -> StoreResult<(i64, StateSnapshot)> {
        super::state::snapshot(&self.reader).await
    }

    #[tracing::instrument(skip_all)]
    async fn revocation_snapshot(&self, now: DateTime<Utc>) -> StoreResult<RevocationSnapshot> {
        super::state::revocations(&self.reader, now).await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
