//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2) for clients that
//! sign a person in through a browser: `GET /oauth2/authorize` checks the request and shows a
//! sign-in page naming the client and the scopes; `POST` checks the password and sends the
//! browser back to the client with a one-time code (or `access_denied`). No browser session is
//! kept: a person enters their password every time. The request's rules are
//! `domain::authorize`; the page frame, CSRF and password checks are `html`'s.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::html::{self, internal, too_many};
use crate::domain::authorize::{self, AuthorizeError, AuthorizeRequest, RedirectTo};
use crate::domain::guessing;
use crate::server::oauth::{client_name, issue_code, redirect_uris, sponsor_scope};
use crate::server::state::AppState;
use crate::server::tokens::new_secret;

const CSRF_COOKIE: &str = "authorize_csrf";
const PATH: &str = "/oauth2/authorize";

/// A request that passed `domain::authorize`, with its scope checked.
struct Checked {
    request: AuthorizeRequest,
    scope: String,
    to: RedirectTo,
}

/// How a request is refused: a page for the person, or a redirect back to the client.
enum Refusal {
    Shown(String),
    Redirect(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Redirect(location) => redirect(&location),
            Refusal::Shown(message) => html::page(
                StatusCode::BAD_REQUEST,
                "Sign-in request refused",
                &format!(
                    "<p class=\"error\">{}</p><p>Nothing was sent back to the application. \
                     Tell its owner; it may not be registered with this server.</p>",
                    text(&message)
                ),
            ),
        }
    }
}

/// Checks the request's parameters; on failure, the answer to give.
fn checked(state: &AppState, params: &HashMap<String, String>) -> Result<Checked, Refusal> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let request = authorize::check(get, |c| redirect_uris(state, c))
        .map_err(|(to, error)| refuse(state, to.as_ref(), error))?;
    let to = RedirectTo {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
    };
    let scope = sponsor_scope(request.scope.as_deref()).map_err(|e| {
        let error = AuthorizeError::Redirected {
            error: "invalid_scope",
            description: e.description,
        };
        refuse(state, Some(&to), error)
    })?;
    Ok(Checked { request, scope, to })
}

/// A refusal: shown to the person when the redirect URI is not known good, else sent back.
fn refuse(state: &AppState, to: Option<&RedirectTo>, error: AuthorizeError) -> Refusal {
    match (to, error) {
        (Some(to), AuthorizeError::Redirected { error, description }) => {
            Refusal::Redirect(to.with(
                &[("error", error), ("error_description", &description)],
                &state.issuer,
            ))
        }
        (_, AuthorizeError::Shown(message))
        | (
            None,
            AuthorizeError::Redirected {
                description: message,
                ..
            },
        ) => Refusal::Shown(message),
    }
}

/// RFC 6749 §4.1.2: the browser goes back with a 303 (never re-posting the password).
fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => internal(&"the redirect URI is not a header value"),
    }
}

/// The sign-in page for a checked request: who asks, for what, and the form.
fn sign_in_page(
    state: &AppState,
    checked: &Checked,
    csrf: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let r = &checked.request;
    let hidden = [
        ("client_id", Some(r.client_id.as_str())),
        ("redirect_uri", Some(r.redirect_uri.as_str())),
        ("response_type", Some("code")),
        ("scope", Some(checked.scope.as_str())),
        ("state", r.state.as_deref()),
        ("code_challenge", Some(r.code_challenge.as_str())),
        ("code_challenge_method", Some("S256")),
        ("nonce", r.nonce.as_deref()),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", attr(v)))
    })
    .collect::<String>();
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", text(e)))
        .unwrap_or_default();
    let origin = url::Url::parse(&r.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let body = format!(
        "<p><strong>{client}</strong> asks you to sign in, to act as you with the scopes \
         <code>{scope}</code>.</p><p>You will be sent back to <code>{origin}</code>.</p>{error}\
         <form method=\"post\" action=\"{PATH}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{hidden}\
         <label>Username <input name=\"username\" autocomplete=\"username\" maxlength=\"128\" required></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" maxlength=\"1024\" required></label>\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Sign in and allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Cancel</button></form>",
        client = text(&client_name(state, &r.client_id)),
        scope = text(&checked.scope),
        origin = text(&origin),
        csrf = attr(csrf),
    );
    let mut response = html::page(status, "Sign in", &body);
    html::allow_form_target(&mut response, &origin);
    response
}

/// RFC 6749 §3.1: a parameter sent twice is refused (by the page: which one is the client's is
/// unknown).
fn query_params(uri: &Uri) -> Result<HashMap<String, String>, Refusal> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k.len() > 64 || v.len() > 4096 {
            return Err(Refusal::Shown(
                "A parameter of the request is too long.".into(),
            ));
        }
        if params
            .insert(k.clone().into_owned(), v.into_owned())
            .is_some()
        {
            return Err(Refusal::Shown(format!("The parameter {k} is repeated.")));
        }
    }
    Ok(params)
}

/// `GET /oauth2/authorize`.
#[tracing::instrument(skip_all)]
pub async fn show(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let checked = match query_params(&uri).and_then(|params| checked(&state, &params)) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    let (csrf, fresh) = match html::csrf_cookie(&headers, CSRF_COOKIE) {
        Some(existing) => (existing, false),
        None => (new_secret(), true),
    };
    let mut response = sign_in_page(&state, &checked, &csrf, StatusCode::OK, None);
    if fresh {
        html::set_csrf_cookie(&mut response, CSRF_COOKIE, PATH, &csrf);
    }
    response
}

/// `POST /oauth2/authorize`: the person's answer.
#[tracing::instrument(skip_all)]
pub async fn decide(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !html::csrf_matches(&headers, &form, CSRF_COOKIE) {
        return html::page(
            StatusCode::FORBIDDEN,
            "Session expired",
            "<p class=\"error\">This form has expired or was not sent from this page. \
             Go back to the application and sign in again.</p>",
        );
    }
    let checked = match checked(&state, &form) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    if form.get("decision").map(String::as_str) != Some("allow") {
        return redirect(&checked.to.with(
            &[
                ("error", "access_denied"),
                ("error_description", "the person cancelled the sign-in"),
            ],
            &state.issuer,
        ));
    }
    let csrf = form.get("csrf").cloned().unwrap_or_default();
    let now = state.clock.now();
    let (username, password) = html::credentials(&form);
    let keys = guessing::keys(username, peer.ip());
    match html::password_blocked(&state, &keys, now).await {
        Ok(false) => {}
        Ok(true) => return too_many(),
        // Fail closed: without the count, nobody gets a guess.
        Err(e) => return internal(&e),
    }
    let retry = |message: &str| {
        sign_in_page(
            &state,
            &checked,
            &csrf,
            StatusCode::BAD_REQUEST,
            Some(message),
        )
    };
    if username.is_empty() || username.len() > 128 || password.len() > 1024 {
        return retry("Enter your username and password.");
    }
    let sponsor =
        match html::password_sign_in(&state, &keys, peer.ip(), username, password, now).await {
            Ok(Some(sponsor)) => sponsor,
            Ok(None) => return retry("Wrong username or password."),
            Err(e) => return internal(&e),
        };
    match issue_code(&state, &checked.request, &checked.scope, &sponsor, now).await {
        Ok(code) => redirect(&checked.to.with(&[("code", &code)], &state.issuer)),
        Err(e) => internal(&e),
    }
}
