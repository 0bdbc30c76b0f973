//! What the benchmarks share: an in-process server on loopback (real clock, SQLite in WAL with
//! synchronous=FULL), a sponsor with a token minted by the server's own key ring, and summary
//! statistics. Each benchmark uses part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sponsor_console::client::ApiClient;
use sponsor_console::clock::SystemClock;
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::oauth::{AccessClaims, SubjectKind};
use sponsor_console::server::passwords::hash_password;
use sponsor_console::server::store::{SponsorRecord, SponsorUpsert};
use sponsor_console::server::{RunningServer, start};
use sponsor_console::settings::ServerSettings;

pub struct Bench {
    pub server: RunningServer,
    pub sponsor: SponsorRecord,
    /// A client holding the sponsor's token (roles sponsor and security-lead).
    pub sponsor_client: ApiClient,
    /// That token, for a console's session file.
    pub sponsor_token: String,
    _dir: tempfile::TempDir,
}

pub async fn start_server(settings: ServerSettings) -> anyhow::Result<Bench> {
    start_server_at(settings, None).await
}

/// The same on the database file `db` (created if missing, kept afterwards), or on a fresh one
/// in a temporary directory.
pub async fn start_server_at(
    settings: ServerSettings,
    db: Option<&std::path::Path>,
) -> anyhow::Result<Bench> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let path = db.map_or_else(|| dir.path().join("bench.db"), std::path::Path::to_owned);
    let server = start(settings, &path, listener, Arc::new(SystemClock)).await?;
    let state = server.state.clone();
    let now = Utc::now();
    let sponsor = state
        .store
        .upsert_sponsor(
            &SponsorUpsert {
                username: "bench".into(),
                display_name: "Bench".into(),
                roles: vec![Role::Sponsor, Role::SecurityLead],
                password_hash: hash_password("bench-password-123")?,
                source: "cli".into(),
            },
            Actor::system(),
            now,
        )
        .await?;
    let claims = AccessClaims {
        iss: state.issuer.clone(),
        sub: sponsor.id.clone(),
        aud: state.settings.tokens.audience.clone(),
        exp: now.timestamp() + 3600,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "governance".into(),
        client_id: "sponsor-console".into(),
        kind: SubjectKind::Sponsor,
        roles: vec!["sponsor".into(), "security-lead".into()],
        preferred_username: Some("bench".into()),
    };
    let token = state.keys.sign(&claims)?;
    let sponsor_client = ApiClient::new(&server.base_url())?.with_token(token.clone());
    Ok(Bench {
        server,
        sponsor,
        sponsor_client,
        sponsor_token: token,
        _dir: dir,
    })
}

pub struct Summary {
    pub median: Duration,
    pub p99: Duration,
    pub per_second: f64,
}

pub fn summarize(mut samples: Vec<Duration>, wall: Duration) -> Summary {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Summary {
        median: at(0.5),
        p99: at(0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

pub fn report(name: &str, s: &Summary) {
    println!(
        "{name:<44} median {:>9.3} ms   p99 {:>9.3} ms   {:>9.0} /s",
        s.median.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.per_second
    );
}

/// Reads `--name value` from the command line as text.
pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Reads `--name value` from the command line.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
