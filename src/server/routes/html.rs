//! What the server's two browser pages share (the device flow's verification page and the
//! authorization endpoint): the page frame and its security headers, the CSRF check (a form
//! field that must match a `SameSite=Strict` cookie), and password sign-in with its rate
//! limits. Every value written into a page is HTML-escaped by the caller.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use html_escape::encode_text as text;
use subtle::ConstantTimeEq;

use crate::domain::guessing;
use crate::server::passwords::verify_password;
use crate::server::state::AppState;
use crate::server::store::{SponsorRecord, StoreError};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// A page of the sign-in UI: escaped title, trusted body, no caching, no framing.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Governance sign-in</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}\
         label{{display:block;margin-top:1rem}}input{{font-size:1.1rem;width:100%;padding:.4rem}}\
         .code{{font-family:monospace;font-size:1.4rem;letter-spacing:.15em}}\
         .error{{color:#a00;font-weight:bold}}button{{font-size:1.1rem;margin:1rem .5rem 0 0;padding:.4rem 1rem}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>",
        title = text(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Lets the page's form end up at `origin` too: browsers apply `form-action` to the redirect
/// that answers a form, and the authorization endpoint answers with the client's redirect URI.
pub fn allow_form_target(response: &mut Response, origin: &str) {
    let policy = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Sets the CSRF cookie `name` for `path`: HTTP only, same site only.
pub fn set_csrf_cookie(response: &mut Response, name: &str, path: &str, value: &str) {
    let cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

/// The CSRF cookie `name`, when the browser sent a plausible one.
pub fn csrf_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// Whether the form's `csrf` field equals the cookie `name` (constant time).
pub fn csrf_matches(headers: &HeaderMap, form: &HashMap<String, String>, name: &str) -> bool {
    match (csrf_cookie(headers, name), form.get("csrf")) {
        (Some(cookie), Some(field)) => bool::from(cookie.as_bytes().ct_eq(field.as_bytes())),
        _ => false,
    }
}

/// The username (trimmed) and password a sign-in form carries; empty when missing.
pub fn credentials(form: &HashMap<String, String>) -> (&str, String) {
    let username = form
        .get("username")
        .map(String::as_str)
        .unwrap_or("")
        .trim();
    (username, form.get("password").cloned().unwrap_or_default())
}

pub fn too_many() -> Response {
    page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "<p class=\"error\">Too many failed attempts. Wait a few minutes and try again.</p>",
    )
}

pub fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "sign-in page failure");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "<p class=\"error\">The server failed; nothing was changed. Try again.</p>",
    )
}

/// Whether wrong passwords have blocked this account here, this account anywhere, or this
/// network (the limiters share the store's table, so every instance counts them).
pub async fn password_blocked(
    state: &AppState,
    keys: &guessing::Keys,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let store = state.store.as_ref();
    Ok(state
        .password_failures
        .is_blocked(store, &keys.account_here, now)
        .await?
        || state
            .account_failures
            .is_blocked(store, &keys.account, now)
            .await?
        || state
            .address_failures
            .is_blocked(store, &keys.network, now)
            .await?)
}

/// Checks a username and password: the active sponsor, or `None` after counting one failure
/// under each password key. Unknown accounts cost the same argon2 time as known ones.
pub async fn password_sign_in(
    state: &AppState,
    keys: &guessing::Keys,
    ip: IpAddr,
    username: &str,
    password: String,
    now: DateTime<Utc>,
) -> Result<Option<SponsorRecord>, StoreError> {
    let sponsor = state
        .store
        .sponsor_by_username(username)
        .await?
        .filter(|s| s.active);
    let ok = verify_password(sponsor.as_ref().map(|s| s.password_hash.clone()), password).await;
    if let Some(sponsor) = sponsor.filter(|_| ok) {
        return Ok(Some(sponsor));
    }
    for key in [&keys.account_here, &keys.account, &keys.network] {
        state
            .password_failures
            .record_failure(state.store.as_ref(), key, now)
            .await?;
    }
    tracing::info!(%ip, "sign-in page: wrong username or password");
    Ok(None)
}
