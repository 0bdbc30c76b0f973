//! An agent's trust inside a transaction: decayed to now, moved by an event, recorded.

use chrono::{DateTime, Utc};

use super::{Tx, from_ms, ms};
use crate::domain::trust;
use crate::server::store::StoreResult;

/// Moves an agent's trust by `delta` (after decay to `now`) and records the event.
pub(super) async fn move_trust(
    tx: &mut Tx<'_>,
    did: &str,
    delta: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let (score, positive_at, created_at): (i64, Option<i64>, i64) = sqlx::query_as(
        "SELECT trust_score, trust_positive_at, created_at FROM agents WHERE did = $1",
    )
    .bind(did)
    .fetch_one(&mut **tx)
    .await?;
    let current = trust::decayed(score, from_ms(positive_at.unwrap_or(created_at)), now);
    let next = trust::apply(current, delta);
    set_trust(tx, did, next, delta, reason, now).await?;
    Ok(next)
}

pub(super) async fn set_trust(
    tx: &mut Tx<'_>,
    did: &str,
    score: i64,
    delta: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // The decay so far is folded into the stored score, so the decay clock restarts now.
    sqlx::query(
        "UPDATE agents SET trust_score = $1, trust_positive_at = $2, updated_at = $3 WHERE did = $4",
    )
    .bind(score)
    .bind(ms(now))
    .bind(ms(now))
    .bind(did)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO trust_events (agent_did, at, delta, score_after, reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(did)
    .bind(ms(now))
    .bind(delta)
    .bind(score)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The agent's trust right now (decayed).
pub(super) async fn trust_now(tx: &mut Tx<'_>, did: &str, now: DateTime<Utc>) -> StoreResult<i64> {
    let (score, positive_at, created_at): (i64, Option<i64>, i64) = sqlx::query_as(
        "SELECT trust_score, trust_positive_at, created_at FROM agents WHERE did = $1",
    )
    .bind(did)
    .fetch_one(&mut **tx)
    .await?;
    Ok(trust::decayed(
        score,
        from_ms(positive_at.unwrap_or(created_at)),
        now,
    ))
}
