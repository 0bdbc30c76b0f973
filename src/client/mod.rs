//! The typed HTTP client of the governance server, shared by the console, `agent-cli`, the
//! benchmarks and the tests, so every caller speaks the same wire types as the server; and the
//! sponsor's side of it: device-flow sign-in and the session kept between runs.

pub mod agent_key;
pub mod checkpoint;
pub mod entra;
mod events;
pub mod graph;
pub mod login;
mod oauth;
pub mod session;

pub use events::EventStream;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::client::agent_key::AgentKey;
use crate::clock::SharedClock;
use crate::protocol::actions::{Action, ActionDecisionBody, ActionList, ActionQuery};
use crate::protocol::agents::{Agent, AgentList, Me, RegisterAgent};
use crate::protocol::audit::{AuditEvent, AuditPage, StateReport, VerifyReport};
use crate::protocol::entra::{EntraDecisionBody, EntraDecisionRecorded};
use crate::protocol::error::ErrorBody;
use crate::protocol::oauth::OAuthError;
use crate::protocol::query::{
    AgentQuery, AuditQuery, GrantQuery, ListScope, RequestQuery, VerifyQuery, WaitQuery,
};
use crate::protocol::requests::{
    DecisionBody, DelegationBody, ElevationBody, Grant, GrantList, ReasonBody, Request,
    RequestList, SuspendAllBody, SuspendBody, Suspension, TrustReport,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// A `/v1` error in the DESIGN §4 shape.
    #[error("{status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// An RFC 6749 error from an OAuth endpoint.
    #[error("{status}: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuth {
        status: StatusCode,
        error: String,
        description: Option<String>,
    },
    #[error("unexpected answer ({status}): {detail}")]
    Unexpected { status: StatusCode, detail: String },
    #[error("invalid server URL: {0}")]
    Url(String),
    /// A client assertion or DPoP proof could not be signed.
    #[error("signing: {0}")]
    Signing(String),
}

impl ClientError {
    /// The API or OAuth error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            ClientError::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. }
            | ClientError::OAuth { status, .. }
            | ClientError::Unexpected { status, .. } => Some(*status),
            ClientError::Http(e) => e.status(),
            ClientError::Url(_) | ClientError::Signing(_) => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A reqwest client with the settings every caller wants: timeouts, no redirects (a token
/// must never follow a redirect to another host), rustls.
pub fn http_client() -> ClientResult<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("sponsor-console/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Client of one governance server, optionally holding an access token: a bearer token, or a
/// DPoP-bound one with the key it is bound to.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    bound: Option<Bound>,
}

/// The key a DPoP-bound token is bound to, and the clock its proofs are dated by.
#[derive(Clone)]
struct Bound {
    key: AgentKey,
    clock: SharedClock,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("dpop", &self.bound.is_some())
            .finish()
    }
}

/// Parses and normalises a server base URL (no trailing slash, http or https only).
pub fn parse_base(server: &str) -> ClientResult<Url> {
    let url = Url::parse(server.trim_end_matches('/'))
        .map_err(|e| ClientError::Url(format!("{server}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::Url(format!(
            "{server}: expected an http:// or https:// URL"
        )));
    }
    Ok(url)
}

impl ApiClient {
    pub fn new(server: &str) -> ClientResult<Self> {
        Ok(Self {
            http: http_client()?,
            base: parse_base(server)?,
            token: None,
            bound: None,
        })
    }

    /// A client sharing this one's connection pool with a bearer token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token.into()),
            bound: None,
        }
    }

    /// A client sharing this one's connection pool with a DPoP-bound token (RFC 9449): every
    /// request sends it as `Authorization: DPoP` with a fresh proof signed by `key`, dated by
    /// `clock`.
    pub fn with_dpop_token(
        &self,
        token: impl Into<String>,
        key: &AgentKey,
        clock: SharedClock,
    ) -> Self {
        Self {
            bound: Some(Bound {
                key: key.clone(),
                clock,
            }),
            ..self.with_token(token)
        }
    }

    /// A client for `tokens` as the token endpoint answered: bound to `key` when their
    /// `token_type` is DPoP, else a bearer token.
    pub fn with_tokens(
        &self,
        tokens: &crate::protocol::oauth::TokenResponse,
        key: &AgentKey,
        clock: SharedClock,
    ) -> Self {
        if tokens
            .token_type
            .eq_ignore_ascii_case(crate::protocol::dpop::DPOP)
        {
            self.with_dpop_token(&tokens.access_token, key, clock)
        } else {
            self.with_token(&tokens.access_token)
        }
    }

    /// A client sharing this one's connection pool, without a token.
    pub fn anonymous(&self) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: None,
            bound: None,
        }
    }

    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn token_endpoint(&self) -> String {
        self.url("/oauth2/token")
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = self.url(path);
        let builder = self.http.request(method.clone(), &url);
        self.authorized(builder, &method, &url)
    }

    /// `builder` with this client's token: as a bearer token, or under the DPoP scheme with a
    /// proof for this one request.
    fn authorized(&self, builder: RequestBuilder, method: &Method, url: &str) -> RequestBuilder {
        let Some(token) = &self.token else {
            return builder;
        };
        let Some(bound) = &self.bound else {
            return builder.bearer_auth(token);
        };
        let builder = builder.header(reqwest::header::AUTHORIZATION, format!("DPoP {token}"));
        // A proof that cannot be signed is left out: the server then refuses the request.
        match bound
            .key
            .dpop_proof(method.as_str(), url, Some(token), bound.clock.now())
        {
            Ok(proof) => builder.header(crate::protocol::dpop::DPOP, proof),
            Err(e) => {
                tracing::warn!(error = %e, "could not sign a DPoP proof");
                builder
            }
        }
    }

    async fn api<T: DeserializeOwned>(builder: RequestBuilder) -> ClientResult<T> {
        let response = builder.send().await?;
        decode_api(response).await
    }

    // /v1.
    pub async fn me(&self) -> ClientResult<Me> {
        Self::api(self.request(Method::GET, "/v1/me")).await
    }

    pub async fn register_agent(
        &self,
        body: &RegisterAgent,
        idempotency_key: Option<&str>,
    ) -> ClientResult<Agent> {
        let mut builder = self.request(Method::POST, "/v1/agents").json(body);
        if let Some(key) = idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        Self::api(builder).await
    }

    /// My agents, or with `all` every agent (security leads and admins).
    pub async fn agents(&self, all: bool) -> ClientResult<Vec<Agent>> {
        let query = AgentQuery {
            scope: all.then_some(ListScope::All),
        };
        let list: AgentList =
            Self::api(self.request(Method::GET, "/v1/agents").query(&query)).await?;
        Ok(list.agents)
    }

    pub async fn agent(&self, did: &str) -> ClientResult<Agent> {
        let path = format!("/v1/agents/{}", urlencode(did));
        Self::api(self.request(Method::GET, &path)).await
    }

    pub async fn audit_page(&self, after: i64, limit: u32) -> ClientResult<AuditPage> {
        let query = AuditQuery {
            after: Some(after),
            limit: Some(limit),
            tail: None,
        };
        Self::api(self.request(Method::GET, "/v1/audit").query(&query)).await
    }

    /// The newest `n` audit events visible to the caller, oldest first.
    pub async fn audit_tail(&self, n: u32) -> ClientResult<Vec<AuditEvent>> {
        let query = AuditQuery {
            tail: Some(n),
            ..AuditQuery::default()
        };
        let page: AuditPage =
            Self::api(self.request(Method::GET, "/v1/audit").query(&query)).await?;
        Ok(page.events)
    }

    /// Verifies the chain; with `at`, also asks what the chain holds at that `seq`.
    pub async fn audit_verify(&self, at: Option<i64>) -> ClientResult<VerifyReport> {
        let query = VerifyQuery { at };
        Self::api(self.request(Method::GET, "/v1/audit/verify").query(&query)).await
    }

    /// The server's last check that its tables hold what the chain records.
    pub async fn audit_state(&self) -> ClientResult<StateReport> {
        Self::api(self.request(Method::GET, "/v1/audit/state")).await
    }

    /// Has the server check now that its tables hold what the chain records.
    pub async fn check_audit_state(&self) -> ClientResult<StateReport> {
        Self::api(self.request(Method::POST, "/v1/audit/state")).await
    }

    /// The whole chain from `/v1/audit/export`, parsed line by line.
    pub async fn audit_export(&self) -> ClientResult<Vec<AuditEvent>> {
        let response = self.request(Method::GET, "/v1/audit/export").send().await?;
        let status = response.status();
        if !status.is_success() {
            return decode_api(response).await;
        }
        let body = response.text().await?;
        body.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| ClientError::Unexpected {
                    status,
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    // Requests.
    pub async fn request_elevation(
        &self,
        body: &ElevationBody,
        idempotency_key: Option<&str>,
    ) -> ClientResult<Request> {
        let mut builder = self
            .request(Method::POST, "/v1/requests/elevation")
            .json(body);
        if let Some(key) = idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        Self::api(builder).await
    }

    pub async fn request_delegation(
        &self,
        body: &DelegationBody,
        idempotency_key: Option<&str>,
    ) -> ClientResult<Request> {
        let mut builder = self
            .request(Method::POST, "/v1/requests/delegation")
            .json(body);
        if let Some(key) = idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        Self::api(builder).await
    }

    /// One page of the requests visible to the caller.
    pub async fn request_page(&self, query: &RequestQuery) -> ClientResult<RequestList> {
        Self::api(self.request(Method::GET, "/v1/requests").query(query)).await
    }

    /// The requests visible to the caller that `query` selects (one page).
    pub async fn requests(&self, query: &RequestQuery) -> ClientResult<Vec<Request>> {
        Ok(self.request_page(query).await?.requests)
    }

    /// Every request `query` selects, following the `next` cursor page by page (pending
    /// lists page; others come in one page of `query.limit`).
    pub async fn all_requests(&self, mut query: RequestQuery) -> ClientResult<Vec<Request>> {
        let mut out = Vec::new();
        loop {
            let list = self.request_page(&query).await?;
            out.extend(list.requests);
            match list.next {
                Some(next) => query.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Every pending request visible to the caller, page by page (soonest to expire first).
    pub async fn all_pending(&self, page: u32) -> ClientResult<Vec<Request>> {
        self.all_requests(RequestQuery::pending(page, None)).await
    }

    pub async fn get_request(&self, id: &str) -> ClientResult<Request> {
        Self::api(self.request(Method::GET, &format!("/v1/requests/{}", urlencode(id)))).await
    }

    pub async fn decide(&self, id: &str, body: &DecisionBody) -> ClientResult<Request> {
        let path = format!("/v1/requests/{}/decision", urlencode(id));
        Self::api(self.request(Method::POST, &path).json(body)).await
    }

    pub async fn cancel_request(&self, id: &str, reason: &str) -> ClientResult<Request> {
        let path = format!("/v1/requests/{}/cancel", urlencode(id));
        Self::api(self.request(Method::POST, &path).json(&ReasonBody {
            reason: reason.into(),
        }))
        .await
    }

    /// Long-polls until the request is decided or `timeout_seconds` pass.
    pub async fn wait_request(&self, id: &str, timeout_seconds: u64) -> ClientResult<Request> {
        let path = format!("/v1/requests/{}/wait", urlencode(id));
        let query = WaitQuery {
            timeout: Some(timeout_seconds),
        };
        Self::api(
            self.request(Method::GET, &path)
                .query(&query)
                .timeout(Duration::from_secs(timeout_seconds + 30)),
        )
        .await
    }

    // Action requests (AGT approvals).
    /// One page of the action requests visible to the caller.
    pub async fn action_page(&self, query: &ActionQuery) -> ClientResult<ActionList> {
        Self::api(self.request(Method::GET, "/v1/actions").query(query)).await
    }

    /// Every action request `query` selects, following the `next` cursor page by page.
    pub async fn all_actions(&self, mut query: ActionQuery) -> ClientResult<Vec<Action>> {
        let mut out = Vec::new();
        loop {
            let list = self.action_page(&query).await?;
            out.extend(list.actions);
            match list.next {
                Some(next) => query.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    pub async fn get_action(&self, id: &str) -> ClientResult<Action> {
        Self::api(self.request(Method::GET, &format!("/v1/actions/{}", urlencode(id)))).await
    }

    /// Approves or denies an action request; the held webhook call is answered.
    pub async fn decide_action(&self, id: &str, body: &ActionDecisionBody) -> ClientResult<Action> {
        let path = format!("/v1/actions/{}/decision", urlencode(id));
        Self::api(self.request(Method::POST, &path).json(body)).await
    }

    // Grants.
    pub async fn grants(&self, query: &GrantQuery) -> ClientResult<Vec<Grant>> {
        let list: GrantList =
            Self::api(self.request(Method::GET, "/v1/grants").query(query)).await?;
        Ok(list.grants)
    }

    pub async fn revoke_grant(&self, id: &str, reason: &str) -> ClientResult<Suspension> {
        let path = format!("/v1/grants/{}/revoke", urlencode(id));
        Self::api(self.request(Method::POST, &path).json(&ReasonBody {
            reason: reason.into(),
        }))
        .await
    }

    // Kill switch and trust.
    pub async fn suspend(
        &self,
        did: &str,
        reason: &str,
        security: bool,
    ) -> ClientResult<Suspension> {
        let path = format!("/v1/agents/{}/suspend", urlencode(did));
        let body = SuspendBody {
            reason: reason.into(),
            security,
        };
        Self::api(self.request(Method::POST, &path).json(&body)).await
    }

    pub async fn suspend_all(&self, body: &SuspendAllBody) -> ClientResult<Suspension> {
        Self::api(self.request(Method::POST, "/v1/agents/suspend").json(body)).await
    }

    pub async fn reactivate(&self, did: &str, reason: &str) -> ClientResult<Agent> {
        let path = format!("/v1/agents/{}/reactivate", urlencode(did));
        Self::api(self.request(Method::POST, &path).json(&ReasonBody {
            reason: reason.into(),
        }))
        .await
    }

    pub async fn revoke_agent(&self, did: &str, reason: &str) -> ClientResult<Suspension> {
        let path = format!("/v1/agents/{}/revoke", urlencode(did));
        Self::api(self.request(Method::POST, &path).json(&ReasonBody {
            reason: reason.into(),
        }))
        .await
    }

    pub async fn trust(&self, did: &str) -> ClientResult<TrustReport> {
        let path = format!("/v1/agents/{}/trust", urlencode(did));
        Self::api(self.request(Method::GET, &path)).await
    }

    /// Opens `/v1/events`, resuming after `last_event_id` when given.
    pub async fn events(&self, last_event_id: Option<i64>) -> ClientResult<EventStream> {
        let url = self.url("/v1/events");
        let builder = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(60 * 60 * 24 * 365));
        let mut builder = self.authorized(builder, &Method::GET, &url);
        if let Some(id) = last_event_id {
            builder = builder.header("Last-Event-ID", id.to_string());
        }
        let response = builder.send().await?;
        if !response.status().is_success() {
            let never: ClientResult<serde_json::Value> = decode_api(response).await;
            return Err(never.err().unwrap_or(ClientError::Unexpected {
                status: StatusCode::OK,
                detail: "the event stream did not open".into(),
            }));
        }
        Ok(EventStream::from_response(response))
    }

    /// Records a decision made in Microsoft Entra in the audit chain (`POST /v1/entra/decisions`).
    pub async fn record_entra_decision(
        &self,
        body: &EntraDecisionBody,
    ) -> ClientResult<EntraDecisionRecorded> {
        Self::api(self.request(Method::POST, "/v1/entra/decisions").json(body)).await
    }

    /// A raw request for callers that need the response itself (tests, diagnostics).
    pub fn raw(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path)
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn unexpected(status: StatusCode, bytes: &[u8]) -> ClientError {
    let mut detail = String::from_utf8_lossy(bytes).into_owned();
    detail.truncate(200);
    ClientError::Unexpected { status, detail }
}

/// Decodes an answer: the body on success; otherwise the error, in the DESIGN §4 shape of `/v1`
/// or the RFC 6749 shape of the OAuth endpoints, whichever the body is.
pub async fn decode_api<T: DeserializeOwned>(response: Response) -> ClientResult<T> {
    let status = response.status();
    let bytes = response.bytes().await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            status,
            detail: e.to_string(),
        });
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
        return Err(ClientError::Api {
            status,
            code: body.error.code,
            message: body.error.message,
        });
    }
    match serde_json::from_slice::<OAuthError>(&bytes) {
        Ok(err) => Err(ClientError::OAuth {
            status,
            error: err.error,
            description: err.error_description,
        }),
        Err(_) => Err(unexpected(status, &bytes)),
    }
}
