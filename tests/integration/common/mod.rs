//! A real governance server on 127.0.0.1:0 with a manual clock and a fresh database, plus the
//! steps a human takes in the browser, done over HTTP.

pub mod entra;
pub mod postgres;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use reqwest::StatusCode;
use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::clock::ManualClock;
use sponsor_console::protocol::agents::{Agent, RegisterAgent};
use sponsor_console::server::passwords::hash_password;
use sponsor_console::server::store::{SqliteStore, Store};
use sponsor_console::server::{RunningServer, start, start_with_store};
use sponsor_console::settings::{ServerSettings, SponsorSettings};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;

pub const CLIENT_ID: &str = "sponsor-console";
pub const PASSWORD: &str = "correct horse battery staple";

/// Test accounts: (username, roles).
pub const ACCOUNTS: &[(&str, &[&str])] = &[
    ("alice", &["sponsor"]),
    ("bob", &["sponsor"]),
    ("sam", &["security-lead"]),
    ("otto", &["on-call"]),
];

pub struct TestServer {
    pub server: RunningServer,
    pub clock: Arc<ManualClock>,
    pub client: ApiClient,
    pub db: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn settings() -> ServerSettings {
    let hash = hash_password(PASSWORD).unwrap_or_default();
    let sponsors = ACCOUNTS
        .iter()
        .map(|(name, roles)| SponsorSettings {
            username: (*name).to_owned(),
            display_name: format!("{name} (test)"),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            password_hash: hash.clone(),
        })
        .collect();
    ServerSettings {
        sponsors,
        ..ServerSettings::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(settings()).await
    }

    pub async fn start_with(settings: ServerSettings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("governance.db");
        Self::start_at(settings, dir, db).await
    }

    pub async fn start_at(settings: ServerSettings, dir: tempfile::TempDir, db: PathBuf) -> Self {
        let store = SqliteStore::open(&db).await.expect("the store opens");
        Self::start_on(settings, Arc::new(store), dir, db).await
    }

    /// A server on a store the test opened itself (and may keep a handle to).
    pub async fn start_on(
        settings: ServerSettings,
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
        db: PathBuf,
    ) -> Self {
        let start_at = Utc
            .with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap_or_default();
        let clock = Arc::new(ManualClock::new(start_at));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = start_with_store(settings, store, listener, clock.clone())
            .await
            .expect("start");
        let client = ApiClient::new(&server.base_url()).expect("the server URL parses");
        Self {
            server,
            clock,
            client,
            db,
            _dir: dir,
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
    }

    /// Signs `username` in through the whole device flow and returns the token response.
    pub async fn sign_in(&self, username: &str) -> sponsor_console::protocol::oauth::TokenResponse {
        sign_in(&self.client, username).await
    }

    /// An API client holding `username`'s access token.
    pub async fn as_user(&self, username: &str) -> ApiClient {
        let token = self.sign_in(username).await.access_token;
        self.client.with_token(token)
    }

    /// Registers a fresh agent for `sponsor` with `capabilities`.
    pub async fn agent(
        &self,
        sponsor: &ApiClient,
        name: &str,
        capabilities: &[&str],
    ) -> (AgentKey, Agent) {
        register(sponsor, name, capabilities).await
    }

    /// A fresh client assertion for `key`, valid for a minute on the server's clock.
    pub fn assertion(&self, key: &AgentKey) -> String {
        key.assertion(
            &self.client.token_endpoint(),
            self.clock_now(),
            Duration::seconds(60),
        )
        .expect("assertion")
    }

    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use sponsor_console::clock::Clock;
        self.clock.now()
    }
}

/// Registers a fresh agent for `sponsor` with `capabilities`, on any server.
pub async fn register(sponsor: &ApiClient, name: &str, capabilities: &[&str]) -> (AgentKey, Agent) {
    let key = AgentKey::generate();
    let agent = sponsor
        .register_agent(
            &RegisterAgent {
                public_key: key.public_key(),
                name: name.to_owned(),
                capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
                entra_object_id: None,
                model: Some("gpt-test".into()),
                runtime: Some("pytest".into()),
            },
            None,
        )
        .await
        .expect("register");
    (key, agent)
}

/// A client holding `key`'s agent token from `client`'s server, on a server with the real
/// clock.
pub async fn as_agent(client: &ApiClient, key: &AgentKey) -> ApiClient {
    let assertion = key
        .assertion(&client.token_endpoint(), Utc::now(), Duration::seconds(60))
        .expect("assertion");
    let token = client
        .client_credentials(&assertion, None)
        .await
        .expect("agent token");
    client.with_token(token.access_token)
}

/// What the browser ended on.
#[derive(Debug)]
pub struct BrowserOutcome {
    pub status: StatusCode,
    pub body: String,
}

pub fn hidden(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

pub fn csrf_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("device_csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The human's steps on `/device`: open the page, enter code and password, then `decision`
/// (`approve` or `deny`). Stops at the first page that is not the next step.
pub async fn browser(
    client: &ApiClient,
    user_code: &str,
    username: &str,
    password: &str,
    decision: &str,
) -> BrowserOutcome {
    let http = client.http();
    let page = http
        .get(client.url(&format!("/device?user_code={user_code}")))
        .send()
        .await
        .expect("GET /device");
    let cookie = csrf_cookie(&page).unwrap_or_default();
    let body = page.text().await.unwrap_or_default();
    let csrf = hidden(&body, "csrf").unwrap_or_default();
    let signed_in = http
        .post(client.url("/device"))
        .header(reqwest::header::COOKIE, format!("device_csrf={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("user_code", user_code),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("POST /device");
    let status = signed_in.status();
    let body = signed_in.text().await.unwrap_or_default();
    let Some(consent) = hidden(&body, "consent") else {
        return BrowserOutcome { status, body };
    };
    let decided = http
        .post(client.url("/device/decision"))
        .header(reqwest::header::COOKIE, format!("device_csrf={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("consent", consent.as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .expect("POST /device/decision");
    BrowserOutcome {
        status: decided.status(),
        body: decided.text().await.unwrap_or_default(),
    }
}

/// The error code of a failed call, for assertions.
pub fn code_of<T: std::fmt::Debug>(
    result: Result<T, sponsor_console::client::ClientError>,
) -> String {
    match result {
        Ok(v) => format!("unexpected success: {v:?}"),
        Err(e) => e.code().unwrap_or("no code").to_owned(),
    }
}

/// The whole device flow for `username` against `client`'s server: authorize, approve in the
/// "browser", poll once.
pub async fn sign_in(
    client: &ApiClient,
    username: &str,
) -> sponsor_console::protocol::oauth::TokenResponse {
    let auth = client
        .device_authorization(CLIENT_ID, None)
        .await
        .expect("device authorization");
    let outcome = browser(client, &auth.user_code, username, PASSWORD, "approve").await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.body);
    client
        .poll_device(CLIENT_ID, &auth.device_code)
        .await
        .expect("token")
}

/// Saves `tokens` as `username`'s console session for `server` in `state_dir`, as a sign-in
/// would: the binaries driven by a test then start signed in.
pub fn save_session(
    state_dir: &std::path::Path,
    server: &str,
    tokens: &sponsor_console::protocol::oauth::TokenResponse,
    username: &str,
) {
    sponsor_console::client::session::SessionStore::at(state_dir)
        .save(&sponsor_console::client::session::Session {
            server: server.to_owned(),
            client_id: CLIENT_ID.into(),
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at: Utc::now() + Duration::seconds(600),
            username: Some(username.to_owned()),
        })
        .expect("session saved");
}

/// A server on the real clock, for driving the binaries (which read the system time).
pub async fn start_real_clock(settings: ServerSettings) -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = start(
        settings,
        &dir.path().join("governance.db"),
        listener,
        Arc::new(sponsor_console::clock::SystemClock),
    )
    .await
    .expect("start");
    (server, dir)
}

impl TestServer {
    /// A client holding a fresh access token of the agent with `key`.
    pub async fn as_agent(&self, key: &AgentKey) -> ApiClient {
        let token = self
            .client
            .client_credentials(&self.assertion(key), None)
            .await
            .expect("agent token");
        self.client.with_token(token.access_token)
    }

    /// Expires what is due, as the server's sweeper does every second.
    pub async fn sweep(&self) -> Vec<String> {
        sponsor_console::server::sweep(&self.server.state)
            .await
            .expect("sweep")
    }
}

/// An elevation request body.
pub fn elevation(
    caps: &[&str],
    seconds: i64,
) -> sponsor_console::protocol::requests::ElevationBody {
    sponsor_console::protocol::requests::ElevationBody {
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        duration_seconds: seconds,
        justification: "quarterly close needs the ledger".into(),
        ticket: Some("FIN-1234".into()),
        context: Some("tool call: crm.update_account(id=42)".into()),
        on_behalf_of: None,
    }
}

/// A decision body.
pub fn approve(
    seconds: Option<i64>,
    caps: Option<&[&str]>,
) -> sponsor_console::protocol::requests::DecisionBody {
    sponsor_console::protocol::requests::DecisionBody {
        decision: sponsor_console::protocol::requests::Decision::Approve,
        duration_seconds: seconds,
        capabilities: caps.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
        justification: "checked the ticket".into(),
    }
}

pub fn deny() -> sponsor_console::protocol::requests::DecisionBody {
    sponsor_console::protocol::requests::DecisionBody {
        decision: sponsor_console::protocol::requests::Decision::Deny,
        duration_seconds: None,
        capabilities: None,
        justification: "not for this task".into(),
    }
}

/// A list query written as its query string (`status=pending&limit=2`), parsed by the same
/// struct the server parses.
pub fn query<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_urlencoded::from_str(text).expect("a valid list query")
}

/// Starts the real `governance-server` on a free port; returns it and its base URL.
pub async fn spawn_server(config: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_governance-server"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("server printed its address");
        if let Some(rest) = line.strip_prefix("governance-server listening on ") {
            break rest.split(' ').next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}
