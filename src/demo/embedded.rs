//! The embedded default: a governance server in-process on a loopback port, its SQLite file
//! under the XDG data directory, a local tenant whose sponsor is the OS user (with the
//! security-lead and on-call roles too), demo agents and the fleet simulator. Sign-in is the
//! real device flow; only its browser step is completed in-process, for the local sponsor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::fleet::{Fleet, FleetConfig};
use crate::client::ApiClient;
use crate::client::login::{self, LoginError};
use crate::client::session::Session;
use crate::clock::{SharedClock, SystemClock};
use crate::domain::role::Role;
use crate::protocol::audit::Actor;
use crate::server::passwords::{HashError, hash_password};
use crate::server::store::{SponsorRecord, SponsorUpsert};
use crate::server::{RunningServer, ServerError, start};
use crate::settings::ServerSettings;

/// Overrides where the embedded server keeps its data (tests, several demos side by side).
pub const DATA_DIR_ENV: &str = "SPONSOR_CONSOLE_DATA_DIR";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("embedded server: {0}")]
    Server(#[from] ServerError),
    #[error("sign-in: {0}")]
    Login(#[from] LoginError),
    // The causes are part of the message and deliberately not `source`s, so a `{:#}` chain
    // prints each once.
    #[error("{}: {error}", path.display())]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("binding a loopback port: {0}")]
    Bind(std::io::Error),
    #[error("{0}")]
    Password(HashError),
}

/// A running embedded tenant.
#[derive(Debug)]
pub struct Embedded {
    pub server: RunningServer,
    pub sponsor: SponsorRecord,
    pub session: Session,
    pub data_dir: PathBuf,
    demo: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Stops the demo fleet and the server.
    pub async fn shutdown(mut self) -> Result<(), EmbeddedError> {
        if let Some(demo) = self.demo.take() {
            demo.abort();
        }
        self.server.shutdown().await?;
        Ok(())
    }
}

/// `$SPONSOR_CONSOLE_DATA_DIR`, else `$XDG_DATA_HOME/sponsor-console`.
pub fn data_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| crate::settings::project_dirs().map(|d| d.data_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(".sponsor-console"))
}

/// The OS user's name if it is a usable username, else `sponsor`.
pub fn local_username() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| {
            !u.is_empty()
                && u.len() <= 64
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
        .unwrap_or_else(|| "sponsor".into())
}

/// Starts the embedded tenant and signs the local sponsor in. With `demo_agents > 0` the demo
/// fleet submits `demo_rate` requests per second in the background.
pub async fn start_embedded(
    dir: &Path,
    demo_agents: usize,
    demo_rate: f64,
) -> Result<Embedded, EmbeddedError> {
    std::fs::create_dir_all(dir).map_err(|error| EmbeddedError::DataDir {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut settings = ServerSettings::default();
    settings.limits.max_agents_per_sponsor = 500;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(EmbeddedError::Bind)?;
    let clock: SharedClock = Arc::new(SystemClock);
    let server = start(settings, &dir.join("embedded.db"), listener, clock.clone()).await?;
    let state = server.state.clone();
    let username = local_username();
    // The local sponsor signs in only through this process: its password is random and
    // thrown away.
    let secret: [u8; 32] = rand::random();
    let password_hash = hash_password(&hex::encode(secret)).map_err(EmbeddedError::Password)?;
    let sponsor = state
        .store
        .upsert_sponsor(
            &SponsorUpsert {
                username: username.clone(),
                display_name: username.clone(),
                roles: vec![Role::Sponsor, Role::SecurityLead, Role::OnCall],
                password_hash,
                source: "embedded".into(),
            },
            Actor::system(),
            clock.now(),
        )
        .await
        .map_err(ServerError::from)?;
    let api = ApiClient::new(&server.base_url()).map_err(LoginError::from)?;
    let approver = (state.clone(), sponsor.id.clone());
    let session = login::device_login(
        &api,
        clock.clone(),
        login::real_sleep,
        |prompt| async move {
            // The browser step, in-process: the local sponsor approves this very code.
            let (state, sponsor_id) = approver;
            if let Err(e) = state
                .store
                .decide_device(&prompt.user_code, &sponsor_id, true, state.clock.now())
                .await
            {
                tracing::error!(error = %e, "in-process approval of the sign-in failed");
            }
        },
    )
    .await?;
    let demo = if demo_agents > 0 && demo_rate > 0.0 {
        let sponsor_api = api.with_token(session.access_token.clone());
        let (fleet, _reused) = Fleet::load_or_register(
            &sponsor_api,
            &dir.join("demo-agents"),
            demo_agents,
            7,
            clock.clone(),
        )
        .await
        .map_err(LoginError::from)?;
        let fleet = Arc::new(fleet);
        Some(tokio::spawn(async move {
            let config = FleetConfig {
                agents: demo_agents,
                rate: demo_rate,
                delegation_share: 0.15,
                seed: rand::random(),
                count: None,
                duration: None,
                concurrency: 4,
            };
            let stats = fleet.run(&config).await;
            tracing::info!(submitted = stats.submitted, "demo fleet stopped");
        }))
    } else {
        None
    };
    Ok(Embedded {
        server,
        sponsor,
        session,
        data_dir: dir.to_path_buf(),
        demo,
    })
}
