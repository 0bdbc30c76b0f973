//! The router: every route of the governance server, one module per area.

mod actions;
mod agents;
mod agt;
mod audit;
mod authorize;
mod device_page;
mod discovery;
mod entra;
mod events;
mod grants;
mod html;
mod me;
mod oauth;
mod record;
mod requests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, OAuthFailure};
use super::extract::{MAX_BODY_BYTES, Principal};
use super::state::AppState;
use crate::protocol::error::ErrorBody;
use crate::protocol::requests::{PolicyRuleView, PolicyView};

/// The OpenAPI document's frame; paths are added by the routes themselves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Governance server",
        description = "Agent identities, just-in-time elevation and delegation, grants, the kill switch, trust and the audit chain."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "identity"), (name = "agents"), (name = "requests"), (name = "grants"),
        (name = "kill switch"), (name = "audit"), (name = "events"), (name = "policy"),
        (name = "entra"), (name = "actions")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /oauth2/token. An agent's DPoP-bound token \
                         (token_type DPoP, cnf.jkt) goes as `Authorization: DPoP <token>` \
                         instead, with a fresh proof in a `DPoP` header on every request \
                         (RFC 9449: typ dpop+jwt, EdDSA, htm, htu, iat, jti, ath); sent as \
                         Bearer it is refused. OpenAPI has no DPoP scheme to name.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every `/v1` route, registered together with its OpenAPI description so the document cannot
/// miss one.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me::me))
        .routes(routes!(agents::list, agents::register))
        .routes(routes!(agents::suspend_all))
        .routes(routes!(agents::read))
        .routes(routes!(agents::suspend))
        .routes(routes!(agents::reactivate))
        .routes(routes!(agents::revoke))
        .routes(routes!(agents::trust))
        .routes(routes!(requests::list))
        .routes(routes!(requests::submit::elevation))
        .routes(routes!(requests::submit::delegation))
        .routes(routes!(requests::read))
        .routes(routes!(requests::decide))
        .routes(routes!(requests::cancel))
        .routes(routes!(requests::wait))
        .routes(routes!(grants::list))
        .routes(routes!(grants::read))
        .routes(routes!(grants::revoke))
        .routes(routes!(audit::page))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::export))
        .routes(routes!(record::last, record::check))
        .routes(routes!(events::events))
        .routes(routes!(policy))
        .routes(routes!(entra::record))
        .routes(routes!(actions::list))
        .routes(routes!(actions::read))
        .routes(routes!(actions::decide))
        .split_for_parts()
}

/// The AGT webhook's route and its description, at the configured path (`[agt] path`).
fn agt_webhook(
    router: Router<AppState>,
    doc: &mut utoipa::openapi::OpenApi,
    path: &str,
) -> Router<AppState> {
    #[derive(OpenApi)]
    #[openapi(paths(agt::webhook))]
    struct WebhookDoc;
    for (_, item) in WebhookDoc::openapi().paths.paths {
        doc.paths.paths.insert(path.to_owned(), item);
    }
    router.route(path, post(agt::webhook))
}

/// A pending list's page cursor, `<expires_at ms>.<id>`, whose id `check_id` accepts.
fn parse_cursor(
    raw: &str,
    check_id: fn(&str) -> Result<(), ApiError>,
) -> Result<(chrono::DateTime<chrono::Utc>, String), ApiError> {
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

/// The OpenAPI document of the `/v1` API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (router, mut doc) = api();
    let _ = agt_webhook(
        router,
        &mut doc,
        crate::settings::AgtSettings::default().path.as_str(),
    );
    doc
}

pub fn router(state: AppState) -> Router {
    let (v1, mut doc) = api();
    let v1 = agt_webhook(v1, &mut doc, &state.settings.agt.path);
    let doc = Arc::new(doc);
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
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
            "/oauth2/authorize",
            get(authorize::show).post(authorize::decide),
        )
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
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Answers about agents, requests, grants and tokens are for one caller, once: no cache
        // (a proxy's or a browser's) may keep them. A route that says otherwise keeps its own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::server::revocations::settle_after_writes,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(RequestSpans::default()))
        .with_state(state)
}

/// A request's id: the caller's `x-request-id`, or one the server makes up.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The span of one request: what handlers and store methods log nests under it, so every line
/// carries the request id. The query string stays out (a user code can sit there). Ids are
/// made only when the span is recorded: a random prefix per server instance and a counter,
/// unique across instances. (An id layer that also echoed the id in every answer cost 4–7% of
/// introspection throughput in `cargo bench --bench tokens`.)
#[derive(Debug, Clone)]
struct RequestSpans {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for RequestSpans {
    fn default() -> Self {
        Self {
            prefix: format!("{:08x}", rand::random::<u32>()).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl<B> tower_http::trace::MakeSpan<B> for RequestSpans {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = tracing::field::Empty,
        );
        if !span.is_disabled() {
            let given = request
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 128);
            match given {
                Some(id) => span.record("request_id", tracing::field::display(id)),
                None => {
                    let n = self.next.fetch_add(1, Ordering::Relaxed);
                    let id = format!("{}-{n:x}", self.prefix);
                    span.record("request_id", tracing::field::display(id))
                }
            };
        }
        span
    }
}

/// Liveness: the process answers.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the store takes writes (a full or failing disk answers 507 or 503).
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ready(state.clock.now()).await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Under `/oauth2` an error is OAuth's (RFC 6749 §5.2), elsewhere the API's.
fn oauth_path(uri: &axum::http::Uri) -> bool {
    uri.path().starts_with("/oauth2/")
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if oauth_path(&uri) {
        return OAuthFailure::route(StatusCode::NOT_FOUND, "no such OAuth endpoint")
            .into_response();
    }
    ApiError::not_found("route").into_response()
}

async fn method_not_allowed(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let message = "this route does not accept that method";
    if oauth_path(&uri) {
        return OAuthFailure::route(StatusCode::METHOD_NOT_ALLOWED, message).into_response();
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    )
    .into_response()
}

/// `GET /v1/policy`: the policy in force (what the console shows beside a decision).
#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    responses((status = 200, body = PolicyView),
              (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
async fn policy(State(state): State<AppState>, _caller: Principal) -> Json<PolicyView> {
    let p = &state.policy;
    Json(PolicyView {
        pending_ttl_seconds: p.requests.pending_ttl_seconds,
        fatigue_limit: p.requests.fatigue_limit,
        fatigue_window_seconds: p.requests.fatigue_window_seconds,
        min_trust: p.requests.min_trust,
        max_delegation_depth: p.requests.max_delegation_depth,
        max_requested_seconds: p.requests.max_requested_seconds,
        capabilities: p
            .capabilities
            .iter()
            .map(|r| PolicyRuleView {
                pattern: r.pattern.as_str().to_owned(),
                sensitivity: r.sensitivity,
                max_seconds: r.max_seconds,
                approvals_required: r.approvals_required,
                approver_roles: r.approver_roles.clone(),
            })
            .collect(),
    })
}
