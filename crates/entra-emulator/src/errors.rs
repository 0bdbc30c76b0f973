//! The two error shapes: Graph's `{"error":{"code","message","innerError":{…}}}` and the
//! login host's OAuth body with its AADSTS code, trace and correlation ids.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::RequestIds;

/// A Graph error answer (`innerError` in camelCase, as Graph sends it).
pub fn graph_error(status: StatusCode, code: &str, message: &str, ids: &RequestIds) -> Response {
    let mut inner = json!({
        "date": ids.at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": ids.request_id,
    });
    if let Some(client) = &ids.client_request_id {
        inner["client-request-id"] = Value::String(client.clone());
    }
    let body = json!({"error": {"code": code, "message": message, "innerError": inner}});
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"\", error=\"invalid_token\""),
        );
    }
    response
}

/// The AADSTS code Entra sends with an OAuth `error`, where the docs name one.
fn aadsts(error: &str) -> Option<u32> {
    Some(match error {
        "authorization_pending" => 70016,
        "bad_verification_code" => 70018,
        "expired_token" => 70019,
        "invalid_grant" => 70008,
        "invalid_scope" => 70011,
        "unsupported_grant_type" => 70003,
        "invalid_request" => 900144,
        "unauthorized_client" => 700016,
        "invalid_resource" => 500011,
        // `authorization_declined` and `slow_down` have no documented code.
        _ => return None,
    })
}

/// A 400 from the token or device-code endpoint, in Entra's shape.
pub fn oauth_error(error: &str, text: &str, ids: &RequestIds) -> Response {
    oauth_error_with(error, aadsts(error), text, ids)
}

/// [`oauth_error`] with an explicit AADSTS code (`None`: none sent).
pub fn oauth_error_with(error: &str, code: Option<u32>, text: &str, ids: &RequestIds) -> Response {
    let timestamp = ids.at.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let correlation = ids
        .client_request_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let prefix = code.map(|c| format!("AADSTS{c}: ")).unwrap_or_default();
    let description = format!(
        "{prefix}{text}\r\nTrace ID: {}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}",
        ids.request_id
    );
    let mut body = json!({
        "error": error,
        "error_description": description,
        "error_codes": code.map(|c| vec![c]).unwrap_or_default(),
        "timestamp": timestamp,
        "trace_id": ids.request_id,
        "correlation_id": correlation,
    });
    if let Some(c) = code {
        body["error_uri"] =
            Value::String(format!("https://login.microsoftonline.com/error?code={c}"));
    }
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn ids() -> RequestIds {
        RequestIds {
            request_id: "r-1".into(),
            client_request_id: Some("c-1".into()),
            at: Utc
                .with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
                .single()
                .unwrap(),
        }
    }

    async fn body(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn graph_errors_carry_the_ids_in_inner_error() {
        let r = graph_error(StatusCode::CONFLICT, "Conflict", "decided", &ids());
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let b = body(r).await;
        assert_eq!(b["error"]["code"], "Conflict");
        assert_eq!(b["error"]["innerError"]["request-id"], "r-1");
        assert_eq!(b["error"]["innerError"]["client-request-id"], "c-1");
        assert_eq!(b["error"]["innerError"]["date"], "2026-11-24T09:00:00");
    }

    #[tokio::test]
    async fn oauth_errors_have_entras_fields() {
        let b = body(oauth_error("authorization_pending", "Pending.", &ids())).await;
        assert_eq!(b["error"], "authorization_pending");
        assert_eq!(b["error_codes"], json!([70016]));
        assert_eq!(b["correlation_id"], "c-1");
        assert_eq!(b["timestamp"], "2026-11-24 09:00:00Z");
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS70016: Pending.")
        );
        let declined = body(oauth_error("authorization_declined", "No.", &ids())).await;
        assert_eq!(declined["error_codes"], json!([]));
    }
}
