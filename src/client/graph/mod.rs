//! A Microsoft Graph client worth trusting (entra-graph.md §8): rustls with the configured CA,
//! a timeout on every call, a `client-request-id` on every call and Graph's `request-id` in
//! every error, 429/503/504 retried honouring `Retry-After` with a capped jittered backoff,
//! `@odata.nextLink` always followed (on Graph's own host only, with a page cap and a loop
//! guard), answers read up to a size limit, and typed decoding whose failures are errors,
//! never panics. The sleep between retries is injected, so tests never wait.

mod approvals;
mod decide;
mod error;
pub mod model;
mod names;
mod retry;
mod source;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
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

/// One collection page.
#[derive(serde::Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A 2xx answer's body.
struct Reply {
    status: u16,
    bytes: Vec<u8>,
    ids: CallIds,
    retries: u32,
}

/// One failed try: the error, the wait Graph named, whether sending again is safe.
struct Failed {
    error: GraphError,
    retry_after: Option<Duration>,
    again: bool,
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

/// A page's identity for the loop guard: the decoded path and the decoded, sorted query.
fn page_key(url: &Url) -> String {
    let path: String = url::form_urlencoded::parse(url.path().as_bytes())
        .map(|(k, v)| format!("{k}{v}"))
        .collect();
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    query.sort();
    format!("{path}?{query:?}")
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

    /// One try: send, read at most `max_body_bytes`, and sort the answer.
    async fn try_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        ids: &CallIds,
        idempotent: bool,
    ) -> Result<Reply, Failed> {
        let inner = &self.inner;
        let fail = |error: GraphError, again: bool| Failed {
            error,
            retry_after: None,
            again,
        };
        let token = inner
            .auth
            .bearer()
            .await
            .map_err(|e| fail(GraphError::Token(e), false))?;
        let mut request = inner
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token)
            .header("client-request-id", &ids.client_request_id)
            .header("return-client-request-id", "true")
            .header(ACCEPT, "application/json")
            .timeout(inner.options.timeout);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let transport = |e: reqwest::Error, ids: &CallIds| {
            // Sent again only when nothing can have reached Graph, or when asking twice is
            // harmless (a read).
            let again = idempotent || e.is_connect();
            if e.is_timeout() {
                fail(
                    GraphError::Timeout {
                        timeout: inner.options.timeout,
                        ids: ids.clone(),
                    },
                    again,
                )
            } else {
                fail(
                    GraphError::Network {
                        message: e.to_string(),
                        ids: ids.clone(),
                    },
                    again,
                )
            }
        };
        let mut response = request.send().await.map_err(|e| transport(e, ids))?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ids = CallIds {
            request_id: header("request-id"),
            client_request_id: ids.client_request_id.clone(),
        };
        let retry_after =
            header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(&v, inner.clock.now()));
        let limit = inner.options.max_body_bytes;
        let too_large = |ids: &CallIds| {
            fail(
                GraphError::TooLarge {
                    limit,
                    ids: ids.clone(),
                },
                false,
            )
        };
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large(&ids));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(e, &ids))? {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(&ids));
            }
            bytes.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            return Ok(Reply {
                status,
                bytes,
                ids,
                retries: 0,
            });
        }
        // A throttled or unavailable change was not made; a gateway timeout may have been.
        let again = is_retryable(status) && (idempotent || status != 504);
        Err(Failed {
            error: api_error(status, &bytes, ids, retry_after),
            retry_after,
            again,
        })
    }

    /// Sends until an answer that is not worth retrying, within the retry policy.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        idempotent: bool,
    ) -> Result<Reply, GraphError> {
        let policy = &self.inner.options.retry;
        let ids = CallIds {
            request_id: None,
            client_request_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut waited = Duration::ZERO;
        let mut retries = 0u32;
        loop {
            let failed = match self.try_once(&method, url, body, &ids, idempotent).await {
                Ok(reply) => return Ok(Reply { retries, ..reply }),
                Err(failed) => failed,
            };
            if !failed.again || retries + 1 >= policy.max_attempts {
                return Err(failed.error);
            }
            let Some(wait) = delay(policy, retries, failed.retry_after, rand::random::<f64>())
            else {
                return Err(failed.error);
            };
            if waited + wait > policy.max_total_wait {
                return Err(failed.error);
            }
            tracing::debug!(
                error = %failed.error,
                wait_ms = wait.as_millis() as u64,
                "Graph call retried"
            );
            (self.inner.sleep)(wait).await;
            waited += wait;
            retries += 1;
        }
    }

    /// `GET`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<Answer<T>, GraphError> {
        let reply = self.send(Method::GET, &url, None, true).await?;
        Ok(Answer {
            value: decode(&reply.bytes, &reply.ids)?,
            ids: reply.ids,
        })
    }

    /// Every item of a collection: `@odata.nextLink` followed to the end, on Graph's own host,
    /// never back to a page already read, at most `max_pages` pages.
    pub async fn list<T: DeserializeOwned>(&self, url: Url) -> Result<Listed<T>, GraphError> {
        let mut seen = HashSet::from([page_key(&url)]);
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(url);
        let mut ids = CallIds::default();
        while let Some(url) = next.take() {
            if pages >= self.inner.options.max_pages {
                return Err(GraphError::TooManyPages {
                    limit: self.inner.options.max_pages,
                    ids,
                });
            }
            let page: Answer<Page<T>> = self.get(url.clone()).await?;
            pages += 1;
            items.extend(page.value.value);
            ids = page.ids;
            if let Some(link) = page.value.next_link {
                let link = match url.join(&link) {
                    Ok(l) if self.same_origin(&l) => l,
                    _ => return Err(GraphError::ForeignLink { link, ids }),
                };
                if !seen.insert(page_key(&link)) {
                    return Err(GraphError::NextLinkLoop { page: pages, ids });
                }
                next = Some(link);
            }
        }
        Ok(Listed { items, pages, ids })
    }

    fn same_origin(&self, url: &Url) -> bool {
        let base = &self.inner.base;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    /// `PATCH` with a JSON body; done only on a 2xx. Throttled (429) and unavailable (503)
    /// answers are retried (the change was not made); a gateway timeout or a lost connection
    /// is not (it may have been).
    pub async fn patch<B: Serialize + ?Sized>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<Ack, GraphError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| GraphError::Usage(format!("the request body: {e}")))?;
        let reply = self.send(Method::PATCH, &url, Some(&bytes), false).await?;
        Ok(Ack {
            status: reply.status,
            ids: reply.ids,
            retries: reply.retries,
        })
    }
}

/// Graph's error answer: its code and message, and the request id from the header or, failing
/// that, from `innerError`.
fn api_error(
    status: u16,
    bytes: &[u8],
    mut ids: CallIds,
    retry_after: Option<Duration>,
) -> GraphError {
    let body: Option<error::ErrorBody> = serde_json::from_slice(bytes).ok();
    let detail = body.map(|b| b.error).unwrap_or_default();
    if ids.request_id.is_none() {
        ids.request_id = detail.inner_error.and_then(|i| i.request_id);
    }
    GraphError::Api {
        status,
        code: detail
            .code
            .unwrap_or_else(|| format!("http{status}"))
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect(),
        message: crate::domain::text::sanitize_preview(
            detail.message.as_deref().unwrap_or("(no Graph error body)"),
        ),
        retry_after,
        ids,
    }
}

/// A 2xx body as `T`; a body that is not JSON and one missing a field say which.
fn decode<T: DeserializeOwned>(bytes: &[u8], ids: &CallIds) -> Result<T, GraphError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(_) if bytes.is_empty() => "an empty body".to_owned(),
            Err(syntax) => format!("not JSON ({syntax})"),
            Ok(_) => format!("{e}"),
        };
        GraphError::BadAnswer {
            detail,
            ids: ids.clone(),
        }
    })
}

#[cfg(test)]
mod tests;
