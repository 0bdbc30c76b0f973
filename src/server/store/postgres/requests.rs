//! Requests and decisions in PostgreSQL. Each change and its audit event(s) commit in one write
//! transaction; the rules come from `domain::decision`, `domain::delegation` and
//! `domain::limits`.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::agents::{register_child, retire_proposed_child};
use super::approval::create_grants;
use super::audit::append;
use super::rows::{REQUEST_PAGE_SELECT, request_in, requests_from_json, status_of};
use super::trust::move_trust;
use super::{PgStore, Tx, from_ms, json_list, json_text, ms, remember, replay};
use crate::domain::decision::{self, Decider, Outcome, Verdict};
use crate::domain::delegation;
use crate::domain::{limits, suspension};
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::requests::{Request, RequestStatus};
use crate::server::store::{
    ChildSpec, DecisionInput, Idempotency, NewAuditEvent, NewRequest, RequestFilter, RequestStore,
    StoreError, StoreResult, Submitted,
};

/// The `WHERE` of a request filter (its sponsor, agent and status; not its page), shared by
/// listing and counting so the count is of exactly what the list pages through.
fn push_selection<'a>(q: &mut QueryBuilder<'a, Postgres>, filter: &'a RequestFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(sponsor) = &filter.sponsor_id {
        q.push(" AND r.agent_did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ")
            .push_bind(sponsor)
            .push(")");
    }
    if let Some(agent) = &filter.agent_did {
        q.push(" AND r.agent_did = ").push_bind(agent);
    }
    if let Some(status) = filter.status {
        q.push(" AND r.status = ").push_bind(status.as_str());
    }
}

/// How many requests a filter selects.
fn push_count<'a>(q: &mut QueryBuilder<'a, Postgres>, filter: &'a RequestFilter) {
    q.push("SELECT COUNT(*) FROM requests r");
    push_selection(q, filter);
}

/// A page of the requests a filter selects, as one JSON array of `rows::request_json!` arrays
/// in no set order (see `page_order`). Pending requests come soonest-to-expire first (what
/// needs a decision first, and what a capped page must not leave out); everything else newest
/// first.
fn push_page<'a>(q: &mut QueryBuilder<'a, Postgres>, filter: &'a RequestFilter) {
    q.push(format!(
        "SELECT COALESCE(json_agg(page.row), '[]'::json)::text FROM ({REQUEST_PAGE_SELECT}"
    ));
    push_selection(q, filter);
    if let Some((at, id)) = &filter.after {
        q.push(" AND (r.expires_at, r.id) > (")
            .push_bind(ms(*at))
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    if is_pending(filter) {
        q.push(" ORDER BY r.expires_at, r.id");
    } else {
        q.push(" ORDER BY r.created_at DESC, r.id");
    }
    q.push(" LIMIT ")
        .push_bind(i64::from(filter.limit))
        .push(") AS page");
}

fn is_pending(filter: &RequestFilter) -> bool {
    filter.status == Some(RequestStatus::Pending)
}

/// Puts a page back in the order `push_page` selected it in (`json_agg` keeps no set order).
/// Ids compare byte by byte, as the schema's `COLLATE "C"` does.
fn page_order(filter: &RequestFilter, page: &mut [Request]) {
    if is_pending(filter) {
        page.sort_by(|x, y| (x.expires_at, &x.id).cmp(&(y.expires_at, &y.id)));
    } else {
        page.sort_by(|x, y| (y.created_at, &x.id).cmp(&(x.created_at, &y.id)));
    }
}

/// Ends a pending request at `at`: its final status, why (a denial's or cancellation's
/// reason), and the grant an approval made. A child the request proposed is retired unless it
/// was approved.
pub(super) async fn end_request(
    tx: &mut Tx<'_>,
    id: &str,
    status: RequestStatus,
    reason: Option<&str>,
    grant_id: Option<&str>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE requests SET status = $1, reason = $2::json, grant_id = $3, decided_at = $4
         WHERE id = $5 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(reason.map(json_text).transpose()?)
    .bind(grant_id)
    .bind(ms(at))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if delegation::retires_proposed_child(status) {
        let why = format!("delegation_{}", status.as_str());
        retire_proposed_child(tx, id, &why, now).await?;
    }
    Ok(())
}

/// Ends a pending request as expired (a deny) at the moment it expired, whenever the sweep
/// or a late decision notices, with its trust event and audit event.
async fn expire_one(
    tx: &mut Tx<'_>,
    id: &str,
    agent_did: &str,
    expired_at: DateTime<Utc>,
    trust_delta: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let reason = Some("expired");
    end_request(
        tx,
        id,
        RequestStatus::Expired,
        reason,
        None,
        expired_at,
        now,
    )
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

#[async_trait]
impl RequestStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn submit_request(
        &self,
        new: NewRequest,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Submitted> {
        let mut tx = self.write().await?;
        if let Some(idem) = &idempotency
            && let Some(stored) = replay(&mut tx, idem).await?
        {
            return Ok(Submitted::Replayed(stored));
        }
        let (status,): (String,) = sqlx::query_as("SELECT status FROM agents WHERE did = $1")
            .bind(&new.agent_did)
            .fetch_one(&mut *tx)
            .await?;
        suspension::may_ask(status_of(&status)?)?;
        let child_did = match &new.child {
            None => None,
            Some(ChildSpec::Existing(did)) => Some(did.clone()),
            Some(ChildSpec::New(child)) => {
                register_child(&mut tx, &new.agent_did, child, now).await?;
                Some(child.did.clone())
            }
        };
        // Approval fatigue: counted inside the write transaction, so concurrent submissions
        // see each other.
        let (recent,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM requests WHERE agent_did = $1 AND created_at > $2",
        )
        .bind(&new.agent_did)
        .bind(ms(now - Duration::seconds(new.fatigue_window_seconds)))
        .fetch_one(&mut *tx)
        .await?;
        let fatigued = limits::fatigued(recent, new.fatigue_limit);
        let requirement = serde_json::to_string(&new.requirement)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO requests (id, kind, agent_did, child_did, capabilities, duration_seconds, justification,
                                   ticket, context, on_behalf_of, status, reason, requirement, trust_score,
                                   created_at, expires_at, decided_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8, $9::json, $10, $11, $12::json, $13, $14, $15, $16, $17)",
        )
        .bind(&new.id)
        .bind(new.kind.as_str())
        .bind(&new.agent_did)
        .bind(&child_did)
        .bind(json_list(&new.capabilities)?)
        .bind(new.duration_seconds)
        .bind(json_text(&new.justification)?)
        .bind(&new.ticket)
        .bind(new.context.as_deref().map(json_text).transpose()?)
        .bind(&new.on_behalf_of)
        .bind(if fatigued { "denied" } else { "pending" })
        .bind(fatigued.then_some("approval_fatigue").map(json_text).transpose()?)
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
            // Denied at once: a child it proposed is retired with it.
            retire_proposed_child(&mut tx, &new.id, "delegation_denied", now).await?;
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

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn request(&self, id: &str) -> StoreResult<Option<Request>> {
        let mut tx = self.pool.begin().await?;
        request_in(&mut tx, id).await
    }

    #[tracing::instrument(skip_all)]
    async fn count_requests(&self, filter: &RequestFilter) -> StoreResult<u64> {
        let mut q = QueryBuilder::new("");
        push_count(&mut q, filter);
        let (count,): (i64,) = q.build_query_as().fetch_one(&self.pool).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    #[tracing::instrument(skip_all)]
    async fn list_requests(&self, filter: &RequestFilter) -> StoreResult<Vec<Request>> {
        let mut q = QueryBuilder::new("");
        push_page(&mut q, filter);
        let (page,): (String,) = q.build_query_as().fetch_one(&self.pool).await?;
        let mut page = requests_from_json(&page)?;
        page_order(filter, &mut page);
        Ok(page)
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn decide_request(
        &self,
        id: &str,
        input: DecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Request> {
        let mut tx = self.write().await?;
        let request = request_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let decider = Decider {
            id: &input.approver_id,
            username: &input.approver_username,
            roles: &input.approver_roles,
            sponsors_agent: sponsors(&mut tx, &input.approver_id, &request.agent_did).await?,
        };
        let (status,): (String,) = sqlx::query_as("SELECT status FROM agents WHERE did = $1")
            .bind(&request.agent_did)
            .fetch_one(&mut *tx)
            .await?;
        let agent_status = status_of(&status)?;
        let verdict = decision::decide(&request, agent_status, &decider, &input.choice, now)?;
        let (recorded, outcome) = match verdict {
            Verdict::Expire => {
                // Past its TTL: it expires now, whether or not the sweeper got there first.
                let agent = &request.agent_did;
                let (at, delta) = (request.expires_at, input.trust.expired);
                expire_one(&mut tx, id, agent, at, delta, now).await?;
                self.finish(tx).await?;
                return Err(decision::expired().into());
            }
            Verdict::Decided { recorded, outcome } => (recorded, outcome),
        };
        sqlx::query(
            "INSERT INTO request_decisions (request_id, approver_id, decision, duration_seconds, capabilities, justification, at)
             VALUES ($1, $2, $3, $4, $5, $6::json, $7)",
        )
        .bind(id)
        .bind(&input.approver_id)
        .bind(recorded.decision.as_str())
        .bind(recorded.duration_seconds)
        .bind(recorded.capabilities.as_deref().map(json_list).transpose()?)
        .bind(json_text(&input.choice.justification)?)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        let actor = Actor::sponsor(input.approver_id.clone());
        let justification = input.choice.justification.clone();
        let event = match outcome {
            Outcome::Denied => {
                end_request(
                    &mut tx,
                    id,
                    RequestStatus::Denied,
                    Some("denied"),
                    None,
                    now,
                    now,
                )
                .await?;
                let score = move_trust(
                    &mut tx,
                    &request.agent_did,
                    input.trust.denied,
                    "request_denied",
                    now,
                )
                .await?;
                AuditAction::RequestDenied(action::Denied {
                    request_id: id.to_owned(),
                    trust_score: score,
                    by: action::DeniedBy::Sponsor { justification },
                })
            }
            Outcome::Awaiting {
                approvals,
                required,
            } => AuditAction::RequestApprovalRecorded(action::ApprovalRecorded {
                request_id: id.to_owned(),
                approvals: approvals as u64,
                approvals_required: required,
                duration_seconds: recorded.duration_seconds.unwrap_or(0),
                capabilities: recorded.capabilities.clone().unwrap_or_default(),
                justification,
            }),
            Outcome::Approved {
                capabilities,
                duration_seconds,
            } => {
                let grants = create_grants(
                    &mut tx,
                    &request,
                    &capabilities,
                    duration_seconds,
                    input.max_delegation_depth,
                    now,
                )
                .await?;
                let first = grants.first().map(|g| g.id.as_str());
                end_request(&mut tx, id, RequestStatus::Approved, None, first, now, now).await?;
                let score = move_trust(
                    &mut tx,
                    &request.agent_did,
                    input.trust.approved,
                    "request_approved",
                    now,
                )
                .await?;
                AuditAction::RequestApproved(action::Approved {
                    request_id: id.to_owned(),
                    kind: request.kind,
                    grantee: request
                        .child_did
                        .clone()
                        .unwrap_or_else(|| request.agent_did.clone()),
                    grants,
                    duration_seconds,
                    justification,
                    approvers: request
                        .approvals
                        .iter()
                        .map(|a| a.approver_id.clone())
                        .chain(std::iter::once(input.approver_id.clone()))
                        .collect(),
                    trust_score: score,
                })
            }
        };
        append(
            &mut tx,
            NewAuditEvent::new(actor, request.agent_did.clone(), event),
            now,
        )
        .await?;
        let updated = request_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("request vanished".into()))?;
        self.finish(tx).await?;
        Ok(updated)
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn cancel_request(
        &self,
        id: &str,
        agent_did: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Request> {
        let mut tx = self.write().await?;
        let request = request_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        decision::may_cancel(&request, agent_did)?;
        end_request(
            &mut tx,
            id,
            RequestStatus::Cancelled,
            Some(reason),
            None,
            now,
            now,
        )
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

    #[tracing::instrument(skip_all)]
    async fn expire_requests(
        &self,
        now: DateTime<Utc>,
        trust_delta: i64,
    ) -> StoreResult<Vec<String>> {
        let due: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, agent_did, expires_at FROM requests WHERE status = 'pending' AND expires_at <= $1
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
        for (id, agent, expires_at) in due {
            // Re-read inside the transaction: a decision may have landed meanwhile.
            let still: Option<(i64,)> = sqlx::query_as(
                "SELECT 1::BIGINT FROM requests WHERE id = $1 AND status = 'pending' AND expires_at <= $2",
            )
            .bind(&id)
            .bind(ms(now))
            .fetch_optional(&mut *tx)
            .await?;
            if still.is_some() {
                expire_one(&mut tx, &id, &agent, from_ms(expires_at), trust_delta, now).await?;
                done.push(id);
            }
        }
        self.finish(tx).await?;
        Ok(done)
    }
}

/// Whether `sponsor_id` sponsors `did`.
async fn sponsors(tx: &mut Tx<'_>, sponsor_id: &str, did: &str) -> StoreResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1::BIGINT FROM agent_sponsors WHERE sponsor_id = $1 AND agent_did = $2",
    )
    .bind(sponsor_id)
    .bind(did)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}
