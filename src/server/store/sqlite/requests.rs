//! Requests, decisions, grants, the kill switch and trust, in SQLite. Every function that
//! changes state does it in one writer transaction together with its audit event(s).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{
    AgentRow, SqliteStore, append, from_ms, insert_agent, ms, opt_from_ms, remember, replay,
};
use crate::domain::capability::{self, Capability};
use crate::domain::delegation::{self, HeldGrant, Parent};
use crate::domain::policy::Requirement;
use crate::domain::trust;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::requests::{
    Approval, Decision, Grant, Request, RequestKind, RequestStatus, Suspension, TrustPoint,
};
use crate::server::store::{
    ChildSpec, DecisionInput, GrantFilter, Idempotency, NewAuditEvent, NewRequest, RequestFilter,
    StoreError, StoreResult, Submitted, SuspendTarget,
};

type Tx<'a> = Transaction<'a, Sqlite>;

fn json_list(v: &[String]) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_list(s: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn caps_of(items: &[String]) -> StoreResult<Vec<Capability>> {
    capability::parse_set(items).map_err(|e| StoreError::Corrupt(format!("capabilities: {e}")))
}

const REQUEST_SELECT: &str = "SELECT r.*, a.name AS agent_name, c.name AS child_name
     FROM requests r JOIN agents a ON a.did = r.agent_did LEFT JOIN agents c ON c.did = r.child_did";

fn request_from_row(row: &SqliteRow, approvals: Vec<Approval>) -> StoreResult<Request> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let caps: String = row.try_get("capabilities")?;
    let requirement: String = row.try_get("requirement")?;
    Ok(Request {
        id: row.try_get("id")?,
        kind: RequestKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("request kind {kind:?}")))?,
        agent_did: row.try_get("agent_did")?,
        agent_name: row.try_get("agent_name")?,
        child_did: row.try_get("child_did")?,
        child_name: row.try_get("child_name")?,
        capabilities: parse_list(&caps, "request capabilities")?,
        duration_seconds: row.try_get("duration_seconds")?,
        justification: row.try_get("justification")?,
        ticket: row.try_get("ticket")?,
        context: row.try_get("context")?,
        on_behalf_of: row.try_get("on_behalf_of")?,
        status: RequestStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("request status {status:?}")))?,
        reason: row.try_get("reason")?,
        policy: serde_json::from_str::<Requirement>(&requirement)
            .map_err(|e| StoreError::Corrupt(format!("request requirement: {e}")))?,
        approvals,
        trust_score: row.try_get("trust_score")?,
        created_at: from_ms(row.try_get("created_at")?),
        expires_at: from_ms(row.try_get("expires_at")?),
        decided_at: opt_from_ms(row.try_get("decided_at")?),
        grant_id: row.try_get("grant_id")?,
    })
}

fn approval_from_row(row: &SqliteRow) -> StoreResult<Approval> {
    let decision: String = row.try_get("decision")?;
    let caps: Option<String> = row.try_get("capabilities")?;
    Ok(Approval {
        approver_id: row.try_get("approver_id")?,
        approver_username: row.try_get("username")?,
        decision: match decision.as_str() {
            "approve" => Decision::Approve,
            "deny" => Decision::Deny,
            other => return Err(StoreError::Corrupt(format!("decision {other:?}"))),
        },
        duration_seconds: row.try_get("duration_seconds")?,
        capabilities: caps
            .map(|c| parse_list(&c, "approval capabilities"))
            .transpose()?,
        justification: row.try_get("justification")?,
        at: from_ms(row.try_get("at")?),
    })
}

fn grant_from_row(row: &SqliteRow, now: DateTime<Utc>) -> StoreResult<Grant> {
    let caps: String = row.try_get("capabilities")?;
    let not_before = from_ms(row.try_get("not_before")?);
    let not_after = from_ms(row.try_get("not_after")?);
    let revoked_at = opt_from_ms(row.try_get("revoked_at")?);
    Ok(Grant {
        id: row.try_get("id")?,
        agent_did: row.try_get("agent_did")?,
        capabilities: parse_list(&caps, "grant capabilities")?,
        not_before,
        not_after,
        request_id: row.try_get("request_id")?,
        source_grant_id: row.try_get("source_grant_id")?,
        revoked_at,
        revoked_by: row.try_get("revoked_by")?,
        revoke_reason: row.try_get("revoke_reason")?,
        active: revoked_at.is_none() && not_before <= now && now < not_after,
    })
}

async fn approvals_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Vec<Approval>> {
    sqlx::query(
        "SELECT d.*, s.username FROM request_decisions d JOIN sponsors s ON s.id = d.approver_id
         WHERE d.request_id = ? ORDER BY d.at, d.approver_id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(approval_from_row)
    .collect()
}

async fn request_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<Request>> {
    let Some(row) = sqlx::query(&format!("{REQUEST_SELECT} WHERE r.id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let approvals = approvals_in(tx, id).await?;
    request_from_row(&row, approvals).map(Some)
}

/// Moves an agent's trust by `delta` (after decay to `now`) and records the event.
async fn move_trust(
    tx: &mut Tx<'_>,
    did: &str,
    delta: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let (score, positive_at, created_at): (i64, Option<i64>, i64) = sqlx::query_as(
        "SELECT trust_score, trust_positive_at, created_at FROM agents WHERE did = ?",
    )
    .bind(did)
    .fetch_one(&mut **tx)
    .await?;
    let current = trust::decayed(score, from_ms(positive_at.unwrap_or(created_at)), now);
    let next = trust::apply(current, delta);
    set_trust(tx, did, next, delta, reason, now).await?;
    Ok(next)
}

async fn set_trust(
    tx: &mut Tx<'_>,
    did: &str,
    score: i64,
    delta: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // The decay so far is folded into the stored score, so the decay clock restarts now.
    sqlx::query(
        "UPDATE agents SET trust_score = ?, trust_positive_at = ?, updated_at = ? WHERE did = ?",
    )
    .bind(score)
    .bind(ms(now))
    .bind(ms(now))
    .bind(did)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO trust_events (agent_did, at, delta, score_after, reason) VALUES (?, ?, ?, ?, ?)",
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
async fn trust_now(tx: &mut Tx<'_>, did: &str, now: DateTime<Utc>) -> StoreResult<i64> {
    let (score, positive_at, created_at): (i64, Option<i64>, i64) = sqlx::query_as(
        "SELECT trust_score, trust_positive_at, created_at FROM agents WHERE did = ?",
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

/// Ends a pending request as expired (a deny), with its trust event and audit event.
async fn expire_one(
    tx: &mut Tx<'_>,
    id: &str,
    agent_did: &str,
    trust_delta: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE requests SET status = 'expired', reason = 'expired', decided_at = ? WHERE id = ? AND status = 'pending'",
    )
    .bind(ms(now))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    let score = move_trust(tx, agent_did, trust_delta, "request_expired", now).await?;
    append(
        tx,
        NewAuditEvent::new(
            Actor::system(),
            agent_did,
            AuditAction::RequestExpired(action::Expired {
                request_id: id.to_owned(),
                trust_score: score,
            }),
        ),
        now,
    )
    .await?;
    Ok(())
}

/// The parent's holdings for the delegation rules.
async fn parent_view(tx: &mut Tx<'_>, did: &str, now: DateTime<Utc>) -> StoreResult<Parent> {
    let (status, caps, depth): (String, String, i64) =
        sqlx::query_as("SELECT status, capabilities, delegation_depth FROM agents WHERE did = ?")
            .bind(did)
            .fetch_one(&mut **tx)
            .await?;
    if status != "active" {
        return Err(StoreError::conflict(
            "parent_inactive",
            format!("the delegating agent is {status}"),
        ));
    }
    let standing = caps_of(&parse_list(&caps, "agent capabilities")?)?;
    let rows = sqlx::query(
        "SELECT * FROM grants WHERE agent_did = ? AND revoked_at IS NULL AND not_before <= ? AND not_after > ?",
    )
    .bind(did)
    .bind(ms(now))
    .bind(ms(now))
    .fetch_all(&mut **tx)
    .await?;
    let mut grants = Vec::with_capacity(rows.len());
    for row in &rows {
        let g = grant_from_row(row, now)?;
        grants.push(HeldGrant {
            grant_id: g.id,
            capabilities: caps_of(&g.capabilities)?,
            not_after: g.not_after,
        });
    }
    Ok(Parent {
        depth,
        trust: trust_now(tx, did, now).await?,
        standing,
        grants,
    })
}

#[allow(clippy::too_many_arguments)]
async fn insert_grant(
    tx: &mut Tx<'_>,
    agent_did: &str,
    caps: &[String],
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    request_id: &str,
    source: Option<&str>,
) -> StoreResult<String> {
    let id = format!("grt_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO grants (id, agent_did, capabilities, not_before, not_after, request_id, source_grant_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(agent_did)
    .bind(json_list(caps)?)
    .bind(ms(not_before))
    .bind(ms(not_after))
    .bind(request_id)
    .bind(source)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Revokes grants (and the grants delegated from them, transitively) and the tokens that
/// carry any of them. Returns the revoked grant ids and the number of tokens revoked.
async fn revoke_grants(
    tx: &mut Tx<'_>,
    roots: &[String],
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<(Vec<String>, i64)> {
    let mut revoked = Vec::new();
    let mut frontier: Vec<String> = roots.to_vec();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(id) = frontier.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let changed = sqlx::query(
            "UPDATE grants SET revoked_at = ?, revoked_by = ?, revoke_reason = ?
             WHERE id = ? AND revoked_at IS NULL AND not_after > ?",
        )
        .bind(ms(now))
        .bind(by)
        .bind(reason)
        .bind(&id)
        .bind(ms(now))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if changed == 1 {
            revoked.push(id.clone());
        }
        let children: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM grants WHERE source_grant_id = ?")
                .bind(&id)
                .fetch_all(&mut **tx)
                .await?;
        frontier.extend(children.into_iter().map(|c| c.0));
    }
    let mut tokens = 0;
    for id in &revoked {
        tokens += sqlx::query(
            "UPDATE access_tokens SET revoked_at = ?
             WHERE revoked_at IS NULL AND expires_at > ? AND jti IN (SELECT jti FROM token_grants WHERE grant_id = ?)",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected() as i64;
    }
    Ok((revoked, tokens))
}

/// An agent and every agent delegated from it, transitively.
async fn tree(tx: &mut Tx<'_>, did: &str) -> StoreResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "WITH RECURSIVE tree(did) AS (
             SELECT ? UNION SELECT a.did FROM agents a JOIN tree t ON a.parent_did = t.did)
         SELECT did FROM tree",
    )
    .bind(did)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

async fn targets(tx: &mut Tx<'_>, target: &SuspendTarget) -> StoreResult<Vec<String>> {
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
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    for root in roots {
        for did in tree(tx, &root).await? {
            if seen.insert(did.clone()) {
                all.push(did);
            }
        }
    }
    Ok(all)
}

/// Takes agents out of service: `to` is `suspended` or `revoked`. Only agents not already in
/// that state (or, for suspension, not revoked) change. Everything they hold ends.
async fn take_down(
    tx: &mut Tx<'_>,
    dids: &[String],
    to: &str,
    reason: &str,
    security: bool,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<Suspension> {
    let mut out = Suspension::default();
    let by = format!("{}:{}", actor.kind, actor.id);
    for did in dids {
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM agents WHERE did = ?")
            .bind(did)
            .fetch_optional(&mut **tx)
            .await?;
        let Some((status,)) = status else { continue };
        let changes = match to {
            "suspended" => status == "active",
            _ => status != "revoked",
        };
        if !changes {
            continue;
        }
        sqlx::query(
            "UPDATE agents SET status = ?, status_reason = ?, suspension_security = ?,
             status_changed_at = ?, status_changed_by = ?, updated_at = ? WHERE did = ?",
        )
        .bind(to)
        .bind(reason)
        .bind(i64::from(security))
        .bind(ms(now))
        .bind(&by)
        .bind(ms(now))
        .bind(did)
        .execute(&mut **tx)
        .await?;
        // Grants held by the agent.
        let held: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM grants WHERE agent_did = ? AND revoked_at IS NULL AND not_after > ?",
        )
        .bind(did)
        .bind(ms(now))
        .fetch_all(&mut **tx)
        .await?;
        let held: Vec<String> = held.into_iter().map(|g| g.0).collect();
        let (grants, grant_tokens) = revoke_grants(tx, &held, &by, reason, now).await?;
        // Pending requests by it, or delegating to it.
        let pending: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM requests WHERE status = 'pending' AND (agent_did = ? OR child_did = ?)",
        )
        .bind(did)
        .bind(did)
        .fetch_all(&mut **tx)
        .await?;
        let cancelled: Vec<String> = pending.into_iter().map(|r| r.0).collect();
        for id in &cancelled {
            sqlx::query(
                "UPDATE requests SET status = 'cancelled', reason = ?, decided_at = ? WHERE id = ?",
            )
            .bind(format!("agent_{to}"))
            .bind(ms(now))
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        // Every outstanding token.
        let tokens = sqlx::query(
            "UPDATE access_tokens SET revoked_at = ? WHERE subject = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(ms(now))
        .bind(did)
        .bind(ms(now))
        .execute(&mut **tx)
        .await?
        .rows_affected() as i64
            + grant_tokens;
        // Trust is capped below probationary while out of service.
        let current = trust_now(tx, did, now).await?;
        let capped = current.min(trust::SUSPENSION_CAP);
        set_trust(
            tx,
            did,
            capped,
            capped - current,
            &format!("agent_{to}"),
            now,
        )
        .await?;
        append(
            tx,
            NewAuditEvent::new(actor.clone(), did.clone(), {
                let done = action::TakenDown {
                    reason: reason.to_owned(),
                    security,
                    grants_revoked: grants.clone(),
                    requests_cancelled: cancelled.clone(),
                    tokens_revoked: tokens,
                    trust_score: capped,
                };
                if to == "suspended" {
                    AuditAction::AgentSuspended(done)
                } else {
                    AuditAction::AgentRevoked(done)
                }
            }),
            now,
        )
        .await?;
        out.agents.push(did.clone());
        out.grants_revoked.extend(grants);
        out.requests_cancelled.extend(cancelled);
        out.tokens_revoked += tokens;
    }
    Ok(out)
}

fn not_pending(request: &Request) -> StoreError {
    let (code, message) = match request.status {
        RequestStatus::Approved | RequestStatus::Denied => (
            "already_decided",
            format!("this request was already {}", request.status.as_str()),
        ),
        RequestStatus::Expired => ("expired", "this request expired before a decision".into()),
        RequestStatus::Cancelled => (
            "cancelled",
            format!(
                "this request was cancelled ({})",
                request.reason.as_deref().unwrap_or("by the agent")
            ),
        ),
        RequestStatus::Pending => ("pending", "this request is still pending".into()),
    };
    StoreError::conflict(code, message)
}

impl SqliteStore {
    pub(super) async fn submit_request_impl(
        &self,
        new: NewRequest,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Submitted> {
        let mut tx = self.writer.begin().await?;
        if let Some(idem) = &idempotency {
            if let Some(stored) = replay(&mut tx, idem).await? {
                return Ok(Submitted::Replayed(stored));
            }
        }
        let child_did = match &new.child {
            None => None,
            Some(ChildSpec::Existing(did)) => Some(did.clone()),
            Some(ChildSpec::New {
                did,
                name,
                public_key,
                model,
                runtime,
                trust_score,
                max_agents_per_sponsor,
            }) => {
                let (fullest,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(MAX(n), 0) FROM (
                         SELECT COUNT(*) AS n FROM agent_sponsors s JOIN agents a ON a.did = s.agent_did
                         WHERE a.status != 'revoked' AND s.sponsor_id IN
                               (SELECT sponsor_id FROM agent_sponsors WHERE agent_did = ?)
                         GROUP BY s.sponsor_id)",
                )
                .bind(&new.agent_did)
                .fetch_one(&mut *tx)
                .await?;
                if fullest >= i64::from(*max_agents_per_sponsor) {
                    return Err(StoreError::conflict(
                        "agent_limit_reached",
                        "a sponsor of this agent already holds the most agents this server allows",
                    ));
                }
                insert_agent(
                    &mut tx,
                    &AgentRow {
                        did,
                        name,
                        public_key,
                        capabilities: &[],
                        trust_score: *trust_score,
                        entra_object_id: None,
                        model: model.as_deref(),
                        runtime: runtime.as_deref(),
                    },
                    "an agent with this public key is already registered; pass child_did",
                    now,
                )
                .await?;
                sqlx::query(
                    "INSERT INTO agent_sponsors (agent_did, sponsor_id)
                     SELECT ?, sponsor_id FROM agent_sponsors WHERE agent_did = ?",
                )
                .bind(did)
                .bind(&new.agent_did)
                .execute(&mut *tx)
                .await?;
                append(
                    &mut tx,
                    NewAuditEvent::new(
                        Actor::agent(new.agent_did.clone()),
                        did.clone(),
                        AuditAction::AgentRegistered(action::AgentRegistered {
                            name: name.clone(),
                            capabilities: Vec::new(),
                            model: model.clone(),
                            runtime: runtime.clone(),
                            by: action::RegisteredBy::Agent {
                                registered_by: new.agent_did.clone(),
                                trust_score: *trust_score,
                            },
                        }),
                    ),
                    now,
                )
                .await?;
                Some(did.clone())
            }
        };
        // Approval fatigue: counted inside the writer transaction, so concurrent submissions
        // see each other.
        let (recent,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM requests WHERE agent_did = ? AND created_at > ?")
                .bind(&new.agent_did)
                .bind(ms(now - Duration::seconds(new.fatigue_window_seconds)))
                .fetch_one(&mut *tx)
                .await?;
        let fatigued = recent >= i64::from(new.fatigue_limit);
        let requirement = serde_json::to_string(&new.requirement)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO requests (id, kind, agent_did, child_did, capabilities, duration_seconds, justification,
                                   ticket, context, on_behalf_of, status, reason, requirement, trust_score,
                                   created_at, expires_at, decided_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(new.kind.as_str())
        .bind(&new.agent_did)
        .bind(&child_did)
        .bind(json_list(&new.capabilities)?)
        .bind(new.duration_seconds)
        .bind(&new.justification)
        .bind(&new.ticket)
        .bind(&new.context)
        .bind(&new.on_behalf_of)
        .bind(if fatigued { "denied" } else { "pending" })
        .bind(fatigued.then_some("approval_fatigue"))
        .bind(requirement)
        .bind(new.trust_score)
        .bind(ms(now))
        .bind(ms(new.expires_at))
        .bind(fatigued.then(|| ms(now)))
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                Actor::agent(new.agent_did.clone()),
                new.agent_did.clone(),
                AuditAction::RequestSubmitted(action::Submitted {
                    request_id: new.id.clone(),
                    kind: new.kind,
                    child_did: child_did.clone(),
                    capabilities: new.capabilities.clone(),
                    duration_seconds: new.duration_seconds,
                    sensitivity: new.requirement.sensitivity,
                    expires_at: new.expires_at,
                }),
            ),
            now,
        )
        .await?;
        if fatigued {
            let score = move_trust(
                &mut tx,
                &new.agent_did,
                new.fatigue_penalty,
                "approval_fatigue",
                now,
            )
            .await?;
            append(
                &mut tx,
                NewAuditEvent::new(
                    Actor::system(),
                    new.agent_did.clone(),
                    AuditAction::RequestDenied(action::Denied {
                        request_id: new.id.clone(),
                        trust_score: score,
                        by: action::DeniedBy::Fatigue {
                            reason: action::FatigueReason::ApprovalFatigue,
                            recent_requests: recent,
                        },
                    }),
                ),
                now,
            )
            .await?;
        }
        let request = request_in(&mut tx, &new.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("request vanished".into()))?;
        if let Some(idem) = &idempotency {
            remember(&mut tx, idem, 201, &request, now).await?;
        }
        self.finish(tx).await?;
        Ok(Submitted::Created(Box::new(request)))
    }

    pub(super) async fn request_impl(&self, id: &str) -> StoreResult<Option<Request>> {
        let mut conn = self.reader.begin().await?;
        request_in(&mut conn, id).await
    }

    pub(super) async fn list_requests_impl(
        &self,
        filter: &RequestFilter,
    ) -> StoreResult<Vec<Request>> {
        let mut sql = format!("{REQUEST_SELECT} WHERE 1 = 1");
        if filter.sponsor_id.is_some() {
            sql.push_str(
                " AND r.agent_did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ?)",
            );
        }
        if filter.agent_did.is_some() {
            sql.push_str(" AND r.agent_did = ?");
        }
        if filter.status.is_some() {
            sql.push_str(" AND r.status = ?");
        }
        if filter.after.is_some() {
            sql.push_str(" AND (r.expires_at, r.id) > (?, ?)");
        }
        // Pending requests come soonest-to-expire first (what needs a decision first, and what
        // a capped page must not leave out); everything else newest first.
        if filter.status == Some(RequestStatus::Pending) {
            sql.push_str(" ORDER BY r.expires_at, r.id LIMIT ?");
        } else {
            sql.push_str(" ORDER BY r.created_at DESC, r.id LIMIT ?");
        }
        let mut q = sqlx::query(&sql);
        if let Some(s) = &filter.sponsor_id {
            q = q.bind(s);
        }
        if let Some(a) = &filter.agent_did {
            q = q.bind(a);
        }
        if let Some(st) = filter.status {
            q = q.bind(st.as_str());
        }
        if let Some((at, id)) = &filter.after {
            q = q.bind(ms(*at)).bind(id.clone());
        }
        let mut conn = self.reader.begin().await?;
        let rows = q
            .bind(i64::from(filter.limit))
            .fetch_all(&mut *conn)
            .await?;
        // Decisions for the listed requests, in one query.
        let mut approvals: BTreeMap<String, Vec<Approval>> = BTreeMap::new();
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<_, _>>()?;
        for chunk in ids.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT d.*, s.username FROM request_decisions d JOIN sponsors s ON s.id = d.approver_id
                 WHERE d.request_id IN ({placeholders}) ORDER BY d.at, d.approver_id"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                let request_id: String = row.try_get("request_id")?;
                approvals
                    .entry(request_id)
                    .or_default()
                    .push(approval_from_row(&row)?);
            }
        }
        rows.iter()
            .zip(ids)
            .map(|(row, id)| request_from_row(row, approvals.remove(&id).unwrap_or_default()))
            .collect()
    }

    pub(super) async fn decide_request_impl(
        &self,
        id: &str,
        input: DecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Request> {
        let mut tx = self.writer.begin().await?;
        let request = request_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if request.status == RequestStatus::Pending && request.expires_at <= now {
            // Past its TTL: it is expired now, whether or not the sweeper got there first.
            expire_one(&mut tx, id, &request.agent_did, input.trust.expired, now).await?;
            self.finish(tx).await?;
            return Err(StoreError::conflict(
                "expired",
                "this request expired before a decision",
            ));
        }
        if request.status != RequestStatus::Pending {
            return Err(not_pending(&request));
        }
        if request
            .on_behalf_of
            .as_deref()
            .is_some_and(|who| who == input.approver_username || who == input.approver_id)
        {
            return Err(StoreError::Forbidden {
                code: "self_approval",
                message: "this request was made on your behalf; someone else must decide it".into(),
            });
        }
        if request
            .approvals
            .iter()
            .any(|a| a.approver_id == input.approver_id)
        {
            return Err(StoreError::conflict(
                "already_decided_by_you",
                "you already decided this request; it needs a different approver",
            ));
        }
        let (duration, caps) = match input.decision {
            Decision::Deny => (None, None),
            Decision::Approve => {
                let max = request.duration_seconds.min(request.policy.max_seconds);
                let duration = input.duration_seconds.unwrap_or(max);
                if duration <= 0 || duration > max {
                    return Err(crate::domain::Invalid::new(
                        "duration_exceeds_limit",
                        format!(
                            "approve for 1 to {max} seconds (the smaller of what was asked, {}, and the policy maximum, {})",
                            request.duration_seconds, request.policy.max_seconds
                        ),
                    )
                    .into());
                }
                let requested = caps_of(&request.capabilities)?;
                let chosen = match &input.capabilities {
                    None => requested.clone(),
                    Some(list) => capability::parse_set(list)?,
                };
                if chosen.is_empty() || !capability::is_subset(&chosen, &requested) {
                    return Err(crate::domain::Invalid::new(
                        "capabilities_not_requested",
                        "approve a non-empty subset of the requested capabilities",
                    )
                    .into());
                }
                (
                    Some(duration),
                    Some(chosen.into_iter().map(String::from).collect::<Vec<_>>()),
                )
            }
        };
        sqlx::query(
            "INSERT INTO request_decisions (request_id, approver_id, decision, duration_seconds, capabilities, justification, at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&input.approver_id)
        .bind(input.decision.as_str())
        .bind(duration)
        .bind(caps.as_deref().map(json_list).transpose()?)
        .bind(&input.justification)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        let actor = Actor::sponsor(input.approver_id.clone());
        match input.decision {
            Decision::Deny => {
                sqlx::query(
                    "UPDATE requests SET status = 'denied', reason = 'denied', decided_at = ? WHERE id = ?",
                )
                .bind(ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let score = move_trust(
                    &mut tx,
                    &request.agent_did,
                    input.trust.denied,
                    "request_denied",
                    now,
                )
                .await?;
                append(
                    &mut tx,
                    NewAuditEvent::new(
                        actor,
                        request.agent_did.clone(),
                        AuditAction::RequestDenied(action::Denied {
                            request_id: id.to_owned(),
                            trust_score: score,
                            by: action::DeniedBy::Sponsor {
                                justification: input.justification.clone(),
                            },
                        }),
                    ),
                    now,
                )
                .await?;
            }
            Decision::Approve => {
                let approvals: Vec<(Vec<String>, i64)> = {
                    let mut all: Vec<(Vec<String>, i64)> = request
                        .approvals
                        .iter()
                        .filter(|a| a.decision == Decision::Approve)
                        .map(|a| {
                            (
                                a.capabilities.clone().unwrap_or_default(),
                                a.duration_seconds.unwrap_or(0),
                            )
                        })
                        .collect();
                    all.push((caps.clone().unwrap_or_default(), duration.unwrap_or(0)));
                    all
                };
                if approvals.len() < usize::from(request.policy.approvals_required) {
                    append(
                        &mut tx,
                        NewAuditEvent::new(
                            actor,
                            request.agent_did.clone(),
                            AuditAction::RequestApprovalRecorded(action::ApprovalRecorded {
                                request_id: id.to_owned(),
                                approvals: approvals.len() as u64,
                                approvals_required: request.policy.approvals_required,
                                duration_seconds: duration.unwrap_or(0),
                                capabilities: caps.clone().unwrap_or_default(),
                                justification: input.justification.clone(),
                            }),
                        ),
                        now,
                    )
                    .await?;
                } else {
                    // Every approver must have agreed to each capability, for the shortest time.
                    let final_duration = approvals.iter().map(|a| a.1).min().unwrap_or(0);
                    let mut final_caps: Vec<Capability> = Vec::new();
                    let sets: Vec<Vec<Capability>> = approvals
                        .iter()
                        .map(|a| caps_of(&a.0))
                        .collect::<StoreResult<_>>()?;
                    if let Some((first, rest)) = sets.split_first() {
                        for c in first {
                            if rest
                                .iter()
                                .all(|set| capability::is_subset(std::slice::from_ref(c), set))
                            {
                                final_caps.push(c.clone());
                            }
                        }
                    }
                    if final_caps.is_empty() {
                        return Err(crate::domain::Invalid::new(
                            "no_common_capabilities",
                            "the approvers agreed on no capability in common",
                        )
                        .into());
                    }
                    let grants = self
                        .create_grants(&mut tx, &request, &final_caps, final_duration, &input, now)
                        .await?;
                    sqlx::query(
                        "UPDATE requests SET status = 'approved', decided_at = ?, grant_id = ? WHERE id = ?",
                    )
                    .bind(ms(now))
                    .bind(grants.first().map(|g| g.0.clone()))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    let score = move_trust(
                        &mut tx,
                        &request.agent_did,
                        input.trust.approved,
                        "request_approved",
                        now,
                    )
                    .await?;
                    append(
                        &mut tx,
                        NewAuditEvent::new(
                            actor,
                            request.agent_did.clone(),
                            AuditAction::RequestApproved(action::Approved {
                                request_id: id.to_owned(),
                                kind: request.kind,
                                grantee: request
                                    .child_did
                                    .clone()
                                    .unwrap_or_else(|| request.agent_did.clone()),
                                grants: grants
                                    .iter()
                                    .map(|g| action::GrantMade {
                                        id: g.0.clone(),
                                        capabilities: g.1.clone(),
                                        not_after: g.2,
                                    })
                                    .collect(),
                                duration_seconds: final_duration,
                                justification: input.justification.clone(),
                                approvers: request
                                    .approvals
                                    .iter()
                                    .map(|a| a.approver_id.clone())
                                    .chain(std::iter::once(input.approver_id.clone()))
                                    .collect(),
                                trust_score: score,
                            }),
                        ),
                        now,
                    )
                    .await?;
                }
            }
        }
        let updated = request_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("request vanished".into()))?;
        self.finish(tx).await?;
        Ok(updated)
    }

    /// Creates the grant(s) of an approved request. Elevation: one grant to the agent.
    /// Delegation: the rules are checked again against what the parent holds now; one grant
    /// per source of the parent's capabilities, each ending no later than its source.
    async fn create_grants(
        &self,
        tx: &mut Tx<'_>,
        request: &Request,
        caps: &[Capability],
        duration: i64,
        input: &DecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, Vec<String>, DateTime<Utc>)>> {
        let ends = now + Duration::seconds(duration);
        match (request.kind, &request.child_did) {
            (RequestKind::Elevation, _) => {
                let list: Vec<String> = caps.iter().cloned().map(String::from).collect();
                let id = insert_grant(tx, &request.agent_did, &list, now, ends, &request.id, None)
                    .await?;
                Ok(vec![(id, list, ends)])
            }
            (RequestKind::Delegation, Some(child)) => {
                let parent = parent_view(tx, &request.agent_did, now).await?;
                let child_trust = trust_now(tx, child, now).await?;
                let (child_status,): (String,) =
                    sqlx::query_as("SELECT status FROM agents WHERE did = ?")
                        .bind(child)
                        .fetch_one(&mut **tx)
                        .await?;
                if child_status != "active" {
                    return Err(StoreError::conflict(
                        "child_inactive",
                        format!("the child agent is {child_status}"),
                    ));
                }
                let sourced = delegation::check(
                    &parent,
                    child_trust,
                    caps,
                    duration,
                    input.max_delegation_depth,
                    now,
                )?;
                let mut groups: BTreeMap<Option<String>, (Vec<String>, DateTime<Utc>)> =
                    BTreeMap::new();
                for s in sourced {
                    let (key, end) = match s.source {
                        Some((gid, until)) => (Some(gid), until.min(ends)),
                        None => (None, ends),
                    };
                    let entry = groups.entry(key).or_insert((Vec::new(), end));
                    entry.0.push(s.capability.into());
                    entry.1 = entry.1.min(end);
                }
                sqlx::query(
                    "UPDATE agents SET parent_did = ?, delegation_depth = ?, updated_at = ? WHERE did = ?",
                )
                .bind(&request.agent_did)
                .bind(parent.depth + 1)
                .bind(ms(now))
                .bind(child)
                .execute(&mut **tx)
                .await?;
                let mut out = Vec::new();
                for (source, (list, end)) in groups {
                    let id =
                        insert_grant(tx, child, &list, now, end, &request.id, source.as_deref())
                            .await?;
                    out.push((id, list, end));
                }
                Ok(out)
            }
            (RequestKind::Delegation, None) => Err(StoreError::Corrupt(
                "delegation request without a child".into(),
            )),
        }
    }

    pub(super) async fn cancel_request_impl(
        &self,
        id: &str,
        agent_did: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Request> {
        let mut tx = self.writer.begin().await?;
        let request = request_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if request.agent_did != agent_did {
            return Err(StoreError::NotFound);
        }
        if request.status != RequestStatus::Pending {
            return Err(not_pending(&request));
        }
        sqlx::query(
            "UPDATE requests SET status = 'cancelled', reason = ?, decided_at = ? WHERE id = ?",
        )
        .bind(reason)
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                Actor::agent(agent_did.to_owned()),
                agent_did.to_owned(),
                AuditAction::RequestCancelled(action::Cancelled {
                    request_id: id.to_owned(),
                    reason: reason.to_owned(),
                }),
            ),
            now,
        )
        .await?;
        let updated = request_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("request vanished".into()))?;
        self.finish(tx).await?;
        Ok(updated)
    }

    pub(super) async fn expire_requests_impl(
        &self,
        now: DateTime<Utc>,
        trust_delta: i64,
    ) -> StoreResult<Vec<String>> {
        let due: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, agent_did FROM requests WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT 1000",
        )
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await?;
        let mut done = Vec::with_capacity(due.len());
        for (id, agent) in due {
            // Re-read inside the transaction: a decision may have landed meanwhile.
            let still: Option<(i64,)> = sqlx::query_as(
                "SELECT 1 FROM requests WHERE id = ? AND status = 'pending' AND expires_at <= ?",
            )
            .bind(&id)
            .bind(ms(now))
            .fetch_optional(&mut *tx)
            .await?;
            if still.is_some() {
                expire_one(&mut tx, &id, &agent, trust_delta, now).await?;
                done.push(id);
            }
        }
        self.finish(tx).await?;
        Ok(done)
    }

    pub(super) async fn active_grants_impl(
        &self,
        did: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Grant>> {
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

    pub(super) async fn grant_impl(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Grant>> {
        sqlx::query("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(|r| grant_from_row(r, now))
            .transpose()
    }

    pub(super) async fn list_grants_impl(
        &self,
        filter: &GrantFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Grant>> {
        let mut sql = String::from("SELECT * FROM grants WHERE 1 = 1");
        if filter.sponsor_id.is_some() {
            sql.push_str(
                " AND agent_did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ?)",
            );
        }
        if filter.agent_did.is_some() {
            sql.push_str(" AND agent_did = ?");
        }
        if filter.active_only {
            sql.push_str(" AND revoked_at IS NULL AND not_before <= ? AND not_after > ?");
        }
        sql.push_str(" ORDER BY not_after DESC LIMIT 5000");
        let mut q = sqlx::query(&sql);
        if let Some(s) = &filter.sponsor_id {
            q = q.bind(s);
        }
        if let Some(a) = &filter.agent_did {
            q = q.bind(a);
        }
        if filter.active_only {
            q = q.bind(ms(now)).bind(ms(now));
        }
        q.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| grant_from_row(r, now))
            .collect()
    }

    pub(super) async fn revoke_grant_impl(
        &self,
        id: &str,
        actor: Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let grant = grant_from_row(&row, now)?;
        if !grant.active {
            return Err(StoreError::conflict(
                if grant.revoked_at.is_some() {
                    "already_revoked"
                } else {
                    "grant_ended"
                },
                "this grant is no longer active",
            ));
        }
        let by = format!("{}:{}", actor.kind, actor.id);
        let (grants, tokens) = revoke_grants(&mut tx, &[id.to_owned()], &by, reason, now).await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                actor,
                grant.agent_did.clone(),
                AuditAction::GrantRevoked(action::GrantRevoked {
                    grant_id: id.to_owned(),
                    reason: reason.to_owned(),
                    grants_revoked: grants.clone(),
                    tokens_revoked: tokens,
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
            tokens_revoked: tokens,
        })
    }

    pub(super) async fn suspend_impl(
        &self,
        target: SuspendTarget,
        reason: &str,
        security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        let mut tx = self.writer.begin().await?;
        let dids = targets(&mut tx, &target).await?;
        let out = take_down(&mut tx, &dids, "suspended", reason, security, &actor, now).await?;
        self.finish(tx).await?;
        Ok(out)
    }

    pub(super) async fn suspension_targets_impl(
        &self,
        target: &SuspendTarget,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.reader.begin().await?;
        let all = targets(&mut tx, target).await?;
        let mut active = Vec::new();
        for did in all {
            let status: Option<(String,)> =
                sqlx::query_as("SELECT status FROM agents WHERE did = ?")
                    .bind(&did)
                    .fetch_optional(&mut *tx)
                    .await?;
            if matches!(status, Some((ref s,)) if s == "active") {
                active.push(did);
            }
        }
        Ok(active)
    }

    pub(super) async fn revoke_agent_impl(
        &self,
        did: &str,
        reason: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        let mut tx = self.writer.begin().await?;
        let dids = targets(&mut tx, &SuspendTarget::Agent(did.to_owned())).await?;
        let out = take_down(&mut tx, &dids, "revoked", reason, false, &actor, now).await?;
        self.finish(tx).await?;
        Ok(out)
    }

    pub(super) async fn reactivate_impl(
        &self,
        did: &str,
        reason: &str,
        may_lift_security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT status, suspension_security FROM agents WHERE did = ?")
                .bind(did)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, security)) = row else {
            return Err(StoreError::NotFound);
        };
        match status.as_str() {
            "suspended" => {}
            "revoked" => {
                return Err(StoreError::conflict(
                    "agent_revoked",
                    "a revoked agent stays revoked; register a new identity",
                ));
            }
            _ => {
                return Err(StoreError::conflict(
                    "not_suspended",
                    "the agent is not suspended",
                ));
            }
        }
        if security != 0 && !may_lift_security {
            return Err(StoreError::Forbidden {
                code: "security_suspension",
                message:
                    "this suspension was for a security reason; only a security lead may lift it"
                        .into(),
            });
        }
        sqlx::query(
            "UPDATE agents SET status = 'active', status_reason = ?, suspension_security = 0,
             status_changed_at = ?, status_changed_by = ?, updated_at = ? WHERE did = ?",
        )
        .bind(reason)
        .bind(ms(now))
        .bind(format!("{}:{}", actor.kind, actor.id))
        .bind(ms(now))
        .bind(did)
        .execute(&mut *tx)
        .await?;
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
        Ok(())
    }

    pub(super) async fn trust_history_impl(
        &self,
        did: &str,
        limit: u32,
    ) -> StoreResult<Vec<TrustPoint>> {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "SELECT at, score_after, delta, reason FROM (
                 SELECT id, at, score_after, delta, reason FROM trust_events WHERE agent_did = ?
                 ORDER BY id DESC LIMIT ?) ORDER BY id",
        )
        .bind(did)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, score, delta, reason)| TrustPoint {
                at: from_ms(at),
                score,
                delta,
                reason,
            })
            .collect())
    }
}
