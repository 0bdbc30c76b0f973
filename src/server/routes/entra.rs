//! `/v1/entra`: decisions made in Microsoft Entra from the console, appended to the audit
//! chain (who sent it, what was decided, which Entra object, Graph's request-id).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::domain::{Invalid, text};
use crate::protocol::audit::{Actor, AuditAction};
use crate::protocol::entra::{EntraDecisionBody, EntraDecisionRecorded};
use crate::protocol::error::ErrorBody;
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, Principal};
use crate::server::state::AppState;
use crate::server::store::NewAuditEvent;

/// An id from Entra (GUIDs and the like): present, short, one plain line.
fn entra_id(field: &str, value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(Invalid::new(
            "invalid_entra_id",
            format!("{field} must not be empty"),
        ));
    }
    text::short(field, value)
}

fn check(body: &EntraDecisionBody) -> Result<(), Invalid> {
    entra_id("request_id", &body.request_id)?;
    entra_id("stage_id", &body.stage_id)?;
    entra_id("client_request_id", &body.client_request_id)?;
    entra_id("target_id", &body.target_id)?;
    entra_id("requester_id", &body.requester_id)?;
    for (field, value) in [
        ("graph_request_id", &body.graph_request_id),
        ("tenant_id", &body.tenant_id),
        ("requester_upn", &body.requester_upn),
    ] {
        if let Some(v) = value {
            text::short(field, v)?;
        }
    }
    if let Some(name) = &body.target_name {
        text::name("target_name", name)?;
    }
    if body.justification.trim().is_empty() {
        return Err(Invalid::new(
            "justification_required",
            "a justification is required",
        ));
    }
    text::free_text("justification", &body.justification)
}

/// `POST /v1/entra/decisions`: records a decision the caller made in Entra.
#[utoipa::path(post, path = "/v1/entra/decisions", tag = "entra", request_body = EntraDecisionBody,
    responses((status = 201, body = EntraDecisionRecorded), (status = 400, description = "the body is not valid JSON", body = ErrorBody), (status = 403, description = "the caller may not do this (agents record no Entra decisions), or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 422, description = "a field is missing, too long or holds control characters", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn record(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<EntraDecisionBody>,
) -> Result<(StatusCode, Json<EntraDecisionRecorded>), ApiError> {
    caller.require_sponsor()?;
    check(&body)?;
    let subject = format!("entra:{}:{}", body.source.as_str(), body.request_id);
    let seq = state
        .store
        .append_audit(
            NewAuditEvent::new(
                Actor::sponsor(caller.sub()),
                subject,
                AuditAction::EntraDecided(body.into()),
            ),
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(EntraDecisionRecorded { seq })))
}
