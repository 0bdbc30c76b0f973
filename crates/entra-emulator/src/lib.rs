//! A local stand-in for Microsoft Entra sign-in and the Microsoft Graph approval APIs, for
//! tests of a Graph client and for trying the console without a tenant.
//!
//! One HTTP server (HTTPS with a CA made at start, or plain HTTP) answers both hosts:
//! the login host (`/{tenant}/oauth2/v2.0/devicecode`, `…/token`, OpenID discovery, JWKS) and
//! Graph (`/v1.0/…`, `/beta/…`): PIM role and group approvals, access-package approvals, and
//! the lookups that give them names. Wire shapes follow `shared/reference/entra-graph.md`.
//! Tests drive it through [`Emulator`]: seed requests, finish device sign-ins as a person
//! would in the browser, inject faults per path, and read back every decision and call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), entra_emulator::EmulatorError> {
//! use entra_emulator::{Emulator, EmulatorConfig, Fault, RequestSeed, demo};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! let id = emu.seed(RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN).approvers(&[demo::ADELE]))?;
//! emu.set_page_size(1);
//! emu.inject(Fault::throttle("filterByCurrentUser", Some("2")).times(2));
//! let token = emu.access_token(demo::ADELE, "https://graph.microsoft.com/.default")?;
//! // … the client under test lists, pages, retries and PATCHes the step …
//! assert!(emu.decisions().iter().any(|d| d.approval_id == id));
//! # let _ = token; Ok(()) }
//! ```

mod clock;
mod control;
mod devicelogin;
mod directory;
mod errors;
mod faults;
mod graph;
mod keys;
mod login;
mod requests;
mod state;
mod tls;
mod tokens;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use chrono::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::EmulatorClock;
pub use directory::{
    AccessPackage, ApiApp, Directory, GRAPH_APP_ID, GRAPH_RESOURCE, Group, RoleDefinition, User,
    demo,
};
pub use faults::{Fault, FaultKind, RecordedCall};
pub use requests::{
    PimRequest, RequestKind, RequestSeed, RequestStatus, ReviewResult, StageStatus,
};
pub use state::{RecordedDecision, SecondDecision};

use state::{App, DeviceStatus, Settings, World};

/// Why the emulator could not start or do what it was told.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("signing key: {0}")]
    Key(String),
    #[error("{0}")]
    Control(String),
}

/// How to start an emulator. `Default` is HTTPS on `127.0.0.1:0` with the demo directory, the
/// wall clock, pages of 100 and the documented 409 on a second decision.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub bind: SocketAddr,
    /// Serve HTTPS with a fresh CA (otherwise plain HTTP).
    pub tls: bool,
    /// The host name in URLs and the certificate (default: the bound IP address).
    pub public_host: Option<String>,
    pub directory: Directory,
    pub clock: EmulatorClock,
    pub page_size: usize,
    pub access_token_seconds: i64,
    pub device_code_seconds: i64,
    pub poll_interval_seconds: i64,
    pub enforce_poll_interval: bool,
    /// Approve every device code at once as this user id.
    pub auto_approve: Option<String>,
    pub second_decision: SecondDecision,
    /// What a request becomes when its 24 hours pass (undocumented in Graph).
    pub expired_status: RequestStatus,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            public_host: None,
            directory: Directory::demo(),
            clock: EmulatorClock::system(),
            page_size: 100,
            access_token_seconds: 3599,
            device_code_seconds: 900,
            poll_interval_seconds: 5,
            enforce_poll_interval: true,
            auto_approve: None,
            second_decision: SecondDecision::Conflict,
            expired_status: RequestStatus::Canceled,
        }
    }
}

impl EmulatorConfig {
    /// Plain HTTP instead of HTTPS.
    pub fn plain_http(mut self) -> Self {
        self.tls = false;
        self
    }

    pub fn with_clock(mut self, clock: EmulatorClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = directory;
        self
    }
}

/// A running emulator and its control API. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    app: App,
    addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn router(app: App) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/devicecode", post(login::devicecode))
        .route("/{tenant}/oauth2/v2.0/token", post(login::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(login::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(login::keys))
        .route(
            "/devicelogin",
            get(devicelogin::page).post(devicelogin::submit),
        )
        .route("/v1.0/{*rest}", axum::routing::any(graph::dispatch))
        .route("/beta/{*rest}", axum::routing::any(graph::dispatch))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            faults::edge,
        ))
        .with_state(app)
}

impl Emulator {
    /// Binds, generates the signing key (and the CA), and serves in a background task.
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let host = config
            .public_host
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        let scheme = if config.tls { "https" } else { "http" };
        let settings = Settings {
            base_url: format!("{scheme}://{host}:{}", addr.port()),
            access_token_seconds: config.access_token_seconds,
            device_code_seconds: config.device_code_seconds,
            poll_interval_seconds: config.poll_interval_seconds,
            enforce_poll_interval: config.enforce_poll_interval,
            auto_approve: config.auto_approve.clone(),
        };
        let keys = tokio::task::spawn_blocking(keys::KeySet::generate)
            .await
            .map_err(|e| EmulatorError::Key(e.to_string()))??;
        let world = World {
            directory: config.directory,
            keys,
            requests: Vec::new(),
            device_codes: Vec::new(),
            refresh_tokens: Default::default(),
            faults: Vec::new(),
            decisions: Vec::new(),
            calls: Vec::new(),
            page_tokens: Default::default(),
            page_size: config.page_size.max(1),
            second_decision: config.second_decision,
            expired_status: config.expired_status,
        };
        let app = App::new(settings, config.clock, world);
        let service = router(app.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let stop = async move {
            let _ = rx.await;
        };
        let (task, ca_pem) = if config.tls {
            let mut names = vec![host.clone(), "localhost".to_owned(), "127.0.0.1".to_owned()];
            names.dedup();
            let tls = tls::Tls::generate(&names)?;
            let listener = tls::TlsListener::new(listener, tls.config)?;
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, service)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "emulator stopped");
                }
            });
            (task, Some(tls.ca_pem))
        } else {
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, service)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "emulator stopped");
                }
            });
            (task, None)
        };
        Ok(Self {
            app,
            addr,
            ca_pem,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Stops accepting and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`: the authority host and the Graph base URL alike.
    pub fn base_url(&self) -> &str {
        &self.app.settings().base_url
    }

    /// The CA that signed the server certificate, PEM (`None` over plain HTTP).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn tenant_id(&self) -> String {
        self.app.world().directory.tenant_id.clone()
    }

    /// The public client (the console) allowed to use the device flow.
    pub fn client_id(&self) -> String {
        self.app.world().directory.public_client_id.clone()
    }

    /// The `iss` of every token: `{base}/{tid}/v2.0`.
    pub fn issuer(&self) -> String {
        self.app.issuer(&self.tenant_id())
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/discovery/v2.0/keys",
            self.base_url(),
            self.tenant_id()
        )
    }

    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url(), self.tenant_id())
    }

    pub fn device_code_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/devicecode",
            self.base_url(),
            self.tenant_id()
        )
    }

    pub fn clock(&self) -> &EmulatorClock {
        self.app.clock()
    }

    /// Moves a manual clock (see [`EmulatorClock::manual`]); false for other clocks.
    pub fn advance(&self, by: Duration) -> bool {
        self.app.clock().advance(by)
    }

    // --- the person's browser step ---

    /// Approves a pending device sign-in as `user_id`, as the person would on the sign-in page.
    pub fn approve_device_code(&self, user_code: &str, user_id: &str) -> Result<(), EmulatorError> {
        devicelogin::settle(&self.app, user_code, Some(user_id)).map_err(EmulatorError::Control)
    }

    /// Declines a pending device sign-in (the next poll gets `authorization_declined`).
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), EmulatorError> {
        devicelogin::settle(&self.app, user_code, None).map_err(EmulatorError::Control)
    }

    /// User codes of the sign-ins still waiting for their person.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let world = self.app.world();
        world
            .device_codes
            .iter()
            .filter(|d| d.status == DeviceStatus::Pending)
            .map(|d| d.user_code.clone())
            .collect()
    }

    // --- tokens ---

    /// An access token for `user_id` for the resource `scope` names, without a device flow.
    pub fn access_token(&self, user_id: &str, scope: &str) -> Result<String, EmulatorError> {
        let now = self.app.now();
        let issuer = self.issuer();
        let lifetime = self.app.settings().access_token_seconds;
        let mut world = self.app.world();
        let client_id = world.directory.public_client_id.clone();
        let grant = tokens::parse_scope(&world.directory, scope)
            .map_err(|e| EmulatorError::Control(e.text))?;
        let minting = tokens::Minting {
            issuer: &issuer,
            now,
            lifetime_seconds: lifetime,
        };
        let body = tokens::mint(&mut world, minting, user_id, &client_id, &grant, false)?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| EmulatorError::Key("no access token minted".into()))
    }

    /// Signs arbitrary claims with the current key (its `kid` in the header): for tokens a
    /// real tenant would never issue (wrong `tid`, wrong `aud`, expired) but signed properly.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> Result<String, EmulatorError> {
        let world = self.app.world();
        let key = world
            .keys
            .current()
            .ok_or_else(|| EmulatorError::Key("no signing key".into()))?;
        key.sign(claims)
    }

    /// Signs `claims` with the current key but names `kid` in the header: a token from
    /// another key (this emulator's) passing itself off as one of another tenant's keys.
    pub fn sign_claims_as(
        &self,
        kid: &str,
        claims: &serde_json::Value,
    ) -> Result<String, EmulatorError> {
        let world = self.app.world();
        let key = world
            .keys
            .current()
            .ok_or_else(|| EmulatorError::Key("no signing key".into()))?;
        key.sign_as(kid, claims)
    }

    /// The `kid` tokens are signed with now.
    pub fn current_kid(&self) -> Option<String> {
        self.app.world().keys.current().map(|k| k.kid.clone())
    }

    /// Adds a signing key and signs with it from now on (the old one stays published).
    pub fn rotate_signing_key(&self) -> Result<String, EmulatorError> {
        let mut world = self.app.world();
        world.keys.rotate()
    }

    /// Stops publishing every key but the current one.
    pub fn retire_old_keys(&self) {
        self.app.world().keys.retire_old();
    }

    /// Revokes every refresh token of `user_id` (the next refresh gets `invalid_grant`).
    pub fn revoke_sign_in_sessions(&self, user_id: &str) {
        for grant in self.app.world().refresh_tokens.values_mut() {
            if grant.user_id.eq_ignore_ascii_case(user_id) {
                grant.revoked = true;
            }
        }
    }
}
