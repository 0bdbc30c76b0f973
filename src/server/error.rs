//! One error type for the `/v1` API, mapped to status and the DESIGN §4 body. Client mistakes
//! get 4xx with a specific code; anything else is a generic 500 whose cause is only logged.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::store::{Outage, StoreError};
use crate::domain::{Invalid, Refusal};
use crate::protocol::error::ErrorBody;

/// The protection space of every bearer challenge.
const REALM: &str = "Bearer realm=\"governance\"";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds to wait before trying again (`Retry-After`), for outages.
    pub retry_after: Option<u32>,
    /// The `WWW-Authenticate` challenge (RFC 6750 §3), for a missing, invalid or too narrow
    /// token.
    pub challenge: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// The store cannot take writes: nothing was written, and trying again later will work.
    pub fn outage(outage: Outage) -> Self {
        let (status, code, message, seconds) = match outage {
            Outage::Full => (
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the server's storage is full; nothing was written. Try again later",
                30,
            ),
            Outage::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the server's database is unavailable; nothing was written. Try again shortly",
                5,
            ),
        };
        Self {
            retry_after: Some(seconds),
            ..Self::new(status, code, message)
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// A token was presented and is not valid (RFC 6750 §3.1: `error="invalid_token"`).
    pub fn unauthorized() -> Self {
        Self {
            challenge: Some(format!("{REALM}, error=\"invalid_token\"")),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "a valid bearer access token is required",
            )
        }
    }
    /// RFC 9449 §7.1: a DPoP-bound token, or its proof, refused (`invalid_token` or
    /// `invalid_dpop_proof`), challenged with the DPoP scheme and the algorithm proofs may use.
    pub fn dpop(code: &str, message: impl Into<String>) -> Self {
        Self {
            challenge: Some(format!("DPoP algs=\"EdDSA\", error=\"{code}\"")),
            ..Self::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }
    /// No token at all: RFC 6750 §3.1 says the challenge then carries no error code.
    pub fn no_token() -> Self {
        Self {
            challenge: Some(REALM.to_owned()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "a bearer access token is required (Authorization: Bearer …)",
            )
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed; nothing was changed",
        )
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::unprocessable(e.code, e.message)
    }
}

/// The one place a domain refusal becomes an HTTP status.
impl From<Refusal> for ApiError {
    fn from(e: Refusal) -> Self {
        match e {
            Refusal::Invalid(e) => Self::from(e),
            Refusal::Forbidden { code, message } => Self::new(StatusCode::FORBIDDEN, code, message),
            Refusal::Conflict { code, message } => Self::conflict(code, message),
            Refusal::NotFound { what } => Self::not_found(what),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(refusal) => Self::from(refusal),
            StoreError::NotFound => Self::not_found("resource"),
            other if other.outage().is_some() => {
                tracing::warn!(error = %other, "store outage");
                Self::outage(other.outage().unwrap_or(Outage::Unavailable))
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An RFC 6749 §5.2 error from an OAuth endpoint.
#[derive(Debug)]
pub struct OAuthFailure {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// The `WWW-Authenticate` challenge: a client that tried HTTP Basic is challenged with
    /// `Basic` (RFC 6749 §5.2), a bearer token's refusal as RFC 6750 §3 says; `None` gives a
    /// 401 the plain `Bearer` challenge.
    pub challenge: Option<String>,
}

impl OAuthFailure {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }
}

impl OAuthFailure {
    /// A caller refused by the bearer-token check, in OAuth's shape: the client is not
    /// authenticated (401 `invalid_client`), its token's scope is too narrow (403
    /// `insufficient_scope`), or the server cannot check now (503).
    pub fn from_caller(e: ApiError) -> Self {
        match e.status {
            StatusCode::UNAUTHORIZED => Self::new("invalid_client", e.message),
            StatusCode::FORBIDDEN => Self {
                status: StatusCode::FORBIDDEN,
                ..Self::new("insufficient_scope", e.message)
            },
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE => {
                Self::new("temporarily_unavailable", e.message)
            }
            _ => Self::new("server_error", e.message),
        }
    }
}

impl OAuthFailure {
    /// A bearer token refused at an OAuth-protected resource (UserInfo), in OAuth's shape with
    /// RFC 6750 §3's challenge: `invalid_token`, `insufficient_scope`, or unavailable.
    pub fn bearer(e: ApiError) -> Self {
        let error = match e.status {
            StatusCode::UNAUTHORIZED => "invalid_token",
            StatusCode::FORBIDDEN => "insufficient_scope",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE => {
                "temporarily_unavailable"
            }
            _ => "server_error",
        };
        Self {
            status: e.status,
            challenge: e.challenge,
            ..Self::new(error, e.message)
        }
    }

    /// A 404 or 405 under `/oauth2`, in OAuth's shape.
    pub fn route(status: StatusCode, description: &str) -> Self {
        Self {
            status,
            ..Self::new("invalid_request", description)
        }
    }
}

impl From<StoreError> for OAuthFailure {
    fn from(e: StoreError) -> Self {
        if e.outage().is_some() {
            tracing::warn!(error = %e, "store outage on an OAuth endpoint");
            return Self::new(
                "temporarily_unavailable",
                "the server cannot store anything now; try again later",
            );
        }
        tracing::error!(error = %e, "store failure on an OAuth endpoint");
        Self::new("server_error", "the server failed; try again")
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let body = crate::protocol::oauth::OAuthError {
            error: self.error.to_owned(),
            error_description: Some(self.description),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(5u32));
        }
        let challenge = match self.challenge {
            Some(c) => HeaderValue::from_str(&c).ok(),
            None => (self.status == StatusCode::UNAUTHORIZED)
                .then(|| HeaderValue::from_static("Bearer realm=\"governance\"")),
        };
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
