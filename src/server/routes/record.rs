//! `/v1/audit/state`: whether the tables hold what the audit chain records.

use axum::Json;
use axum::extract::State;

use crate::protocol::audit::StateReport;
use crate::protocol::error::ErrorBody;
use crate::server::error::ApiError;
use crate::server::extract::Principal;
use crate::server::record;
use crate::server::state::AppState;

/// Every signed-in human sees whether there are differences and how many; security leads and
/// admins, who read the whole chain, also see what they are.
fn for_caller(mut report: StateReport, caller: &Principal) -> StateReport {
    if !caller.reads_all() {
        report.differences.clear();
    }
    report
}

/// The last check (the server checks at start and on a schedule).
#[utoipa::path(get, path = "/v1/audit/state", tag = "audit",
    responses((status = 200, body = StateReport), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn last(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<StateReport>, ApiError> {
    caller.require_sponsor()?;
    let report = match state.record.last() {
        Some(report) => report,
        None => record::watch(&state).await?,
    };
    Ok(Json(for_caller(report, &caller)))
}

/// Checks now: replays the whole chain and compares it with the tables. A new difference is
/// raised as an alert (`audit.state_mismatch`) as the schedule would.
#[utoipa::path(post, path = "/v1/audit/state", tag = "audit",
    responses((status = 200, body = StateReport), (status = 403, description = "the caller may not do this", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn check(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<StateReport>, ApiError> {
    caller.require_sponsor()?;
    let report = record::watch(&state).await?;
    Ok(Json(for_caller(report, &caller)))
}
