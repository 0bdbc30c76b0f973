//! The verification page of the device flow (RFC 8628 §3.3): a human enters the user code,
//! signs in with username and password, sees which client asks for what, and approves or
//! denies. Forms carry a CSRF token that must match a `SameSite=Strict` cookie; wrong user
//! codes (per address) and wrong passwords (per username and per address) are rate-limited.
//! Every value written into the page is HTML-escaped. The frame, CSRF and password checks are
//! `html`'s, shared with the authorization endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Duration;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::html::{self, internal, too_many};
use crate::domain::Refusal;
use crate::domain::{guessing, user_code};
use crate::server::oauth::client_name;
use crate::server::state::AppState;
use crate::server::store::{Consent, DeviceStatus, StoreError};
use crate::server::tokens::{new_secret, secret_hash};

const CSRF_COOKIE: &str = "device_csrf";
/// How long a signed-in human has to approve or deny.
const CONSENT_SECONDS: i64 = 300;

fn page(status: StatusCode, title: &str, body: &str, csrf_cookie: Option<&str>) -> Response {
    let mut response = html::page(status, title, body);
    if let Some(token) = csrf_cookie {
        html::set_csrf_cookie(&mut response, CSRF_COOKIE, "/device", token);
    }
    response
}

fn cookie_csrf(headers: &HeaderMap) -> Option<String> {
    html::csrf_cookie(headers, CSRF_COOKIE)
}

fn csrf_matches(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    html::csrf_matches(headers, form, CSRF_COOKIE)
}

fn sign_in_form(csrf: &str, user_code: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", text(e)))
        .unwrap_or_default();
    format!(
        "<p>Enter the code shown in your terminal, then sign in to approve it.</p>{error}\
         <form method=\"post\" action=\"/device\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Code <input class=\"code\" name=\"user_code\" value=\"{code}\" autocomplete=\"off\" \
         autocapitalize=\"characters\" maxlength=\"16\" required placeholder=\"XXXX-XXXX\"></label>\
         <label>Username <input name=\"username\" autocomplete=\"username\" maxlength=\"128\" required></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" maxlength=\"1024\" required></label>\
         <button type=\"submit\">Continue</button></form>",
        csrf = attr(csrf),
        code = attr(user_code),
    )
}

/// `GET /device[?user_code=…]`.
pub async fn show(headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    let (csrf, set) = match cookie_csrf(&headers) {
        Some(existing) => (existing, None),
        None => {
            let fresh = new_secret();
            (fresh.clone(), Some(fresh))
        }
    };
    let prefill = query
        .get("user_code")
        .and_then(|c| user_code::normalize(c))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Sign in a device",
        &sign_in_form(&csrf, &prefill, None),
        set.as_deref(),
    )
}

/// A consent id together with the browser session it was given to (the CSRF value, which
/// `csrf_matches` has already checked against that browser's cookie).
fn bound_to_session(consent_id: &str, csrf: &str) -> String {
    format!("{consent_id}.{csrf}")
}

fn forbidden_csrf() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Session expired",
        "<p class=\"error\">This form has expired or was not sent from this page. \
         <a href=\"/device\">Start again</a>.</p>",
        None,
    )
}

/// `POST /device`: checks the user code and the password, then shows the consent page.
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: axum::extract::Form<HashMap<String, String>>,
) -> Response {
    let form = form.0;
    if !csrf_matches(&headers, &form) {
        return forbidden_csrf();
    }
    let csrf = form.get("csrf").cloned().unwrap_or_default();
    let now = state.clock.now();
    let entered = form.get("user_code").map(String::as_str).unwrap_or("");
    let (username, password) = html::credentials(&form);
    // Counted per account from this network, per account everywhere (a ceiling), per network.
    let keys = guessing::keys(username, peer.ip());
    let code_key = keys.code.clone();
    let store = state.store.as_ref();
    let blocked = async {
        Ok::<_, StoreError>(
            state
                .user_code_failures
                .is_blocked(store, &keys.code, now)
                .await?
                || html::password_blocked(&state, &keys, now).await?,
        )
    };
    match blocked.await {
        Ok(false) => {}
        Ok(true) => return too_many(),
        // Fail closed: without the count, nobody gets a guess.
        Err(e) => return internal(&e),
    }
    let retry = |msg: &str, code: &str| {
        page(
            StatusCode::BAD_REQUEST,
            "Sign in a device",
            &sign_in_form(&csrf, code, Some(msg)),
            None,
        )
    };
    // The user code first: a wrong one must not cost the account a password attempt.
    let device = match user_code::normalize(entered) {
        Some(code) => state.store.device_by_user_code(&code).await,
        None => Ok(None),
    };
    let device = match device {
        Ok(Some(d)) if d.status == DeviceStatus::Pending && d.expires_at > now => d,
        Ok(_) => {
            if let Err(e) = state
                .user_code_failures
                .record_failure(store, &code_key, now)
                .await
            {
                return internal(&e);
            }
            return retry(
                "That code is not valid or has expired. Check your terminal and try again.",
                "",
            );
        }
        Err(e) => return internal(&e),
    };
    if username.is_empty() || username.len() > 128 || password.len() > 1024 {
        return retry("Enter your username and password.", &device.user_code);
    }
    let sponsor =
        match html::password_sign_in(&state, &keys, peer.ip(), username, password, now).await {
            Ok(Some(sponsor)) => sponsor,
            Ok(None) => return retry("Wrong username or password.", &device.user_code),
            Err(e) => return internal(&e),
        };
    let consent_id = new_secret();
    let consent = Consent {
        // Bound to this browser's session (its CSRF cookie): the consent id alone, copied to
        // another browser, decides nothing.
        consent_hash: secret_hash(&bound_to_session(&consent_id, &csrf)),
        sponsor_id: sponsor.id.clone(),
        user_code: device.user_code.clone(),
        expires_at: now + Duration::seconds(CONSENT_SECONDS),
    };
    if let Err(e) = state.store.put_consent(&consent, now).await {
        return internal(&e);
    }
    let body = format!(
        "<p>Signed in as <strong>{who}</strong> ({user}).</p>\
         <p><strong>{client}</strong> is asking to act as you with the scopes <code>{scope}</code>.</p>\
         <p>Code: <span class=\"code\">{code}</span>. Approve only if this is the code your terminal shows.</p>\
         <form method=\"post\" action=\"/device/decision\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"consent\" value=\"{consent}\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\" autofocus>Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button></form>",
        who = text(&sponsor.display_name),
        user = text(&sponsor.username),
        client = text(&client_name(&state, &device.client_id)),
        scope = text(&device.scope),
        code = text(&device.user_code),
        csrf = attr(&csrf),
        consent = attr(&consent_id),
    );
    page(StatusCode::OK, "Approve sign-in?", &body, None)
}

/// `POST /device/decision`.
#[tracing::instrument(skip_all)]
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: axum::extract::Form<HashMap<String, String>>,
) -> Response {
    let form = form.0;
    if !csrf_matches(&headers, &form) {
        return forbidden_csrf();
    }
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Sign in a device",
                "<p class=\"error\">Choose Approve or Deny.</p>",
                None,
            );
        }
    };
    let now = state.clock.now();
    let taken = match form.get("consent").filter(|id| id.len() <= 128) {
        Some(id) => {
            let csrf = form.get("csrf").map(String::as_str).unwrap_or_default();
            let hash = secret_hash(&bound_to_session(id, csrf));
            state.store.take_consent(&hash, now).await
        }
        None => Ok(None),
    };
    let consent = match taken {
        Ok(Some(consent)) => consent,
        Ok(None) => return forbidden_csrf(),
        Err(e) => return internal(&e),
    };
    match state
        .store
        .decide_device(&consent.user_code, &consent.sponsor_id, approve, now)
        .await
    {
        Ok(_) if approve => page(
            StatusCode::OK,
            "Device approved",
            "<p>You are signed in. Return to your terminal; you can close this page.</p>",
            None,
        ),
        Ok(_) => page(
            StatusCode::OK,
            "Request denied",
            "<p>The request was denied and the code can no longer be used.</p>",
            None,
        ),
        Err(StoreError::Refused(Refusal::Conflict { message, .. })) => page(
            StatusCode::CONFLICT,
            "Code no longer usable",
            &format!("<p class=\"error\">{}</p>", text(&message)),
            None,
        ),
        Err(StoreError::NotFound) => forbidden_csrf(),
        Err(e) => internal(&e),
    }
}
