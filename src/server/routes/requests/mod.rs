//! `/v1/requests`: agents ask for elevation or delegation (`submit`); sponsors list and decide;
//! agents cancel and wait for the answer.

pub mod submit;

use std::time::Duration as StdDuration;

use axum::Json;
use axum::extract::{Path, State};

use crate::domain::decision::{self, Choice, Decider};
use crate::domain::{Invalid, did, text};
use crate::protocol::error::ErrorBody;
use crate::protocol::query::{RequestQuery, StatusFilter, WaitQuery};
use crate::protocol::requests::{DecisionBody, ReasonBody, Request, RequestList, RequestStatus};
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, ApiQuery, Principal};
use crate::server::state::AppState;
use crate::server::store::{DecisionInput, RequestFilter};

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

/// `GET /v1/requests`: a sponsor's agents' requests (or all, for readers of everything); an
/// agent's own.
#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(RequestQuery),
    responses((status = 200, body = RequestList), (status = 400, body = ErrorBody), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
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
        Some(raw) => Some(super::parse_cursor(raw, check_id)?),
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
    // The first page of a pending list says how many there are, so a console can show the
    // true count while it loads the rest.
    let total = if filter.status == Some(RequestStatus::Pending) && filter.after.is_none() {
        Some(state.store.count_requests(&filter).await?)
    } else {
        None
    };
    let next = (filter.status == Some(RequestStatus::Pending) && requests.len() == limit as usize)
        .then(|| {
            requests
                .last()
                .map(|r| format!("{}.{}", r.expires_at.timestamp_millis(), r.id))
        })
        .flatten();
    Ok(Json(RequestList {
        requests,
        next,
        total,
    }))
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
    responses((status = 200, body = Request), (status = 404, body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
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
              (status = 409, description = "already_decided, expired or cancelled", body = ErrorBody), (status = 422, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
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
    request_body = ReasonBody, responses((status = 200, body = Request), (status = 409, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 403, description = "the caller may not do this", body = ErrorBody), (status = 404, description = "no such item, or not visible to the caller", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
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
    responses((status = 200, description = "decided, or still pending at the timeout", body = Request), (status = 404, description = "no such item, or not visible to the caller", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
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
