//! Request extractors that answer bad input in our own error shapes: JSON bodies (unknown
//! fields refused, 64 KiB limit), OAuth forms (duplicate parameters refused, RFC 6749 §3.1),
//! and the bearer principal of `/v1` routes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::{ApiError, OAuthFailure};
use super::state::AppState;
use crate::domain::role::Role;
use crate::protocol::oauth::{AccessClaims, SubjectKind};
use crate::protocol::query::ListScope;

/// Largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body parsed strictly.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

/// A request's body, at most [`MAX_BODY_BYTES`], refused in the API's error shape.
pub async fn body_bytes(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = body_bytes(req).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = T::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
        match value {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) if e.is_syntax() || e.is_eof() => Err(ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )),
            Err(e) => Err(ApiError::unprocessable(
                "invalid_body",
                format!("the body does not match the expected shape: {e}"),
            )),
        }
    }
}

/// An `application/x-www-form-urlencoded` body for the OAuth endpoints.
#[derive(Debug)]
pub struct OAuthForm(pub HashMap<String, String>);

impl OAuthForm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str, OAuthFailure> {
        self.get(key)
            .ok_or_else(|| OAuthFailure::new("invalid_request", format!("missing parameter {key}")))
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthFailure;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthFailure::new(
                "invalid_request",
                "send parameters as application/x-www-form-urlencoded",
            ));
        }
        let bytes = Bytes::from_request(req, &()).await.map_err(|_| {
            OAuthFailure::new("invalid_request", "the request body could not be read")
        })?;
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            if k.len() > 64 || v.len() > 16 * 1024 {
                return Err(OAuthFailure::new("invalid_request", "parameter too long"));
            }
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(OAuthFailure::new(
                    "invalid_request",
                    format!("parameter {k} is repeated"),
                ));
            }
        }
        Ok(OAuthForm(map))
    }
}

/// The authenticated caller of a `/v1` route, from a validated access token. Validation is
/// in memory only: signature, `alg`, `kid`, issuer, audience, `exp`, `nbf`, and for a
/// DPoP-bound token its proof (`server::dpop::check_binding`).
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: AccessClaims,
    pub roles: Vec<Role>,
}

impl Principal {
    pub fn sub(&self) -> &str {
        &self.claims.sub
    }

    pub fn is_sponsor(&self) -> bool {
        self.claims.kind == SubjectKind::Sponsor
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.is_sponsor() && self.roles.contains(&role)
    }

    /// Security leads and admins read every agent and every audit event.
    pub fn reads_all(&self) -> bool {
        self.is_sponsor() && self.roles.iter().any(|r| r.reads_all())
    }

    /// A list's `scope` query (`mine`, the default, or `all`): the sponsor whose items to list,
    /// or `None` for everything, which only readers of everything may ask for.
    pub fn list_scope(
        &self,
        scope: Option<ListScope>,
        what: &str,
    ) -> Result<Option<String>, ApiError> {
        match scope.unwrap_or_default() {
            ListScope::Mine => Ok(Some(self.sub().to_owned())),
            ListScope::All if self.reads_all() => Ok(None),
            ListScope::All => Err(ApiError::forbidden(format!(
                "listing every {what} needs the security-lead or admin role"
            ))),
        }
    }

    pub fn require_sponsor(&self) -> Result<(), ApiError> {
        if self.is_sponsor() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this call is for human sponsors, not agents",
            ))
        }
    }
}

/// The scope a human's token needs for `/v1`.
pub const GOVERNANCE_SCOPE: &str = "governance";

/// Whether a space-separated scope holds `wanted`.
pub fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// RFC 6750 §3.1: the token is good, its scope is not enough.
pub fn insufficient_scope(wanted: &str) -> ApiError {
    ApiError {
        challenge: Some(format!(
            "Bearer realm=\"governance\", error=\"insufficient_scope\", scope=\"{wanted}\""
        )),
        ..ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this token's scope does not include {wanted}; sign in again asking for it"),
        )
    }
}

/// The access token of `Authorization: Bearer` or `Authorization: DPoP` (RFC 9449 §7.1), and
/// whether it came under the DPoP scheme.
pub fn access_token(parts: &Parts) -> Option<(bool, &str)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let dpop = scheme.eq_ignore_ascii_case(crate::protocol::dpop::DPOP);
    let token = token.trim();
    ((dpop || scheme.eq_ignore_ascii_case("bearer")) && !token.is_empty()).then_some((dpop, token))
}

/// Extracts the bearer token string.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (dpop_scheme, token) = access_token(parts).ok_or_else(ApiError::no_token)?;
        // A token from a trusted external issuer (Entra) is checked against that issuer's
        // keys and rules and becomes a sponsor's claims; every other token must be ours.
        let claims = match state.trusted.route(token) {
            Some(issuer) => super::trusted::sponsor_claims(state, &issuer, token).await?,
            None => state
                .keys
                .verify_access(
                    token,
                    &state.issuer,
                    &state.settings.tokens.audience,
                    state.clock.now(),
                )
                .map_err(|e| {
                    tracing::debug!(reason = %e, "bearer token refused");
                    ApiError::unauthorized()
                })?,
        };
        // A human's token acts on `/v1` only if it was given the `governance` scope (a token
        // asked for `openid profile` alone reads who you are, nothing more).
        if claims.kind == SubjectKind::Sponsor
            && parts.uri.path().starts_with("/v1/")
            && !has_scope(&claims.scope, GOVERNANCE_SCOPE)
        {
            return Err(insufficient_scope(GOVERNANCE_SCOPE));
        }
        // Revoked, suspended, or a role taken away: in memory, no database round trip. A
        // sponsor the index has not seen yet (added a moment ago, by this process or another)
        // is the one case that reads the chain first; a token for one still needs our
        // signature.
        let admitted = state
            .revocations
            .admit_or_catch_up(state.store.as_ref(), state.clock.now(), &claims)
            .await?;
        let roles = admitted.map_err(|e| {
            tracing::debug!(reason = %e, "bearer token refused by the revocation index");
            ApiError::unauthorized()
        })?;
        super::dpop::check_binding(state, parts, dpop_scheme, token, claims.cnf.as_ref())?;
        Ok(Principal { claims, roles })
    }
}

/// A query string parsed into `T`, answering mistakes in the API's error shape.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(query).map(ApiQuery)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}
