//! The AGT approval webhook (ADR-0030, schema 1.0): `POST` at `[agt] path`. The caller is an
//! agent with its own token or a configured integration with its credential; anything else is
//! answered 401 at once. A request that passes `domain::agt::parse` is stored and the call is
//! held, sending nothing, until a sponsor decides (`/v1/actions/{id}/decision`) or its
//! `expires_at` passes; the answer is 200 with the decision, and on approval a signed
//! assertion of who approved exactly this action. The same body again gets the same answer
//! (a fresh assertion), at once when decided.

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use crate::domain::{action, agt};
use crate::protocol::actions::{ASSERTION_TYP, Action, WebhookAnswer};
use crate::protocol::audit::Actor;
use crate::protocol::error::ErrorBody;
use crate::server::error::ApiError;
use crate::server::extract::{Principal, access_token, body_bytes};
use crate::server::state::AppState;
use crate::server::store::{Arrival, NewAction};
use crate::settings::{AgtIntegration, CREDENTIAL_PREFIX};

/// Who is asking: one of our agents, or a configured integration.
#[derive(Debug)]
pub enum AgtCaller {
    Agent(Principal),
    Integration(AgtIntegration),
}

impl FromRequestParts<AppState> for AgtCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (_, token) = access_token(parts).ok_or_else(ApiError::no_token)?;
        if token.starts_with(CREDENTIAL_PREFIX) {
            return state
                .settings
                .agt
                .integration_for(token)
                .cloned()
                .map(AgtCaller::Integration)
                .ok_or_else(ApiError::unauthorized);
        }
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.is_sponsor() {
            return Err(ApiError::forbidden(
                "the approval webhook is for agents and configured integrations, not sponsors",
            ));
        }
        Ok(AgtCaller::Agent(principal))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /v1/agt/approvals` (the path is `[agt] path`).
#[utoipa::path(post, path = "/v1/agt/approvals", tag = "actions",
    request_body(content = Object, description = "AGT's approval request, webhook schema 1.0, exactly as its VersionedWebhookApproval sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "decided (held until then), or expired: approved false with reason expired", body = WebhookAnswer),
        (status = 401, description = "missing or invalid token or integration credential", body = ErrorBody),
        (status = 403, description = "a sponsor's token, or an agent asking for another agent", body = ErrorBody),
        (status = 404, description = "the agent is not known", body = ErrorBody),
        (status = 409, description = "approval_request_id_reused (another body under a known id), agent_inactive, integration_sponsor_unknown", body = ErrorBody),
        (status = 413, description = "the body is larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "the body is not application/json", body = ErrorBody),
        (status = 422, description = "not schema 1.0's approval request: a missing, unknown or malformed field, an input_digest that does not match, an expires_at already past", body = ErrorBody),
        (status = 503, description = "the store cannot take writes now, or the server is stopping; Retry-After says when to try again", body = ErrorBody),
        (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn webhook(
    State(state): State<AppState>,
    caller: AgtCaller,
    request: Request,
) -> Result<Json<WebhookAnswer>, ApiError> {
    if !is_json(request.headers()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the approval request as application/json",
        ));
    }
    let body = body_bytes(request).await?;
    let request = agt::parse(&body, state.clock.now())?;
    let new = match caller {
        AgtCaller::Agent(agent) => {
            if request.agent_id != "*" && request.agent_id != agent.sub() {
                return Err(ApiError::forbidden(
                    "an agent asks approval for its own actions: agent_id must be its DID or *",
                ));
            }
            NewAction {
                agent_did: Some(agent.sub().to_owned()),
                integration: None,
                integration_sponsor: None,
                actor: Actor::agent(agent.sub()),
                request,
            }
        }
        AgtCaller::Integration(integration) => {
            let known = request.agent_id.starts_with("did:")
                && state
                    .store
                    .agent(&request.agent_id, state.clock.now())
                    .await?
                    .is_some();
            NewAction {
                agent_did: known.then(|| request.agent_id.clone()),
                integration: Some(integration.name.clone()),
                integration_sponsor: Some(integration.sponsor.clone()),
                actor: Actor::system(),
                request,
            }
        }
    };
    let id = new.request.approval_request_id.clone();
    // The head before the registration, the action after it: see `server::held`.
    let head = state.store.audit_head().await?;
    let mut hold = state.held.hold(&id, head);
    let mut action = match state.store.receive_action(new, state.clock.now()).await? {
        Arrival::Created(a) | Arrival::Redelivered(a) => a,
    };
    let mut stopping = state.stopping.subscribe();
    loop {
        if let Some(answer) = answer(&state, &action)? {
            return Ok(Json(answer));
        }
        let left = (action.expires_at - state.clock.now())
            .to_std()
            .unwrap_or_default()
            .max(std::time::Duration::from_millis(10));
        enum Woken {
            Changed,
            TimeUp,
            Stopping,
        }
        let woken = tokio::select! {
            () = hold.changed() => Woken::Changed,
            () = tokio::time::sleep(left) => Woken::TimeUp,
            _ = stopping.wait_for(|stop| *stop) => Woken::Stopping,
        };
        action = match woken {
            Woken::Changed => state
                .store
                .action(&id)
                .await?
                .ok_or_else(|| ApiError::not_found("action"))?,
            Woken::TimeUp => state.store.expire_action(&id, state.clock.now()).await?,
            // The request stays pending: a redelivery to another instance, or to this one once
            // it is back, still gets the decision.
            Woken::Stopping => {
                return Err(ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "stopping",
                        "the server is stopping; deliver the request again",
                    )
                });
            }
        };
    }
}

/// The answer to a decided or expired action, with a fresh assertion for an approval.
fn answer(state: &AppState, action: &Action) -> Result<Option<WebhookAnswer>, ApiError> {
    let Some(mut answer) = action::answer(action) else {
        return Ok(None);
    };
    let jti = hex::encode(rand::random::<[u8; 16]>());
    if let Some(claims) = action::assertion(action, &state.issuer, state.clock.now(), jti) {
        let (_, jws) = state.keys.sign_typed(ASSERTION_TYP, &claims).map_err(|e| {
            tracing::error!(error = %e, "signing an approver assertion failed");
            ApiError::internal()
        })?;
        answer.identity_assertion = Some(jws);
    }
    Ok(Some(answer))
}
