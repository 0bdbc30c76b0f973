//! `/v1/audit`: read the chain by `seq`, verify it, export it as JSON Lines.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::stream;

use crate::protocol::audit::{AuditPage, VerifyReport};
use crate::protocol::error::ErrorBody;
use crate::protocol::query::{AuditQuery, VerifyQuery};
use crate::server::chain::{sign_head, verify_chain};
use crate::server::error::ApiError;
use crate::server::extract::{ApiQuery, Principal};
use crate::server::state::AppState;
use crate::server::store::AuditScope;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn scope_of(caller: &Principal) -> Result<AuditScope, ApiError> {
    caller.require_sponsor()?;
    Ok(if caller.reads_all() {
        AuditScope::All
    } else {
        AuditScope::Sponsor(caller.sub().to_owned())
    })
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn page(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let scope = scope_of(&caller)?;
    if let Some(n) = query.tail {
        if query.after.is_some() || !(1..=MAX_PAGE).contains(&n) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("tail takes 1 to {MAX_PAGE} and no after"),
            ));
        }
        let events = state.store.audit_tail(&scope, n).await?;
        return Ok(Json(AuditPage {
            events,
            next_after: None,
        }));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "after must be 0 or more",
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let events = state.store.audit_page(&scope, after, limit).await?;
    let next_after = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.event.seq))
        .flatten();
    Ok(Json(AuditPage { events, next_after }))
}

/// Any signed-in human may verify: the answer reveals no event content. When the chain
/// verifies, the answer carries a fresh signed checkpoint of its head; with `?at=SEQ` it also
/// says what the chain holds at `SEQ`, to compare with a checkpoint kept earlier.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyQuery),
    responses((status = 200, body = VerifyReport), (status = 400, description = "invalid query", body = ErrorBody),
              (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<VerifyQuery>,
) -> Result<Json<VerifyReport>, ApiError> {
    caller.require_sponsor()?;
    if query.at.is_some_and(|seq| seq < 1) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "at must be 1 or more",
        ));
    }
    let mut report = verify_chain(state.store.as_ref(), query.at).await?;
    if report.ok && report.count > 0 {
        let checkpoint = sign_head(
            &state.keys,
            &state.issuer,
            report.count,
            &report.head,
            state.clock.now(),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "signing an audit checkpoint failed");
            ApiError::internal()
        })?;
        report.checkpoint = Some(checkpoint);
    }
    Ok(Json(report))
}

/// The whole chain as JSON Lines, streamed page by page (security leads and admins).
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit",
    responses((status = 200, description = "the whole chain as JSON Lines, one AuditEvent per line", content_type = "application/jsonl", body = String),
              (status = 403, body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn export(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Response, ApiError> {
    caller.require_sponsor()?;
    if !caller.reads_all() {
        return Err(ApiError::forbidden(
            "exporting the audit chain needs the security-lead or admin role",
        ));
    }
    let store = state.store.clone();
    let pages = stream::unfold(Some(0i64), move |after| {
        let store = store.clone();
        async move {
            let after = after?;
            match store.audit_page(&AuditScope::All, after, MAX_PAGE).await {
                Ok(events) => {
                    let next = (events.len() == MAX_PAGE as usize)
                        .then(|| events.last().map(|e| e.event.seq))
                        .flatten();
                    let mut chunk = Vec::new();
                    for event in &events {
                        if serde_json::to_writer(&mut chunk, event).is_err() {
                            return Some((Err(std::io::Error::other("encoding failed")), None));
                        }
                        chunk.push(b'\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed mid-stream");
                    Some((Err(std::io::Error::other("store failure")), None))
                }
            }
        }
    });
    let mut response = Body::from_stream(pages).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    Ok(response)
}
