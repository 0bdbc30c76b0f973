//! The audit chain in PostgreSQL: each event is linked and hashed inside the transaction of the
//! change it records; the write lock serializes appends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use tokio::sync::watch;

use super::rows::audit_from_row;
use super::{PgStore, Tx, from_ms, ms};
use crate::domain::audit::{GENESIS_HASH, seal};
use crate::domain::record::StateSnapshot;
use crate::protocol::audit::{AuditEvent, UnhashedEvent};
use crate::server::store::{
    AuditScope, AuditStore, NewAuditEvent, RevocationSnapshot, StoreError, StoreResult,
};

/// Appends an audit event inside `tx`: reads the head, links, hashes, inserts. `tx` holds the
/// write lock, so no other append runs between reading the head and committing.
pub(super) async fn append(
    tx: &mut Tx<'_>,
    event: NewAuditEvent,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let known: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (seq, prev_hash) = match known {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    // Millisecond precision, the precision the row keeps, so the hash recomputes exactly.
    let at = from_ms(ms(now));
    let (action, details) = event
        .action
        .into_parts()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sealed = seal(UnhashedEvent {
        seq,
        at,
        actor: event.actor,
        action,
        subject: event.subject,
        details,
        prev_hash,
    })
    .map_err(|e| StoreError::Corrupt(format!("audit event not serializable: {e}")))?;
    let e = &sealed.event;
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, subject, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    Ok(seq)
}

/// The events a reader in `scope` may see; more conditions follow with `AND`.
fn scoped(scope: &AuditScope) -> QueryBuilder<'_, Postgres> {
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
impl AuditStore for PgStore {
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
        let rows = q.build().fetch_all(&self.pool).await?;
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
        let rows = q.build().fetch_all(&self.pool).await?;
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
            .fetch_one(&self.pool)
            .await?;
        Ok(head)
    }

    #[tracing::instrument(skip_all)]
    async fn state_snapshot(&self) -> StoreResult<(i64, StateSnapshot)> {
        super::state::snapshot(&self.pool).await
    }

    #[tracing::instrument(skip_all)]
    async fn revocation_snapshot(&self, now: DateTime<Utc>) -> StoreResult<RevocationSnapshot> {
        super::state::revocations(&self.pool, now).await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
