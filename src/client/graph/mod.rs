//! A Microsoft Graph client worth trusting (entra-graph.md §8): rustls with the configured CA,
//! a timeout on every call, a `client-request-id` on every call and Graph's `request-id` in
//! every error, 429/503/504 retried honouring `Retry-After` with a capped jittered backoff,
//! `@odata.nextLink` always followed (on Graph's own host only, with a page cap and a loop
//! guard), answers read up to a size limit, and typed decoding whose failures are errors,
//! never panics. The sleep between retries is injected, so tests never wait.

mod approvals;
mod calls;
mod decide;
mod error;
pub mod model;
mod names;
mod retry;
mod source;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use url::Url;

pub use approvals::EntraApprovals;
pub use decide::{
    DecideError, Decided, Decision, DecisionOutcome, audit_body, check_justification,
    decide_and_record,
};
pub use error::{CallIds, GraphError};
pub use names::{Name, NameCache, NameKind};
pub use retry::{RetryPolicy, delay, is_retryable, parse_retry_after};
pub use source::{ApprovalSource, EntraApprovalSource, entra_sources, poll, reason};

use crate::client::entra::{EntraError, EntraTokens};
use crate::clock::SharedClock;

/// Where the Graph client gets its bearer token.
#[async_trait]
pub trait GraphAuth: Send + Sync + std::fmt::Debug {
    async fn bearer(&self) -> Result<String, EntraError>;
}

#[async_trait]
impl GraphAuth for EntraTokens {
    async fn bearer(&self) -> Result<String, EntraError> {
        Ok(self.graph_token().await?.secret)
    }
}

/// A token handed in as it is (benchmarks, tests).
pub struct StaticToken(String);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl GraphAuth for StaticToken {
    async fn bearer(&self) -> Result<String, EntraError> {
        Ok(self.0.clone())
    }
}

/// How the client waits between tries.
pub type Sleeper = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

/// Waits with tokio's timer.
pub fn tokio_sleeper() -> Sleeper {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// Limits of one client.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOptions {
    /// Per try, from sending to the last byte of the answer.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// The largest answer read.
    pub max_body_bytes: usize,
    /// The most pages one list follows.
    pub max_pages: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_body_bytes: 4 * 1024 * 1024,
            max_pages: 200,
        }
    }
}

/// Graph's API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// A decoded answer and the ids of the call that got it.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub value: T,
    pub ids: CallIds,
}

/// Every item of a list, all pages followed.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub pages: usize,
    /// The ids of the last page's call.
    pub ids: CallIds,
}

/// Graph acknowledged a change (2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub status: u16,
    pub ids: CallIds,
    /// How many times the call was sent again (throttled or unavailable) before this.
    pub retries: u32,
}

#[derive(Clone)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: Arc<dyn GraphAuth>,
    options: GraphOptions,
    clock: SharedClock,
    sleep: Sleeper,
}

/// A Graph client; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.inner.base.as_str())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Characters a query value keeps as they are; the rest are percent-encoded (`%20` for a
/// space, as Graph's own examples write it).
fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$'(),:/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An id put into a path: Graph's ids are GUIDs and similar; anything that could change the
/// path (`/`, `?`, `%`, `..`) is refused.
pub fn segment(id: &str) -> Result<&str, GraphError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(id)
    } else {
        Err(GraphError::Usage(format!(
            "{:?} is not a Graph id",
            crate::domain::text::sanitize_preview(id)
        )))
    }
}

impl GraphClient {
    /// A client of Graph at `base` (`https://graph.microsoft.com`), with the default limits
    /// and tokio's timer.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        auth: Arc<dyn GraphAuth>,
        clock: SharedClock,
    ) -> Result<Self, GraphError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| GraphError::Usage(format!("{base:?} is not a Graph base URL")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                options: GraphOptions::default(),
                clock,
                sleep: tokio_sleeper(),
            }),
        })
    }

    /// Graph as `[entra]` names it, with the signed-in person's Graph token.
    pub fn for_tokens(tokens: &EntraTokens, clock: SharedClock) -> Result<Self, GraphError> {
        Self::new(
            tokens.http().clone(),
            tokens.config().graph_base(),
            Arc::new(tokens.clone()),
            clock,
        )
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = (*self.inner).clone();
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn with_options(self, options: GraphOptions) -> Self {
        self.with(|i| i.options = options)
    }

    pub fn with_sleeper(self, sleep: Sleeper) -> Self {
        self.with(|i| i.sleep = sleep)
    }

    pub fn options(&self) -> &GraphOptions {
        &self.inner.options
    }

    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// `{base}/{version}/{path}?{query}`; `path` is taken as written (put ids in with
    /// [`segment`]).
    pub fn url(
        &self,
        version: ApiVersion,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Url, GraphError> {
        let text = format!(
            "{}/{}/{}",
            self.inner.base.as_str().trim_end_matches('/'),
            version.as_str(),
            path.trim_start_matches('/')
        );
        let mut url = Url::parse(&text).map_err(|e| GraphError::Usage(format!("{text}: {e}")))?;
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", query_value(v)))
                .collect();
            url.set_query(Some(&q.join("&")));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_change_the_path_are_refused() {
        assert!(segment("9f2b5ddb-a50e-44a1-a6f4-f616322262ea").is_ok());
        for bad in ["", ".", "..", "a/b", "a?b", "a%2Fb", "a b", "é"] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }
}
