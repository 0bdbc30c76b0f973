//! `Idempotency-Key` on creating POSTs, at the HTTP edge: reading the header, hashing the body
//! (RFC 8785 canonical JSON), and answering a replay with the stored answer. Whether a key may
//! replay is `domain::idempotency`; the store keeps the answers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::Principal;
use super::store::{Idempotency, StoredResponse};

/// The caller's claim on a key for this body, when the request carries `Idempotency-Key`.
pub fn claim(
    caller: &Principal,
    headers: &HeaderMap,
    body: &impl serde::Serialize,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible ASCII characters",
            )
        })?;
    let canonical = serde_jcs::to_vec(body).map_err(|_| ApiError::internal())?;
    Ok(Some(Idempotency {
        principal: caller.sub().to_owned(),
        key: key.to_owned(),
        request_hash: hex::encode(Sha256::digest(canonical)),
    }))
}

/// The first answer again, marked as a replay.
pub fn replayed(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
