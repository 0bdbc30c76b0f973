//! The live event stream (`/v1/events`, Server-Sent Events) as the client reads it.

use reqwest::StatusCode;

use super::{ClientError, ClientResult};
use crate::protocol::audit::AuditEvent;

type SseInner = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// The live audit events of `/v1/events`.
pub struct EventStream {
    inner: SseInner,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

impl EventStream {
    pub(super) fn from_response(response: reqwest::Response) -> Self {
        use eventsource_stream::Eventsource;
        Self {
            inner: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    /// The next audit event; `None` when the server closed the stream. Keep-alive comments are
    /// skipped.
    pub async fn next(&mut self) -> Option<ClientResult<AuditEvent>> {
        use futures::StreamExt;
        loop {
            match self.inner.next().await? {
                Ok(event) if event.data.is_empty() => continue,
                Ok(event) => {
                    return Some(serde_json::from_str(&event.data).map_err(|e| {
                        ClientError::Unexpected {
                            status: StatusCode::OK,
                            detail: format!("event {}: {e}", event.id),
                        }
                    }));
                }
                Err(e) => {
                    return Some(Err(ClientError::Unexpected {
                        status: StatusCode::OK,
                        detail: format!("event stream: {e}"),
                    }));
                }
            }
        }
    }
}
