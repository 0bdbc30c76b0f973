//! The OAuth endpoints: thin handlers over `server::oauth`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::guessing;
use crate::protocol::oauth::SubjectKind;
use crate::server::dpop;
use crate::server::error::{ApiError, OAuthFailure};
use crate::server::extract::{OAuthForm, Principal, has_scope, insufficient_scope};
use crate::server::oauth;
use crate::server::state::AppState;

fn no_store<T: serde::Serialize>(body: T) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[tracing::instrument(skip_all)]
pub async fn device_authorization(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: OAuthForm,
) -> Result<Response, OAuthFailure> {
    // Each start makes a user code someone may be tricked into entering; a network may start
    // only so many per window.
    let key = guessing::device_key(peer.ip());
    let now = state.clock.now();
    let limiter = &state.device_authorizations;
    if limiter.is_blocked(state.store.as_ref(), &key, now).await? {
        let mut refused = OAuthFailure::new(
            "slow_down",
            "too many sign-ins started from this network; wait a few minutes",
        );
        refused.status = StatusCode::TOO_MANY_REQUESTS;
        return Err(refused);
    }
    let started = oauth::device_authorization(&state, &form).await?;
    limiter
        .record_failure(state.store.as_ref(), &key, now)
        .await?;
    Ok(no_store(started))
}

/// A `DPoP` header (RFC 9449 §5) asks for a token bound to the proof's key.
#[tracing::instrument(skip_all)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthFailure> {
    let proof = dpop::proof_header(&headers).map_err(oauth::invalid_dpop_proof)?;
    Ok(no_store(oauth::token(&state, &form, proof).await?))
}

/// RFC 7662 §2.1: the caller authenticates as a registered resource server (HTTP Basic with
/// its secret, or a client assertion signed with its key), or with its own bearer token. A
/// caller that cannot is answered in OAuth's error shape (RFC 6749 §5.2), as OAuth libraries
/// expect from an authorization server's endpoint, not `/v1`'s.
#[tracing::instrument(skip_all)]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Result<Principal, ApiError>,
    form: OAuthForm,
) -> Result<Response, OAuthFailure> {
    let token = form.require("token")?;
    let only = match oauth::authenticate_resource_client(&state, &headers, &form).await? {
        Some(_client) => None,
        None => {
            let caller = caller.map_err(OAuthFailure::from_caller)?;
            (caller.claims.kind == SubjectKind::Agent).then_some(caller.claims.sub)
        }
    };
    Ok(no_store(
        oauth::introspect(&state, only.as_deref(), token).await?,
    ))
}

#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    form: OAuthForm,
) -> Result<Response, OAuthFailure> {
    oauth::revoke(&state, &form).await?;
    Ok(no_store(json!({})))
}

/// OIDC UserInfo for sponsor tokens. Errors are OAuth's, with RFC 6750 §3's challenge (OIDC
/// Core §5.3.3).
#[tracing::instrument(skip_all)]
pub async fn userinfo(
    State(state): State<AppState>,
    caller: Result<Principal, ApiError>,
) -> Result<Response, OAuthFailure> {
    let caller = caller.map_err(OAuthFailure::bearer)?;
    if caller.claims.kind != SubjectKind::Sponsor || !has_scope(&caller.claims.scope, "openid") {
        let mut refusal = insufficient_scope("openid");
        refusal.message = "userinfo needs a sponsor's token with the openid scope".into();
        return Err(OAuthFailure::bearer(refusal));
    }
    let sponsor = state
        .store
        .sponsor_by_id(caller.sub())
        .await?
        .ok_or_else(|| OAuthFailure::bearer(ApiError::unauthorized()))?;
    Ok(no_store(json!({
        "sub": sponsor.id,
        "preferred_username": sponsor.username,
        "name": sponsor.display_name,
        "roles": sponsor.roles,
    })))
}
