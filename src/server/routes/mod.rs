//! The router: every route of the governance server, one module per area.

mod agents;
mod audit;
mod device_page;
mod discovery;
mod events;
mod grants;
mod me;
mod oauth;
mod requests;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use super::extract::MAX_BODY_BYTES;
use super::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::openid_configuration),
        )
        .route("/oauth2/jwks", get(discovery::jwks))
        .route(
            "/oauth2/device_authorization",
            post(oauth::device_authorization),
        )
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/oauth2/userinfo", get(oauth::userinfo))
        .route("/device", get(device_page::show).post(device_page::sign_in))
        .route("/device/decision", post(device_page::decide))
        .route("/v1/me", get(me::me))
        .route("/v1/agents", get(agents::list).post(agents::register))
        .route("/v1/agents/suspend", post(agents::suspend_all))
        .route("/v1/agents/{did}", get(agents::read))
        .route("/v1/agents/{did}/suspend", post(agents::suspend))
        .route("/v1/agents/{did}/reactivate", post(agents::reactivate))
        .route("/v1/agents/{did}/revoke", post(agents::revoke))
        .route("/v1/agents/{did}/trust", get(agents::trust))
        .route("/v1/requests", get(requests::list))
        .route("/v1/requests/elevation", post(requests::elevation))
        .route("/v1/requests/delegation", post(requests::delegation))
        .route("/v1/requests/{id}", get(requests::read))
        .route("/v1/requests/{id}/decision", post(requests::decide))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/requests/{id}/wait", get(requests::wait))
        .route("/v1/grants", get(grants::list))
        .route("/v1/grants/{id}", get(grants::read))
        .route("/v1/grants/{id}/revoke", post(grants::revoke))
        .route("/v1/policy", get(policy))
        .route("/v1/events", get(events::events))
        .route("/v1/audit", get(audit::page))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/export", get(audit::export))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// `GET /v1/policy`: the policy in force (what the console shows beside a decision).
async fn policy(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: super::extract::Principal,
) -> Json<Value> {
    let _ = caller;
    let p = &state.policy;
    Json(json!({
        "requests": {
            "pending_ttl_seconds": p.requests.pending_ttl_seconds,
            "fatigue_limit": p.requests.fatigue_limit,
            "fatigue_window_seconds": p.requests.fatigue_window_seconds,
            "min_trust": p.requests.min_trust,
            "max_delegation_depth": p.requests.max_delegation_depth,
            "max_requested_seconds": p.requests.max_requested_seconds,
        },
        "capabilities": p.capabilities.iter().map(|r| json!({
            "pattern": r.pattern.as_str(),
            "sensitivity": r.sensitivity.as_str(),
            "max_seconds": r.max_seconds,
            "approvals_required": r.approvals_required,
            "approver_roles": r.approver_roles,
        })).collect::<Vec<_>>(),
    }))
}
