//! `/v1/grants`: time-bound grants, listed and revoked early.

use axum::Json;
use axum::extract::{Path, State};

use crate::domain::{Invalid, did, text};
use crate::protocol::audit::Actor;
use crate::protocol::error::ErrorBody;
use crate::protocol::query::GrantQuery;
use crate::protocol::requests::{Grant, GrantList, ReasonBody, Suspension};
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, ApiQuery, Principal};
use crate::server::state::AppState;
use crate::server::store::GrantFilter;

/// `GET /v1/grants`.
#[utoipa::path(get, path = "/v1/grants", tag = "grants", params(GrantQuery),
    responses((status = 200, body = GrantList), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<GrantQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let mut filter = GrantFilter {
        sponsor_id: None,
        agent_did: query.agent.as_deref().map(did::parse).transpose()?,
        active_only: query.active.unwrap_or(true),
    };
    if caller.is_sponsor() {
        filter.sponsor_id = caller.list_scope(query.scope, "grant")?;
    } else {
        filter.agent_did = Some(caller.sub().to_owned());
    }
    let grants = state.store.list_grants(&filter, state.clock.now()).await?;
    Ok(Json(GrantList { grants }))
}

fn check_id(raw: &str) -> Result<(), ApiError> {
    let ok = raw.len() <= 64
        && raw.starts_with("grt_")
        && raw[4..].bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_grant_id",
            "grant ids look like grt_ followed by 32 hex characters",
        )
        .into())
    }
}

async fn visible(state: &AppState, caller: &Principal, raw: &str) -> Result<Grant, ApiError> {
    check_id(raw)?;
    let grant = state
        .store
        .grant(raw, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("grant"))?;
    let ok = if caller.is_sponsor() {
        caller.reads_all()
            || state
                .store
                .is_sponsor_of(caller.sub(), &grant.agent_did)
                .await?
    } else {
        grant.agent_did == caller.sub()
    };
    if ok {
        Ok(grant)
    } else {
        Err(ApiError::not_found("grant"))
    }
}

/// `GET /v1/grants/{id}`.
#[utoipa::path(get, path = "/v1/grants/{id}", tag = "grants", params(("id" = String, Path)),
    responses((status = 200, body = Grant), (status = 404, body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn read(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Grant>, ApiError> {
    Ok(Json(visible(&state, &caller, &id).await?))
}

/// `POST /v1/grants/{id}/revoke`: ends a grant now, with the grants delegated from it.
#[utoipa::path(post, path = "/v1/grants/{id}/revoke", tag = "grants", params(("id" = String, Path)),
    request_body = ReasonBody, responses((status = 200, body = Suspension), (status = 409, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 403, description = "the caller may not do this", body = ErrorBody), (status = 404, description = "no such item, or not visible to the caller", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Suspension>, ApiError> {
    caller.require_sponsor()?;
    if body.reason.trim().is_empty() {
        return Err(Invalid::new("reason_required", "a reason is required").into());
    }
    text::free_text("reason", &body.reason)?;
    let grant = visible(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .revoke_grant(
                &grant.id,
                Actor::sponsor(caller.sub()),
                &body.reason,
                state.clock.now(),
            )
            .await?,
    ))
}
