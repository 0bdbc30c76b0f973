//! Grants and the kill switch in SQLite. What a take-down touches is planned by
//! `domain::suspension` from facts loaded inside the writer transaction; this module loads the
//! facts and writes the plan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::audit::append;
use super::requests::end_request;
use super::rows::{grant_from_row, status_of};
use super::trust::{set_trust, trust_now};
use super::{SqliteStore, Tx, from_ms, ms, parse_list};
use crate::domain::suspension::{self, AgentNode, LiveGrant, PendingRequest, Plan, TakeDown};
use crate::domain::trust;
use crate::protocol::agents::Agent;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::requests::{Grant, RequestStatus, Suspension};
use crate::server::store::{
    AgentStore, GrantFilter, GrantStore, NewAuditEvent, StoreError, StoreResult, SuspendTarget,
};

/// Every live grant: the facts a cascade of revocations walks.
async fn live_grants(tx: &mut Tx<'_>, now: DateTime<Utc>) -> StoreResult<Vec<LiveGrant>> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, agent_did, source_grant_id FROM grants
         WHERE revoked_at IS NULL AND not_after > ? ORDER BY rowid",
    )
    .bind(ms(now))
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, agent_did, source_grant_id)| LiveGrant {
            id,
            agent_did,
            source_grant_id,
        })
        .collect())
}

/// Revokes `grants` and the tokens that carry any of them; returns the tokens it revoked.
async fn revoke_grants(
    tx: &mut Tx<'_>,
    grants: &[String],
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let mut tokens = Vec::new();
    for id in grants {
        sqlx::query(
            "UPDATE grants SET revoked_at = ?, revoked_by = ?, revoke_reason = ?
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(ms(now))
        .bind(by)
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        let revoked: Vec<(String,)> = sqlx::query_as(
            "UPDATE access_tokens SET revoked_at = ?
             WHERE revoked_at IS NULL AND expires_at > ? AND jti IN (SELECT jti FROM token_grants WHERE grant_id = ?)
             RETURNING jti",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        tokens.extend(revoked.into_iter().map(|(jti,)| jti));
    }
    Ok(tokens)
}

/// The agents a take-down of `target` reaches, with their status, in reach order.
async fn reached(tx: &mut Tx<'_>, target: &SuspendTarget) -> StoreResult<Vec<AgentNode>> {
    let roots: Vec<String> = match target {
        SuspendTarget::Agent(did) => {
            let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM agents WHERE did = ?")
                .bind(did)
                .fetch_optional(&mut **tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            vec![did.clone()]
        }
        SuspendTarget::Sponsor(id) => {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ? ORDER BY agent_did",
            )
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
            rows.into_iter().map(|r| r.0).collect()
        }
    };
    // Only delegated agents have a parent: the edges of every delegation tree.
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT did, parent_did, status FROM agents WHERE parent_did IS NOT NULL ORDER BY rowid",
    )
    .fetch_all(&mut **tx)
    .await?;
    let children = rows
        .into_iter()
        .map(|(did, parent_did, status)| {
            Ok(AgentNode {
                did,
                parent_did,
                status: status_of(&status)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let mut out = Vec::new();
    for did in suspension::reach(&roots, &children) {
        let row: Option<(Option<String>, String)> =
            sqlx::query_as("SELECT parent_did, status FROM agents WHERE did = ?")
                .bind(&did)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some((parent_did, status)) = row {
            out.push(AgentNode {
                did,
                parent_did,
                status: status_of(&status)?,
            });
        }
    }
    Ok(out)
}

/// The plan of a take-down of `target`, from the facts as they are inside `tx`.
async fn plan(
    tx: &mut Tx<'_>,
    target: &SuspendTarget,
    take_down: TakeDown,
    now: DateTime<Utc>,
) -> StoreResult<Plan> {
    let agents = reached(tx, target).await?;
    let grants = live_grants(tx, now).await?;
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT id, agent_did, child_did FROM requests WHERE status = 'pending' AND (agent_did IN (",
    );
    let mut dids = builder.separated(", ");
    for a in &agents {
        dids.push_bind(a.did.as_str());
    }
    builder.push(") OR child_did IN (");
    let mut dids = builder.separated(", ");
    for a in &agents {
        dids.push_bind(a.did.as_str());
    }
    builder.push(")) ORDER BY rowid");
    let requests: Vec<(String, String, Option<String>)> = if agents.is_empty() {
        Vec::new()
    } else {
        builder.build_query_as().fetch_all(&mut **tx).await?
    };
    let requests: Vec<PendingRequest> = requests
        .into_iter()
        .map(|(id, agent_did, child_did)| PendingRequest {
            id,
            agent_did,
            child_did,
        })
        .collect();
    Ok(suspension::plan(take_down, &agents, &grants, &requests))
}

/// Writes a take-down plan: statuses, grants, requests, tokens and trust, one audit event per
/// agent.
async fn take_down(
    tx: &mut Tx<'_>,
    plan: Plan,
    take_down: TakeDown,
    reason: &str,
    security: bool,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<Suspension> {
    let mut out = Suspension::default();
    let by = actor.to_string();
    let status = take_down.status();
    for agent in plan.agents {
        let did = agent.did;
        sqlx::query(
            "UPDATE agents SET status = ?, status_reason = ?, suspension_security = ?,
             status_changed_at = ?, status_changed_by = ?, updated_at = ? WHERE did = ?",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(i64::from(security))
        .bind(ms(now))
        .bind(&by)
        .bind(ms(now))
        .bind(&did)
        .execute(&mut **tx)
        .await?;
        let mut tokens = revoke_grants(tx, &agent.grants, &by, reason, now).await?;
        for id in &agent.requests {
            let why = Some(take_down.reason_code());
            end_request(tx, id, RequestStatus::Cancelled, why, None, now, now).await?;
        }
        let why = format!("the agent was taken down: {reason}");
        super::actions::deny_pending_of(tx, &did, &why, actor, now).await?;
        let held: Vec<(String,)> = sqlx::query_as(
            "UPDATE access_tokens SET revoked_at = ?
             WHERE subject = ? AND revoked_at IS NULL AND expires_at > ? RETURNING jti",
        )
        .bind(ms(now))
        .bind(&did)
        .bind(ms(now))
        .fetch_all(&mut **tx)
        .await?;
        tokens.extend(held.into_iter().map(|(jti,)| jti));
        tokens.sort();
        // Trust is capped below probationary while out of service.
        let current = trust_now(tx, &did, now).await?;
        let capped = trust::out_of_service(current);
        set_trust(
            tx,
            &did,
            capped,
            capped - current,
            take_down.reason_code(),
            now,
        )
        .await?;
        out.tokens_revoked += tokens.len() as i64;
        let done = action::TakenDown {
            reason: reason.to_owned(),
            security,
            grants_revoked: agent.grants.clone(),
            requests_cancelled: agent.requests.clone(),
            tokens_revoked: tokens.len() as i64,
            revoked_tokens: Some(tokens),
            trust_score: capped,
        };
        let event = match take_down {
            TakeDown::Suspend => AuditAction::AgentSuspended(done),
            TakeDown::Revoke => AuditAction::AgentRevoked(done),
        };
        append(
            tx,
            NewAuditEvent::new(actor.clone(), did.clone(), event),
            now,
        )
        .await?;
        out.agents.push(did);
        out.grants_revoked.extend(agent.grants);
        out.requests_cancelled.extend(agent.requests);
    }
    Ok(out)
}

#[async_trait]
impl GrantStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(did = %did))]
    async fn active_grants(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Vec<Grant>> {
        sqlx::query(
            "SELECT * FROM grants WHERE agent_did = ? AND revoked_at IS NULL AND not_before <= ? AND not_after > ?
             ORDER BY not_after",
        )
        .bind(did)
        .bind(ms(now))
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| grant_from_row(r, now))
        .collect()
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn grant(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Grant>> {
        sqlx::query("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(|r| grant_from_row(r, now))
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_grants(
        &self,
        filter: &GrantFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Grant>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM grants WHERE 1 = 1");
        if let Some(sponsor) = &filter.sponsor_id {
            q.push(" AND agent_did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ")
                .push_bind(sponsor)
                .push(")");
        }
        if let Some(agent) = &filter.agent_did {
            q.push(" AND agent_did = ").push_bind(agent);
        }
        if filter.active_only {
            q.push(" AND revoked_at IS NULL AND not_before <= ")
                .push_bind(ms(now))
                .push(" AND not_after > ")
                .push_bind(ms(now));
        }
        q.push(" ORDER BY not_after DESC LIMIT 5000");
        q.build()
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| grant_from_row(r, now))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn revoke_grant(
        &self,
        id: &str,
        actor: Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let grant = grant_from_row(&row, now)?;
        suspension::grant_revocable(grant.revoked_at.is_some(), !grant.active)?;
        let live = live_grants(&mut tx, now).await?;
        let grants: Vec<String> = suspension::cascade(&[id], &live)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let by = actor.to_string();
        let tokens = revoke_grants(&mut tx, &grants, &by, reason, now).await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                actor,
                grant.agent_did.clone(),
                AuditAction::GrantRevoked(action::GrantRevoked {
                    grant_id: id.to_owned(),
                    reason: reason.to_owned(),
                    grants_revoked: grants.clone(),
                    tokens_revoked: tokens.len() as i64,
                    revoked_tokens: Some(tokens.clone()),
                }),
            ),
            now,
        )
        .await?;
        self.finish(tx).await?;
        Ok(Suspension {
            agents: Vec::new(),
            grants_revoked: grants,
            requests_cancelled: Vec::new(),
            tokens_revoked: tokens.len() as i64,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn suspend(
        &self,
        target: SuspendTarget,
        reason: &str,
        security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        let mut tx = self.write().await?;
        let plan = plan(&mut tx, &target, TakeDown::Suspend, now).await?;
        let out = take_down(
            &mut tx,
            plan,
            TakeDown::Suspend,
            reason,
            security,
            &actor,
            now,
        )
        .await?;
        self.finish(tx).await?;
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(did = %did))]
    async fn reactivate(
        &self,
        did: &str,
        reason: &str,
        may_lift_security: bool,
        trust_floor: i64,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Agent> {
        let mut tx = self.write().await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT status, suspension_security FROM agents WHERE did = ?")
                .bind(did)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, security)) = row else {
            return Err(StoreError::NotFound);
        };
        suspension::may_reactivate(status_of(&status)?, security != 0, may_lift_security)?;
        sqlx::query(
            "UPDATE agents SET status = 'active', status_reason = ?, suspension_security = 0,
             status_changed_at = ?, status_changed_by = ?, updated_at = ? WHERE did = ?",
        )
        .bind(reason)
        .bind(ms(now))
        .bind(actor.to_string())
        .bind(ms(now))
        .bind(did)
        .execute(&mut *tx)
        .await?;
        // Back in service at no less than the trust an agent needs to ask for anything.
        let current = trust_now(&mut tx, did, now).await?;
        let restored = trust::on_reactivation(current, trust_floor);
        if restored != current {
            set_trust(
                &mut tx,
                did,
                restored,
                restored - current,
                "reactivated",
                now,
            )
            .await?;
        }
        append(
            &mut tx,
            NewAuditEvent::new(
                actor,
                did.to_owned(),
                AuditAction::AgentReactivated(action::Reactivated {
                    reason: reason.to_owned(),
                    was_security: security != 0,
                }),
            ),
            now,
        )
        .await?;
        self.finish(tx).await?;
        self.agent(did, now).await?.ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(did = %did))]
    async fn revoke_agent(
        &self,
        did: &str,
        reason: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        let mut tx = self.write().await?;
        let target = SuspendTarget::Agent(did.to_owned());
        let plan = plan(&mut tx, &target, TakeDown::Revoke, now).await?;
        let out = take_down(&mut tx, plan, TakeDown::Revoke, reason, false, &actor, now).await?;
        self.finish(tx).await?;
        Ok(out)
    }

    #[tracing::instrument(skip_all)]
    async fn expire_grants(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let mut tx = self.write().await?;
        let due: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id, agent_did, capabilities, not_after FROM grants
             WHERE revoked_at IS NULL AND ended_at IS NULL AND not_after <= ?
             ORDER BY not_after LIMIT 1000",
        )
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut done = Vec::with_capacity(due.len());
        for (id, agent, caps, not_after) in due {
            sqlx::query("UPDATE grants SET ended_at = not_after WHERE id = ?")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            append(
                &mut tx,
                NewAuditEvent::new(
                    Actor::system(),
                    agent,
                    AuditAction::GrantExpired(action::GrantExpired {
                        grant_id: id.clone(),
                        capabilities: parse_list(&caps, "grant capabilities")?,
                        not_after: from_ms(not_after),
                    }),
                ),
                now,
            )
            .await?;
            done.push(id);
        }
        self.finish(tx).await?;
        Ok(done)
    }

    #[tracing::instrument(skip_all)]
    async fn suspension_targets(
        &self,
        target: &SuspendTarget,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.reader.begin().await?;
        Ok(plan(&mut tx, target, TakeDown::Suspend, now).await?.dids())
    }
}
