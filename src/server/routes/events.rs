//! `GET /v1/events`: the audit chain as Server-Sent Events. The event `id` is the audit `seq`,
//! so a client that reconnects with `Last-Event-ID` resumes exactly after the last event it
//! saw: nothing lost, nothing twice. Each sponsor sees only events about themselves and their
//! agents; security leads and admins see everything.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use crate::protocol::audit::{AuditEvent, EventFrame};
use crate::protocol::error::ErrorBody;
use crate::protocol::query::EventsQuery;
use crate::server::error::ApiError;
use crate::server::extract::{ApiQuery, Principal};
use crate::server::state::AppState;
use crate::server::store::AuditScope;

const PAGE: u32 = 500;

struct Cursor {
    state: AppState,
    scope: AuditScope,
    after: i64,
    buffer: VecDeque<AuditEvent>,
    changes: tokio::sync::watch::Receiver<u64>,
    /// The server is stopping: the stream ends.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// The caller's token and the roles it was admitted with: the stream ends when the token
    /// expires, is revoked, or loses a role.
    caller: Principal,
}

impl Cursor {
    fn still_admitted(&self) -> bool {
        let claims = &self.caller.claims;
        claims.exp > self.state.clock.now().timestamp()
            && self
                .state
                .revocations
                .admit(claims)
                .is_ok_and(|roles| roles == self.caller.roles)
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be an audit seq",
            )
        })
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this audit seq")),
    responses((status = 200, description = "Server-Sent Events, one frame per audit event the caller may see: id = the audit seq, event = the action, data = the AuditEvent as JSON", content_type = "text/event-stream", body = EventFrame),
              (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn events(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require_sponsor()?;
    let scope = if caller.reads_all() {
        AuditScope::All
    } else {
        AuditScope::Sponsor(caller.sub().to_owned())
    };
    let after = match last_event_id(&headers)?.or(query.after) {
        Some(after) => after,
        // Only what happens from now on: start at the current head.
        None => state.store.audit_head().await?,
    };
    let mut changes = state.store.changes();
    changes.borrow_and_update();
    let stopping = state.stopping.subscribe();
    let cursor = Cursor {
        stopping,
        state,
        scope,
        after,
        buffer: VecDeque::new(),
        changes,
        caller,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if !c.still_admitted() || *c.stopping.borrow() {
                return None;
            }
            if let Some(event) = c.buffer.pop_front() {
                c.after = event.event.seq;
                let sse = Event::default()
                    .id(event.event.seq.to_string())
                    .event(event.event.action.clone())
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                return Some((Ok(sse), c));
            }
            // Arm the change notification before reading, so nothing committed in between
            // is missed.
            c.changes.borrow_and_update();
            match c.state.store.audit_page(&c.scope, c.after, PAGE).await {
                Ok(events) if !events.is_empty() => c.buffer.extend(events),
                Ok(_) => {
                    tokio::select! {
                        changed = c.changes.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                        }
                        _ = c.stopping.wait_for(|stop| *stop) => return None,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event stream read failed; closing it");
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
