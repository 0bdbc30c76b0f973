//! Action requests in PostgreSQL (`store::actions`), as in SQLite: each change and its audit
//! event commit in one write transaction (under the write lock); the rules come from
//! `domain::action`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::audit::append;
use super::{PgStore, Tx, ms};
use crate::domain::action::{self, ActionDecider};
use crate::protocol::actions::{Action, ActionStatus};
use crate::protocol::audit::{Actor, AuditAction, action as detail};
use crate::protocol::requests::Decision;
use crate::server::store::actions::{ACTION_COLUMNS, ActionRow, subject_of, submitted_detail};
use crate::server::store::{
    ActionDecisionInput, ActionFilter, ActionStore, Arrival, NewAction, NewAuditEvent, StoreError,
    StoreResult,
};

/// One action's row, read through `executor` (the reader, or a write transaction).
async fn action_row<'e, E: sqlx::Executor<'e, Database = Postgres>>(
    executor: E,
    id: &str,
) -> StoreResult<Option<ActionRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {ACTION_COLUMNS} WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(executor)
            .await?,
    )
}

/// An action and its integration's sponsor, as `tx` sees them.
async fn action_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<(Action, Option<String>)>> {
    action_row(&mut **tx, id)
        .await?
        .map(|r| {
            let sponsor = r.sponsor_id.clone();
            r.into_action().map(|a| (a, sponsor))
        })
        .transpose()
}

/// The `WHERE` of a filter (not its page), shared by listing and counting.
fn push_selection<'a>(q: &mut QueryBuilder<'a, Postgres>, filter: &'a ActionFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(sponsor) = &filter.sponsor_id {
        q.push(" AND (a.sponsor_id = ")
            .push_bind(sponsor)
            .push(" OR a.agent_did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ")
            .push_bind(sponsor)
            .push("))");
    }
    if let Some(status) = filter.status {
        q.push(" AND a.status = ").push_bind(status.as_str());
    }
}

/// Ends a pending action whose time is up, with `action.expired`.
async fn expire_in(
    tx: &mut Tx<'_>,
    action: &Action,
    sponsor_id: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE action_requests SET status = 'expired', decided_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(ms(now))
    .bind(&action.id)
    .execute(&mut **tx)
    .await?;
    append(
        tx,
        NewAuditEvent::new(
            Actor::system(),
            subject_of(action.agent_did.as_deref(), sponsor_id),
            AuditAction::ActionExpired(detail::ActionEnded {
                approval_request_id: action.id.clone(),
            }),
        ),
        now,
    )
    .await?;
    Ok(())
}

/// The kill switch reaches held actions too: an agent taken down has its pending action
/// requests denied at once (approver none, the reason said), so the held calls are answered
/// and none can be approved while it is out of service.
pub(super) async fn deny_pending_of(
    tx: &mut Tx<'_>,
    did: &str,
    why: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "UPDATE action_requests SET status = 'denied', decided_at = $1, justification = $2
         WHERE agent_did = $3 AND status = 'pending' RETURNING id",
    )
    .bind(ms(now))
    .bind(why)
    .bind(did)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids: Vec<String> = ids.into_iter().map(|(id,)| id).collect();
    ids.sort();
    for id in ids {
        append(
            tx,
            NewAuditEvent::new(
                actor.clone(),
                did.to_owned(),
                AuditAction::ActionDenied(detail::ActionDecided {
                    approval_request_id: id,
                    justification: why.to_owned(),
                }),
            ),
            now,
        )
        .await?;
    }
    Ok(())
}

async fn reread(tx: &mut Tx<'_>, id: &str) -> StoreResult<Action> {
    Ok(action_in(tx, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("action vanished".into()))?
        .0)
}

#[async_trait]
impl ActionStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn receive_action(&self, new: NewAction, now: DateTime<Utc>) -> StoreResult<Arrival> {
        let r = &new.request;
        let mut tx = self.write().await?;
        if let Some((stored, sponsor_id)) = action_in(&mut tx, &r.approval_request_id).await? {
            action::same_request(&stored, &r.input_digest)?;
            append(
                &mut tx,
                NewAuditEvent::new(
                    new.actor.clone(),
                    subject_of(stored.agent_did.as_deref(), sponsor_id.as_deref()),
                    AuditAction::ActionRedelivered(detail::ActionRedelivered {
                        approval_request_id: stored.id.clone(),
                        status: stored.status,
                    }),
                ),
                now,
            )
            .await?;
            self.finish(tx).await?;
            return Ok(Arrival::Redelivered(stored));
        }
        let sponsor_id = match &new.integration_sponsor {
            None => None,
            Some(username) => {
                let id: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM sponsors WHERE username = $1 AND status = 'active'",
                )
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
                Some(
                    id.ok_or_else(|| action::no_integration_sponsor(username))?
                        .0,
                )
            }
        };
        if let Some(did) = &new.agent_did {
            let status: Option<(String,)> =
                sqlx::query_as("SELECT status FROM agents WHERE did = $1")
                    .bind(did)
                    .fetch_optional(&mut *tx)
                    .await?;
            action::agent_may_ask(status.as_ref().map(|s| s.0.as_str()))?;
        }
        sqlx::query(
            "INSERT INTO action_requests (id, input_digest, action_digest, policy_decision_id,
                 agent_id, agent_did, integration, sponsor_id, subject_id, operation,
                 target_resource, policy_version, approval_chain_id, approval_chain_version,
                 expires_at_text, status, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', $16, $17)",
        )
        .bind(&r.approval_request_id)
        .bind(&r.input_digest)
        .bind(&r.action_digest)
        .bind(&r.policy_decision_id)
        .bind(&r.agent_id)
        .bind(&new.agent_did)
        .bind(&new.integration)
        .bind(&sponsor_id)
        .bind(&r.subject_id)
        .bind(&r.operation)
        .bind(&r.target_resource)
        .bind(&r.policy_version)
        .bind(&r.approval_chain_id)
        .bind(&r.approval_chain_version)
        .bind(&r.expires_at_text)
        .bind(ms(now))
        .bind(ms(r.expires_at))
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                new.actor.clone(),
                subject_of(new.agent_did.as_deref(), sponsor_id.as_deref()),
                AuditAction::ActionSubmitted(submitted_detail(&new)),
            ),
            now,
        )
        .await?;
        let stored = reread(&mut tx, &r.approval_request_id).await?;
        self.finish(tx).await?;
        Ok(Arrival::Created(stored))
    }

    #[tracing::instrument(skip_all)]
    async fn action(&self, id: &str) -> StoreResult<Option<Action>> {
        action_row(&self.pool, id)
            .await?
            .map(ActionRow::into_action)
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_actions(&self, filter: &ActionFilter) -> StoreResult<Vec<Action>> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {ACTION_COLUMNS}"));
        push_selection(&mut q, filter);
        if let Some((at, id)) = &filter.after {
            q.push(" AND (a.expires_at, a.id) > (")
                .push_bind(ms(*at))
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        if filter.status == Some(ActionStatus::Pending) {
            q.push(" ORDER BY a.expires_at, a.id");
        } else {
            q.push(" ORDER BY a.created_at DESC, a.id");
        }
        q.push(" LIMIT ").push_bind(i64::from(filter.limit));
        let rows: Vec<ActionRow> = q.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(ActionRow::into_action).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn count_actions(&self, filter: &ActionFilter) -> StoreResult<u64> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM action_requests a");
        push_selection(&mut q, filter);
        let (n,): (i64,) = q.build_query_as().fetch_one(&self.pool).await?;
        Ok(n.max(0) as u64)
    }

    #[tracing::instrument(skip_all)]
    async fn sponsors_action(&self, sponsor_id: &str, action: &Action) -> StoreResult<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1::BIGINT FROM action_requests a WHERE a.id = $1 AND (a.sponsor_id = $2
                 OR a.agent_did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = $3))",
        )
        .bind(&action.id)
        .bind(sponsor_id)
        .bind(sponsor_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    #[tracing::instrument(skip_all)]
    async fn decide_action(
        &self,
        id: &str,
        input: ActionDecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Action> {
        let mut tx = self.write().await?;
        let (stored, sponsor_id) = action_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let sponsors_agent = match &stored.agent_did {
            None => false,
            Some(did) => sqlx::query_as::<_, (i64,)>(
                "SELECT 1::BIGINT FROM agent_sponsors WHERE sponsor_id = $1 AND agent_did = $2",
            )
            .bind(&input.approver_id)
            .bind(did)
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
        };
        action::may_decide(&ActionDecider {
            sponsors_agent,
            owns_integration: sponsor_id.as_deref() == Some(input.approver_id.as_str()),
            roles: &input.approver_roles,
            approver_roles: &input.policy_roles,
        })?;
        if let Err(refusal) = action::check_pending(&stored, now) {
            if stored.status == ActionStatus::Pending {
                // Too late: the request ends now, as expired, and the decision is refused.
                expire_in(&mut tx, &stored, sponsor_id.as_deref(), now).await?;
                self.finish(tx).await?;
            }
            return Err(refusal.into());
        }
        if input.decision == Decision::Approve
            && let Some(did) = &stored.agent_did
        {
            let status: Option<(String,)> =
                sqlx::query_as("SELECT status FROM agents WHERE did = $1")
                    .bind(did)
                    .fetch_optional(&mut *tx)
                    .await?;
            action::agent_may_ask(status.as_ref().map(|s| s.0.as_str()))?;
        }
        let (status, event) = match input.decision {
            Decision::Approve => (
                ActionStatus::Approved,
                AuditAction::ActionApproved as fn(_) -> _,
            ),
            Decision::Deny => (
                ActionStatus::Denied,
                AuditAction::ActionDenied as fn(_) -> _,
            ),
        };
        sqlx::query(
            "UPDATE action_requests SET status = $1, decided_at = $2, approver_id = $3, justification = $4
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(ms(now))
        .bind(&input.approver_id)
        .bind(&input.justification)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                Actor::sponsor(input.approver_id.clone()),
                subject_of(stored.agent_did.as_deref(), sponsor_id.as_deref()),
                event(detail::ActionDecided {
                    approval_request_id: id.to_owned(),
                    justification: input.justification.clone(),
                }),
            ),
            now,
        )
        .await?;
        let decided = reread(&mut tx, id).await?;
        self.finish(tx).await?;
        Ok(decided)
    }

    #[tracing::instrument(skip_all)]
    async fn expire_action(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Action> {
        let mut tx = self.write().await?;
        let (stored, sponsor_id) = action_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if stored.status != ActionStatus::Pending || stored.expires_at > now {
            return Ok(stored);
        }
        expire_in(&mut tx, &stored, sponsor_id.as_deref(), now).await?;
        let expired = reread(&mut tx, id).await?;
        self.finish(tx).await?;
        Ok(expired)
    }

    #[tracing::instrument(skip_all)]
    async fn expire_actions(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let due: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM action_requests WHERE status = 'pending' AND expires_at <= $1
             ORDER BY expires_at LIMIT 1000",
        )
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let mut done = Vec::with_capacity(due.len());
        for (id,) in due {
            // Re-read inside the transaction: a decision may have landed meanwhile.
            if let Some((stored, sponsor_id)) = action_in(&mut tx, &id).await?
                && stored.status == ActionStatus::Pending
                && stored.expires_at <= now
            {
                expire_in(&mut tx, &stored, sponsor_id.as_deref(), now).await?;
                done.push(id);
            }
        }
        self.finish(tx).await?;
        Ok(done)
    }
}
