//! The router: every route of the governance server, one module per area.

mod agents;
mod audit;
mod device_page;
mod discovery;
mod me;
mod oauth;

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
        .route("/v1/agents/{did}", get(agents::read))
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
