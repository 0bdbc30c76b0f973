//! Faults injected per path, and the edge every request passes: a `request-id` made for it
//! (and `client-request-id` echoed), the fault if one matches, and a record of the call.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::errors::{graph_error, oauth_error};
use crate::state::App;

/// What a matching request gets instead of (or on top of) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 `TooManyRequests`, with `Retry-After` set to this value when given (`"2"`, `"2.5"`).
    Throttle { retry_after: Option<String> },
    /// 503 `serviceNotAvailable`, with `Retry-After` when given.
    Unavailable { retry_after: Option<String> },
    /// 504 `gatewayTimeout`.
    GatewayTimeout,
    /// 200 with `Content-Type: application/json` and a body that is not JSON.
    MalformedJson,
    /// The normal answer, but a collection's `@odata.nextLink` points at the same page.
    NextLinkLoop,
    /// Any status with a Graph error body carrying `code`.
    Status { status: u16, code: String },
    /// 400 with an OAuth error body (`slow_down`, `invalid_grant`, …) as the token endpoint
    /// answers.
    OAuthError { error: String },
    /// The normal answer, this much later.
    Delay(Duration),
}

/// A fault for requests whose path contains `path_contains` (and whose method is `method`,
/// when set), for the next `remaining` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub path_contains: String,
    pub method: Option<String>,
    pub kind: FaultKind,
    pub remaining: u32,
}

impl Fault {
    /// `kind` once, on paths containing `path_contains`.
    pub fn on(path_contains: &str, kind: FaultKind) -> Self {
        Self {
            path_contains: path_contains.to_owned(),
            method: None,
            kind,
            remaining: 1,
        }
    }

    pub fn throttle(path_contains: &str, retry_after: Option<&str>) -> Self {
        Self::on(
            path_contains,
            FaultKind::Throttle {
                retry_after: retry_after.map(str::to_owned),
            },
        )
    }

    pub fn unavailable(path_contains: &str, retry_after: Option<&str>) -> Self {
        Self::on(
            path_contains,
            FaultKind::Unavailable {
                retry_after: retry_after.map(str::to_owned),
            },
        )
    }

    pub fn gateway_timeout(path_contains: &str) -> Self {
        Self::on(path_contains, FaultKind::GatewayTimeout)
    }

    pub fn malformed_json(path_contains: &str) -> Self {
        Self::on(path_contains, FaultKind::MalformedJson)
    }

    pub fn next_link_loop(path_contains: &str) -> Self {
        Self::on(path_contains, FaultKind::NextLinkLoop)
    }

    pub fn status(path_contains: &str, status: u16, code: &str) -> Self {
        Self::on(
            path_contains,
            FaultKind::Status {
                status,
                code: code.to_owned(),
            },
        )
    }

    pub fn oauth_error(path_contains: &str, error: &str) -> Self {
        Self::on(
            path_contains,
            FaultKind::OAuthError {
                error: error.to_owned(),
            },
        )
    }

    pub fn delay(path_contains: &str, by: Duration) -> Self {
        Self::on(path_contains, FaultKind::Delay(by))
    }

    /// The next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = n;
        self
    }

    /// Every matching request until [`crate::Emulator::clear_faults`].
    pub fn always(self) -> Self {
        self.times(u32::MAX)
    }

    /// Only requests with this method (`"PATCH"`).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining > 0
            && path.contains(&self.path_contains)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// The ids of one request: `request-id` is the emulator's, `client-request-id` the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Marks a request whose collection answer must link to itself.
#[derive(Debug, Clone, Copy)]
pub struct LoopNextLink;

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Percent-decoded path, so `filterByCurrentUser(on=%27approver%27)` matches like the plain one.
pub fn decoded_path(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

pub async fn edge(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let now = app.now();
    let ids = RequestIds {
        request_id: uuid::Uuid::new_v4().to_string(),
        client_request_id: request
            .headers()
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        at: now,
    };
    let method = request.method().as_str().to_owned();
    let path = decoded_path(request.uri().path());
    let query = request.uri().query().map(str::to_owned);
    request.extensions_mut().insert(ids.clone());
    let fault = app.take_fault(&method, &path);
    let is_login = path.contains("/oauth2/");
    let mut response = match fault {
        None => next.run(request).await,
        Some(FaultKind::NextLinkLoop) => {
            request.extensions_mut().insert(LoopNextLink);
            next.run(request).await
        }
        Some(FaultKind::Delay(by)) => {
            tokio::time::sleep(by).await;
            next.run(request).await
        }
        Some(FaultKind::MalformedJson) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            "{\"value\":[{\"id\":\"",
        )
            .into_response(),
        Some(FaultKind::OAuthError { error }) => {
            oauth_error(&error, "Injected by the emulator.", &ids)
        }
        Some(FaultKind::Throttle { retry_after }) => {
            let mut r = if is_login {
                oauth_error("temporarily_unavailable", "Too many requests.", &ids)
            } else {
                graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Please retry again later.",
                    &ids,
                )
            };
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            set_retry_after(&mut r, retry_after.as_deref());
            r
        }
        Some(FaultKind::Unavailable { retry_after }) => {
            let mut r = if is_login {
                oauth_error(
                    "temporarily_unavailable",
                    "The service is unavailable.",
                    &ids,
                )
            } else {
                graph_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable. Try again later.",
                    &ids,
                )
            };
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            set_retry_after(&mut r, retry_after.as_deref());
            r
        }
        Some(FaultKind::GatewayTimeout) => graph_error(
            StatusCode::GATEWAY_TIMEOUT,
            "gatewayTimeout",
            "The gateway timed out.",
            &ids,
        ),
        Some(FaultKind::Status { status, code }) => graph_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &code,
            "Injected by the emulator.",
            &ids,
        ),
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        headers.insert("request-id", v);
    }
    if let Some(Ok(v)) = ids.client_request_id.as_deref().map(HeaderValue::from_str) {
        headers.insert("client-request-id", v);
    }
    app.record_call(RecordedCall {
        method,
        path,
        query,
        status: response.status().as_u16(),
        request_id: ids.request_id,
        client_request_id: ids.client_request_id,
        at: now,
    });
    response
}

fn set_retry_after(response: &mut Response, value: Option<&str>) {
    if let Some(Ok(v)) = value.map(HeaderValue::from_str) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_match_by_path_method_and_count() {
        let f = Fault::throttle("/filterByCurrentUser", Some("1"))
            .times(2)
            .method("get");
        assert!(f.matches("GET", "/v1.0/x/filterByCurrentUser(on='approver')"));
        assert!(!f.matches("PATCH", "/v1.0/x/filterByCurrentUser(on='approver')"));
        assert!(!f.matches("GET", "/v1.0/me"));
        assert!(!f.clone().times(0).matches("GET", "/filterByCurrentUser"));
        assert_eq!(
            decoded_path("/v1.0/a/filterByCurrentUser(on=%27approver%27)"),
            "/v1.0/a/filterByCurrentUser(on='approver')"
        );
    }
}
