//! `/v1/requests`: agents ask for elevation or delegation; sponsors list and decide; agents
//! cancel and wait for the answer.

use std::time::Duration as StdDuration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;

use super::agents::{idempotency_key, parse_public_key, request_hash};
use crate::domain::decision::{self, Choice, Decider};
use crate::domain::delegation::{self, HeldGrant, Parent};
use crate::domain::{Invalid, Refusal, capability, did, limits, text, trust};
use crate::protocol::agents::{Agent, AgentStatus};
use crate::protocol::error::ErrorBody;
use crate::protocol::query::{RequestQuery, StatusFilter, WaitQuery};
use crate::protocol::requests::{
    DecisionBody, DelegationBody, ElevationBody, ReasonBody, Request, RequestKind, RequestList,
    RequestStatus,
};
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, ApiQuery, Principal};
use crate::server::state::AppState;
use crate::server::store::{
    ChildSpec, DecisionInput, Idempotency, NewChild, NewRequest, RequestFilter, StoreError,
    Submitted,
};

const MAX_LIST: u32 = 10_000;
const DEFAULT_LIST: u32 = 500;

fn require_agent(caller: &Principal) -> Result<(), ApiError> {
    if caller.is_sponsor() {
        Err(ApiError::forbidden(
            "requests are made by agents with their own token",
        ))
    } else {
        Ok(())
    }
}

/// The calling agent, active and loaded.
async fn calling_agent(state: &AppState, caller: &Principal) -> Result<Agent, ApiError> {
    require_agent(caller)?;
    let agent = state
        .store
        .agent(caller.sub(), state.clock.now())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if agent.status != AgentStatus::Active {
        return Err(ApiError::forbidden(format!(
            "the agent is {}",
            agent.status.as_str()
        )));
    }
    Ok(agent)
}

fn check_common(
    justification: &str,
    ticket: Option<&String>,
    context: Option<&String>,
    duration_seconds: i64,
    max_seconds: i64,
) -> Result<(), ApiError> {
    if justification.trim().is_empty() {
        return Err(
            Invalid::new("justification_required", "say why the capability is needed").into(),
        );
    }
    text::free_text("justification", justification)?;
    if let Some(t) = ticket {
        text::short("ticket", t)?;
    }
    if let Some(c) = context {
        text::free_text("context", c)?;
    }
    if duration_seconds < 60 || duration_seconds > max_seconds {
        return Err(Invalid::new(
            "invalid_duration",
            format!("duration_seconds must be between 60 and {max_seconds}"),
        )
        .into());
    }
    Ok(())
}

fn check_trust(state: &AppState, agent: &Agent) -> Result<(), ApiError> {
    let min = state.policy.requests.min_trust;
    if agent.trust_score < min {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "trust_too_low",
            format!(
                "the agent's trust score is {} ({}); policy needs at least {min} to request",
                agent.trust_score,
                trust::Tier::of(agent.trust_score)
            ),
        ));
    }
    Ok(())
}

fn idempotency(
    caller: &Principal,
    headers: &HeaderMap,
    body: &impl serde::Serialize,
) -> Result<Option<Idempotency>, ApiError> {
    Ok(match idempotency_key(headers)? {
        Some(key) => Some(Idempotency {
            principal: caller.sub().to_owned(),
            key,
            request_hash: request_hash(body)?,
        }),
        None => None,
    })
}

fn new_id() -> String {
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

async fn submit(
    state: &AppState,
    new: NewRequest,
    idem: Option<Idempotency>,
) -> Result<Response, ApiError> {
    let submitted = state
        .store
        .submit_request(new, idem, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate => ApiError::from(Refusal::conflict(
                "agent_exists",
                "an agent with this public key is already registered; pass child_did",
            )),
            other => other.into(),
        })?;
    match submitted {
        Submitted::Created(request) => Ok((StatusCode::CREATED, Json(*request)).into_response()),
        Submitted::Replayed(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let mut response = (status, stored.body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
    }
}

/// `POST /v1/requests/elevation`.
#[utoipa::path(post, path = "/v1/requests/elevation", tag = "requests", request_body = ElevationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key and body: same request")),
    responses((status = 201, body = Request), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn elevation(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ElevationBody>,
) -> Result<Response, ApiError> {
    let agent = calling_agent(&state, &caller).await?;
    let caps = capability::parse_set(&body.capabilities)?;
    let requirement = state.policy.requirement(&caps)?;
    let rules = &state.policy.requests;
    check_common(
        &body.justification,
        body.ticket.as_ref(),
        body.context.as_ref(),
        body.duration_seconds,
        rules.max_requested_seconds,
    )?;
    if let Some(who) = &body.on_behalf_of {
        text::name("on_behalf_of", who)?;
    }
    let standing = capability::parse_set(&agent.capabilities)?;
    if capability::is_subset(&caps, &standing) {
        return Err(Invalid::new(
            "already_held",
            "the agent already holds these capabilities as standing ones",
        )
        .into());
    }
    check_trust(&state, &agent)?;
    let idem = idempotency(&caller, &headers, &body)?;
    let now = state.clock.now();
    let new = NewRequest {
        id: new_id(),
        kind: RequestKind::Elevation,
        agent_did: agent.did,
        child: None,
        capabilities: caps.into_iter().map(String::from).collect(),
        duration_seconds: body.duration_seconds,
        justification: body.justification,
        ticket: body.ticket,
        context: body.context,
        on_behalf_of: body.on_behalf_of,
        requirement,
        trust_score: agent.trust_score,
        expires_at: now + Duration::seconds(rules.pending_ttl_seconds),
        fatigue_limit: rules.fatigue_limit,
        fatigue_window_seconds: rules.fatigue_window_seconds,
        fatigue_penalty: state.policy.trust.approval_fatigue,
    };
    submit(&state, new, idem).await
}

/// What `agent` holds now, for the delegation rules.
async fn parent_view(state: &AppState, agent: &Agent) -> Result<Parent, ApiError> {
    let now = state.clock.now();
    let grants = state.store.active_grants(&agent.did, now).await?;
    Ok(Parent {
        depth: agent.delegation_depth,
        trust: agent.trust_score,
        standing: capability::parse_set(&agent.capabilities)?,
        grants: grants
            .into_iter()
            .map(|g| {
                Ok(HeldGrant {
                    capabilities: capability::parse_set(&g.capabilities)?,
                    grant_id: g.id,
                    not_after: g.not_after,
                })
            })
            .collect::<Result<_, Invalid>>()?,
    })
}

/// `POST /v1/requests/delegation`: the caller is the parent.
#[utoipa::path(post, path = "/v1/requests/delegation", tag = "requests", request_body = DelegationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key and body: same request")),
    responses((status = 201, body = Request), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn delegation(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DelegationBody>,
) -> Result<Response, ApiError> {
    let parent = calling_agent(&state, &caller).await?;
    let caps = capability::parse_set(&body.capabilities)?;
    let requirement = state.policy.requirement(&caps)?;
    let rules = &state.policy.requests;
    check_common(
        &body.justification,
        body.ticket.as_ref(),
        body.context.as_ref(),
        body.duration_seconds,
        rules.max_requested_seconds,
    )?;
    check_trust(&state, &parent)?;
    let now = state.clock.now();
    let (child, child_trust) = match (&body.child_did, &body.new_child) {
        (Some(raw), None) => {
            let child_did = did::parse(raw)?;
            let child = state
                .store
                .agent(&child_did, now)
                .await?
                .ok_or_else(|| ApiError::not_found("child agent"))?;
            let shares_sponsor = child
                .sponsors
                .iter()
                .any(|s| parent.sponsors.iter().any(|p| p.id == s.id));
            if !shares_sponsor {
                return Err(ApiError::not_found("child agent"));
            }
            if child.status != AgentStatus::Active {
                return Err(ApiError::conflict(
                    "child_inactive",
                    format!("the child agent is {}", child.status.as_str()),
                ));
            }
            limits::existing_child(
                &child.did,
                child.parent_did.as_deref(),
                &parent.did,
                &ancestors(&state, &parent).await?,
            )?;
            (ChildSpec::Existing(child.did), child.trust_score)
        }
        (None, Some(new)) => {
            let key = parse_public_key(&new.public_key)?;
            text::name("new_child.name", &new.name)?;
            if let Some(m) = &new.model {
                text::short("new_child.model", m)?;
            }
            if let Some(r) = &new.runtime {
                text::short("new_child.runtime", r)?;
            }
            // A new child starts no higher than its parent (trust ceiling).
            let trust_score = trust::DEFAULT_SCORE.min(parent.trust_score);
            (
                ChildSpec::New(NewChild {
                    did: did::from_public_key(&key),
                    name: new.name.clone(),
                    public_key: new.public_key.clone(),
                    model: new.model.clone(),
                    runtime: new.runtime.clone(),
                    trust_score,
                    max_agents_per_sponsor: state.settings.limits.max_agents_per_sponsor,
                }),
                trust_score,
            )
        }
        _ => {
            return Err(Invalid::new(
                "invalid_child",
                "name exactly one of child_did (an existing agent) and new_child (a new one)",
            )
            .into());
        }
    };
    let view = parent_view(&state, &parent).await?;
    delegation::check(
        &view,
        child_trust,
        &caps,
        body.duration_seconds,
        rules.max_delegation_depth,
        now,
    )?;
    let idem = idempotency(&caller, &headers, &body)?;
    let new = NewRequest {
        id: new_id(),
        kind: RequestKind::Delegation,
        agent_did: parent.did,
        child: Some(child),
        capabilities: caps.into_iter().map(String::from).collect(),
        duration_seconds: body.duration_seconds,
        justification: body.justification,
        ticket: body.ticket,
        context: body.context,
        on_behalf_of: None,
        requirement,
        trust_score: parent.trust_score,
        expires_at: now + Duration::seconds(rules.pending_ttl_seconds),
        fatigue_limit: rules.fatigue_limit,
        fatigue_window_seconds: rules.fatigue_window_seconds,
        fatigue_penalty: state.policy.trust.approval_fatigue,
    };
    submit(&state, new, idem).await
}

/// `agent`'s chain upwards: its parent, the parent's parent, and so on.
async fn ancestors(state: &AppState, agent: &Agent) -> Result<Vec<String>, ApiError> {
    let now = state.clock.now();
    let mut out = Vec::new();
    let mut next = agent.parent_did.clone();
    // Chains are at most the depth limit long; the bound only guards against a corrupt loop.
    while let Some(did) = next.filter(|_| out.len() < 64) {
        next = state
            .store
            .agent(&did, now)
            .await?
            .and_then(|a| a.parent_did);
        out.push(did);
    }
    Ok(out)
}

/// A page cursor: `<expires_at ms>.<request id>`.
fn parse_cursor(raw: &str) -> Result<(chrono::DateTime<chrono::Utc>, String), ApiError> {
    let bad =
        || ApiError::bad_request("invalid_query", "after must be the next of a previous page");
    let (ms, id) = raw.split_once('.').ok_or_else(bad)?;
    let at = ms
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    check_id(id).map_err(|_| bad())?;
    Ok((at, id.to_owned()))
}

/// `GET /v1/requests`: a sponsor's agents' requests (or all, for readers of everything); an
/// agent's own.
#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(RequestQuery),
    responses((status = 200, body = RequestList), (status = 400, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<RequestQuery>,
) -> Result<Json<RequestList>, ApiError> {
    let status = query.status.and_then(StatusFilter::status);
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIST}"),
        ));
    }
    let agent = query.agent.as_deref().map(did::parse).transpose()?;
    let after = match query.after.as_deref() {
        None => None,
        Some(_) if status != Some(RequestStatus::Pending) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "after pages pending lists (status=pending)",
            ));
        }
        Some(raw) => Some(parse_cursor(raw)?),
    };
    let mut filter = RequestFilter {
        sponsor_id: None,
        agent_did: agent,
        status,
        limit,
        after,
    };
    if caller.is_sponsor() {
        filter.sponsor_id = caller.list_scope(query.scope, "request")?;
    } else {
        if filter
            .agent_did
            .as_deref()
            .is_some_and(|a| a != caller.sub())
        {
            return Err(ApiError::forbidden("an agent lists only its own requests"));
        }
        filter.agent_did = Some(caller.sub().to_owned());
    }
    let requests = state.store.list_requests(&filter).await?;
    let next = (filter.status == Some(RequestStatus::Pending) && requests.len() == limit as usize)
        .then(|| {
            requests
                .last()
                .map(|r| format!("{}.{}", r.expires_at.timestamp_millis(), r.id))
        })
        .flatten();
    Ok(Json(RequestList { requests, next }))
}

/// Whether the caller may see (and, for humans, possibly decide) this request.
async fn visible(
    state: &AppState,
    caller: &Principal,
    request: &Request,
) -> Result<bool, ApiError> {
    if !caller.is_sponsor() {
        return Ok(
            caller.sub() == request.agent_did || request.child_did.as_deref() == Some(caller.sub())
        );
    }
    let mut decider = Decider {
        id: caller.sub(),
        username: caller.claims.preferred_username.as_deref().unwrap_or(""),
        roles: &caller.roles,
        sponsors_agent: false,
    };
    if caller.reads_all() || decision::may_decide(&decider, request).is_ok() {
        return Ok(true);
    }
    decider.sponsors_agent = state
        .store
        .is_sponsor_of(caller.sub(), &request.agent_did)
        .await?;
    Ok(decision::may_decide(&decider, request).is_ok())
}

async fn load_visible(
    state: &AppState,
    caller: &Principal,
    raw: &str,
) -> Result<Request, ApiError> {
    check_id(raw)?;
    let request = state
        .store
        .request(raw)
        .await?
        .ok_or_else(|| ApiError::not_found("request"))?;
    if !visible(state, caller, &request).await? {
        return Err(ApiError::not_found("request"));
    }
    Ok(request)
}

fn check_id(raw: &str) -> Result<(), ApiError> {
    let ok = raw.len() <= 64
        && raw.starts_with("req_")
        && raw[4..].bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_request_id",
            "request ids look like req_ followed by 32 hex characters",
        )
        .into())
    }
}

/// `GET /v1/requests/{id}`.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests", params(("id" = String, Path)),
    responses((status = 200, body = Request), (status = 404, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn read(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Request>, ApiError> {
    Ok(Json(load_visible(&state, &caller, &id).await?))
}

/// `POST /v1/requests/{id}/decision`.
#[utoipa::path(post, path = "/v1/requests/{id}/decision", tag = "requests", params(("id" = String, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = Request), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "already_decided, expired or cancelled", body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn decide(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Request>, ApiError> {
    caller.require_sponsor()?;
    let request = load_visible(&state, &caller, &id).await?;
    text::free_text("justification", &body.justification)?;
    // Who may decide, and everything else about the decision, is `domain::decision`, applied
    // by the store inside its transaction.
    let input = DecisionInput {
        approver_id: caller.sub().to_owned(),
        approver_username: caller.claims.preferred_username.clone().unwrap_or_default(),
        approver_roles: caller.roles.clone(),
        choice: Choice {
            decision: body.decision,
            duration_seconds: body.duration_seconds,
            capabilities: body.capabilities,
            justification: body.justification,
        },
        trust: state.policy.trust.clone(),
        max_delegation_depth: state.policy.requests.max_delegation_depth,
    };
    Ok(Json(
        state
            .store
            .decide_request(&request.id, input, state.clock.now())
            .await?,
    ))
}

/// `POST /v1/requests/{id}/cancel`: the asking agent withdraws a pending request.
#[utoipa::path(post, path = "/v1/requests/{id}/cancel", tag = "requests", params(("id" = String, Path)),
    request_body = ReasonBody, responses((status = 200, body = Request), (status = 409, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Request>, ApiError> {
    require_agent(&caller)?;
    check_id(&id)?;
    if body.reason.trim().is_empty() {
        return Err(Invalid::new("reason_required", "say why the request is withdrawn").into());
    }
    text::free_text("reason", &body.reason)?;
    Ok(Json(
        state
            .store
            .cancel_request(&id, caller.sub(), &body.reason, state.clock.now())
            .await?,
    ))
}

/// `GET /v1/requests/{id}/wait`: answers as soon as the request is no longer pending, or with
/// the pending request when the timeout passes.
#[utoipa::path(get, path = "/v1/requests/{id}/wait", tag = "requests", params(("id" = String, Path), WaitQuery),
    responses((status = 200, description = "decided, or still pending at the timeout", body = Request), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn wait(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<Json<Request>, ApiError> {
    let timeout = query.timeout.unwrap_or(30);
    if timeout > 60 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "timeout must be at most 60 seconds",
        ));
    }
    let mut changes = state.store.changes();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(timeout);
    loop {
        changes.borrow_and_update();
        let request = load_visible(&state, &caller, &id).await?;
        if request.status != RequestStatus::Pending {
            return Ok(Json(request));
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(Json(request));
                }
            }
            () = tokio::time::sleep_until(deadline) => return Ok(Json(request)),
        }
    }
}
