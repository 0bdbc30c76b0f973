//! What a Graph call can fail with, each error carrying Graph's `request-id` (and the
//! `client-request-id` this client sent) so the person can quote it; and Graph's error body.

use std::time::Duration;

use serde::Deserialize;

use crate::client::entra::EntraError;

/// Graph's error body (`{"error":{"code","message","innerError":{…}}}`; `innererror` in the
/// OData spelling too).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, alias = "innererror")]
    pub inner_error: Option<InnerError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct InnerError {
    #[serde(default, rename = "request-id")]
    pub request_id: Option<String>,
}

/// The ids of one call, for the person to quote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallIds {
    /// Graph's `request-id` (header, else the error body's `innerError`).
    pub request_id: Option<String>,
    /// The `client-request-id` this client sent.
    pub client_request_id: String,
}

impl std::fmt::Display for CallIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.request_id {
            Some(id) => write!(f, " (request-id {id})"),
            None => write!(f, " (client-request-id {})", self.client_request_id),
        }
    }
}

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error status (after the retries a throttled call gets).
    #[error("Graph answered {status} {code}: {message}{ids}{}", retry_after.map(|d| format!("; it asked to wait {} s", d.as_secs_f64().ceil())).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<Duration>,
        ids: CallIds,
    },
    /// An answer that is not the JSON it should be, or lacks a field.
    #[error("Graph's answer is not what was expected: {detail}{ids}")]
    BadAnswer { detail: String, ids: CallIds },
    #[error("Graph's answer is larger than {limit} bytes; not read{ids}")]
    TooLarge { limit: usize, ids: CallIds },
    #[error(
        "Graph's @odata.nextLink leads back to a page already read (after page {page}); stopped{ids}"
    )]
    NextLinkLoop { page: usize, ids: CallIds },
    #[error("Graph's list goes on past {limit} pages; stopped{ids}")]
    TooManyPages { limit: usize, ids: CallIds },
    #[error("Graph's @odata.nextLink points away from Graph ({link}); not followed{ids}")]
    ForeignLink { link: String, ids: CallIds },
    #[error("Graph did not answer within {} s{ids}", timeout.as_secs_f64())]
    Timeout { timeout: Duration, ids: CallIds },
    #[error("cannot reach Graph: {message}{ids}")]
    Network { message: String, ids: CallIds },
    #[error("{0}")]
    Token(#[from] EntraError),
    #[error("{0}")]
    Usage(String),
}

impl GraphError {
    /// The ids of the failed call, when it got as far as a call.
    pub fn ids(&self) -> Option<&CallIds> {
        match self {
            GraphError::Api { ids, .. }
            | GraphError::BadAnswer { ids, .. }
            | GraphError::TooLarge { ids, .. }
            | GraphError::NextLinkLoop { ids, .. }
            | GraphError::TooManyPages { ids, .. }
            | GraphError::ForeignLink { ids, .. }
            | GraphError::Timeout { ids, .. }
            | GraphError::Network { ids, .. } => Some(ids),
            GraphError::Token(_) | GraphError::Usage(_) => None,
        }
    }

    /// Graph's `request-id` of the failed call.
    pub fn request_id(&self) -> Option<&str> {
        self.ids()?.request_id.as_deref()
    }

    /// The HTTP status Graph answered with.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's error code (`Authorization_RequestDenied`, `TooManyRequests`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// How long Graph asked to wait before the next try, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether trying again later may work (throttling, outages, timeouts, the network).
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Api { status, .. } => super::retry::is_retryable(*status),
            GraphError::Timeout { .. } | GraphError::Network { .. } => true,
            GraphError::Token(EntraError::Network(_)) => true,
            _ => false,
        }
    }

    /// A short reason for a status line: `503`, `429`, `timeout`, `network`, `bad answer`.
    pub fn short(&self) -> String {
        match self {
            GraphError::Api { status, .. } => status.to_string(),
            GraphError::Timeout { .. } => "timeout".into(),
            GraphError::Network { .. } | GraphError::Token(EntraError::Network(_)) => {
                "network".into()
            }
            GraphError::Token(_) => "sign-in".into(),
            GraphError::BadAnswer { .. }
            | GraphError::TooLarge { .. }
            | GraphError::NextLinkLoop { .. }
            | GraphError::TooManyPages { .. }
            | GraphError::ForeignLink { .. } => "bad answer".into(),
            GraphError::Usage(_) => "usage".into(),
        }
    }
}
