//! `/v1/agents`: sponsors register agents by public key, list and read them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;

use crate::domain::role::Role;
use crate::domain::suspension::{self, Act};
use crate::domain::{Invalid, Refusal, capability, did, text};
use crate::protocol::agents::{Agent, AgentList, RegisterAgent};
use crate::protocol::audit::Actor;
use crate::protocol::error::ErrorBody;
use crate::protocol::query::AgentQuery;
use crate::protocol::requests::{
    ReasonBody, SuspendAllBody, SuspendBody, Suspension, TrustPoint, TrustReport,
};
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, ApiQuery, Principal};
use crate::server::idempotency;
use crate::server::state::AppState;
use crate::server::store::{NewAgent, Registered, StoreError, SuspendTarget};

/// Decodes and checks an Ed25519 public key (base64url, 32 bytes, a valid curve point).
pub fn parse_public_key(encoded: &str) -> Result<[u8; 32], Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_public_key",
            "public_key must be a 32-byte Ed25519 key in base64url without padding",
        )
    };
    if encoded.len() > 64 {
        return Err(bad());
    }
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
    Ok(bytes)
}

/// An Entra object id is a GUID.
fn check_object_id(value: &str) -> Result<(), Invalid> {
    uuid::Uuid::try_parse(value).map(|_| ()).map_err(|_| {
        Invalid::new(
            "invalid_entra_object_id",
            "entra_object_id must be a GUID such as 00000000-0000-0000-0000-000000000000",
        )
    })
}

/// The `Idempotency-Key` header, if any: 1–128 visible ASCII characters.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = RegisterAgent,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses((status = 201, body = Agent), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 403, description = "the caller may not do this", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterAgent>,
) -> Result<Response, ApiError> {
    caller.require_sponsor()?;
    if !caller.has_role(Role::Sponsor) && !caller.has_role(Role::Admin) {
        return Err(ApiError::forbidden(
            "registering agents needs the sponsor role",
        ));
    }
    let key = parse_public_key(&body.public_key)?;
    text::name("name", &body.name)?;
    let capabilities = capability::parse_set(&body.capabilities)?;
    // Only what policy lets an agent hold standing; the rest comes just in time.
    state.policy.standing(&capabilities)?;
    if let Some(id) = &body.entra_object_id {
        check_object_id(id)?;
    }
    if let Some(model) = &body.model {
        text::short("model", model)?;
    }
    if let Some(runtime) = &body.runtime {
        text::short("runtime", runtime)?;
    }
    let claim = idempotency::claim(&caller, &headers, &body)?;
    let agent = NewAgent {
        did: did::from_public_key(&key),
        name: body.name,
        public_key: body.public_key,
        capabilities: capabilities.into_iter().map(String::from).collect(),
        sponsor_id: caller.sub().to_owned(),
        entra_object_id: body.entra_object_id,
        model: body.model,
        runtime: body.runtime,
        max_agents_per_sponsor: state.settings.limits.max_agents_per_sponsor,
    };
    let registered = state
        .store
        .register_agent(agent, claim, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate => ApiError::from(Refusal::conflict(
                "agent_exists",
                "an agent with this public key is already registered",
            )),
            other => other.into(),
        })?;
    match registered {
        Registered::Created(agent) => Ok((StatusCode::CREATED, Json(agent)).into_response()),
        Registered::Replayed(stored) => Ok(idempotency::replayed(stored)),
    }
}

#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, body = AgentList), (status = 403, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<AgentQuery>,
) -> Result<Json<AgentList>, ApiError> {
    caller.require_sponsor()?;
    let now = state.clock.now();
    let agents = match caller.list_scope(query.scope, "agent")? {
        Some(sponsor) => state.store.agents_of_sponsor(&sponsor, now).await?,
        None => state.store.all_agents(now).await?,
    };
    Ok(Json(AgentList { agents }))
}

/// Reads one agent. Whoever may not see it gets the same 404 as for an agent that does not
/// exist, so DIDs cannot be probed.
#[utoipa::path(get, path = "/v1/agents/{did}", tag = "agents", params(("did" = String, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn read(
    State(state): State<AppState>,
    caller: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    let did = did::parse(&raw)?;
    let visible = if caller.is_sponsor() {
        caller.reads_all() || state.store.is_sponsor_of(caller.sub(), &did).await?
    } else {
        caller.sub() == did
    };
    if !visible {
        return Err(ApiError::not_found("agent"));
    }
    let agent = state
        .store
        .agent(&did, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Json(agent))
}

fn reason(text_in: &str) -> Result<(), ApiError> {
    if text_in.trim().is_empty() {
        return Err(Invalid::new("reason_required", "a reason is required").into());
    }
    text::free_text("reason", text_in)?;
    Ok(())
}

/// The agent a kill-switch call names, when the caller may `act` on it (`domain::suspension`);
/// otherwise it answers 404, so the caller does not learn that the agent exists.
async fn kill_switch_target(
    state: &AppState,
    caller: &Principal,
    raw: &str,
    why: &str,
    act: Act,
) -> Result<String, ApiError> {
    let did = did::parse(raw)?;
    reason(why)?;
    caller.require_sponsor()?;
    let allowed = suspension::may_act(act, &caller.roles, false)
        || suspension::may_act(
            act,
            &caller.roles,
            state.store.is_sponsor_of(caller.sub(), &did).await?,
        );
    if allowed {
        Ok(did)
    } else {
        Err(ApiError::not_found("agent"))
    }
}

/// `POST /v1/agents/{did}/suspend`: the agent and its delegated descendants, at once.
#[utoipa::path(post, path = "/v1/agents/{did}/suspend", tag = "kill switch", params(("did" = String, Path)),
    request_body = SuspendBody, responses((status = 200, body = Suspension), (status = 404, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 403, description = "the caller may not do this", body = ErrorBody), (status = 409, description = "it conflicts with the item's state (already decided, suspended, revoked…) or an idempotency key's first body", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn suspend(
    State(state): State<AppState>,
    caller: Principal,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<SuspendBody>,
) -> Result<Json<Suspension>, ApiError> {
    let did = kill_switch_target(&state, &caller, &raw, &body.reason, Act::Suspend).await?;
    let done = state
        .store
        .suspend(
            SuspendTarget::Agent(did),
            &body.reason,
            body.security,
            Actor::sponsor(caller.sub()),
            state.clock.now(),
        )
        .await?;
    Ok(Json(done))
}

/// `POST /v1/agents/suspend`: every agent of a sponsor (default: the caller's own).
#[utoipa::path(post, path = "/v1/agents/suspend", tag = "kill switch", request_body = SuspendAllBody,
    responses((status = 200, body = Suspension), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn suspend_all(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<SuspendAllBody>,
) -> Result<Json<Suspension>, ApiError> {
    caller.require_sponsor()?;
    reason(&body.reason)?;
    let sponsor = body
        .sponsor_id
        .clone()
        .unwrap_or_else(|| caller.sub().to_owned());
    if sponsor != caller.sub() && !suspension::may_suspend_others(&caller.roles) {
        return Err(ApiError::forbidden(
            "suspending another sponsor's agents needs the on-call, security-lead or admin role",
        ));
    }
    let target = SuspendTarget::Sponsor(sponsor);
    if let Some(expected) = body.expected_count {
        let reach = state
            .store
            .suspension_targets(&target, state.clock.now())
            .await?;
        if reach.len() != expected as usize {
            return Err(ApiError::conflict(
                "count_mismatch",
                format!(
                    "this would suspend {} agents, not {expected}; check and try again",
                    reach.len()
                ),
            ));
        }
    }
    let done = state
        .store
        .suspend(
            target,
            &body.reason,
            body.security,
            Actor::sponsor(caller.sub()),
            state.clock.now(),
        )
        .await?;
    Ok(Json(done))
}

/// `POST /v1/agents/{did}/reactivate`: this agent only; a security suspension needs a
/// security lead.
#[utoipa::path(post, path = "/v1/agents/{did}/reactivate", tag = "kill switch", params(("did" = String, Path)),
    request_body = ReasonBody, responses((status = 200, body = Agent), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 404, description = "no such item, or not visible to the caller", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn reactivate(
    State(state): State<AppState>,
    caller: Principal,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Agent>, ApiError> {
    let did = kill_switch_target(&state, &caller, &raw, &body.reason, Act::Reactivate).await?;
    let agent = state
        .store
        .reactivate(
            &did,
            &body.reason,
            suspension::may_lift_security(&caller.roles),
            state.policy.requests.min_trust,
            Actor::sponsor(caller.sub()),
            state.clock.now(),
        )
        .await?;
    Ok(Json(agent))
}

/// `POST /v1/agents/{did}/revoke`: permanent, cascading to descendants.
#[utoipa::path(post, path = "/v1/agents/{did}/revoke", tag = "kill switch", params(("did" = String, Path)),
    request_body = ReasonBody, responses((status = 200, body = Suspension), (status = 404, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 403, description = "the caller may not do this", body = ErrorBody), (status = 409, description = "it conflicts with the item's state (already decided, suspended, revoked…) or an idempotency key's first body", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Suspension>, ApiError> {
    let did = kill_switch_target(&state, &caller, &raw, &body.reason, Act::Revoke).await?;
    let done = state
        .store
        .revoke_agent(
            &did,
            &body.reason,
            Actor::sponsor(caller.sub()),
            state.clock.now(),
        )
        .await?;
    Ok(Json(done))
}

/// `GET /v1/agents/{did}/trust`: score, tier and history (for the console's sparkline).
#[utoipa::path(get, path = "/v1/agents/{did}/trust", tag = "agents", params(("did" = String, Path)),
    responses((status = 200, body = TrustReport), (status = 404, body = ErrorBody), (status = 422, description = "a field or identifier is invalid", body = ErrorBody), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn trust(
    State(state): State<AppState>,
    caller: Principal,
    Path(raw): Path<String>,
) -> Result<Json<TrustReport>, ApiError> {
    let Json(agent) = read(State(state.clone()), caller, Path(raw)).await?;
    let mut history = state.store.trust_history(&agent.did, 200).await?;
    let now = state.clock.now();
    let last = history.last().map_or(agent.created_at, |p| p.at);
    if history.last().is_none_or(|p| p.score != agent.trust_score) || last < now {
        history.push(TrustPoint {
            at: now,
            score: agent.trust_score,
            delta: history.last().map_or(0, |p| agent.trust_score - p.score),
            reason: "now".into(),
        });
    }
    Ok(Json(TrustReport {
        did: agent.did,
        score: agent.trust_score,
        tier: agent.trust_tier,
        history,
    }))
}
