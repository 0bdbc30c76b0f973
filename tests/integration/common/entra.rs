//! The Entra emulator over HTTPS beside a governance server that trusts it, one manual time for
//! both, and the console's `[entra]` settings pointing at it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use entra_emulator::{Emulator, EmulatorClock, EmulatorConfig, demo};
use sponsor_console::client::entra::EntraConfig;
use sponsor_console::clock::{Clock, SharedClock};
use sponsor_console::settings::{ServerSettings, TrustedIssuerSettings};

use super::{TestServer, settings};

/// `api://<governance app>/governance`.
pub fn api_scope() -> String {
    format!(
        "api://{}/{}",
        demo::GOVERNANCE_APP_ID,
        demo::GOVERNANCE_SCOPE
    )
}

/// The server trusting `emu`, its CA in `ca_file`.
pub fn trusting(mut s: ServerSettings, emu: &Emulator, ca_file: &Path) -> ServerSettings {
    s.trusted_issuers.push(TrustedIssuerSettings {
        issuer: emu.issuer(),
        audience: demo::GOVERNANCE_APP_ID.into(),
        tenant_id: emu.tenant_id(),
        discovery_url: emu.discovery_url(),
        jwks_url: String::new(),
        ca_file: ca_file.display().to_string(),
        scope: demo::GOVERNANCE_SCOPE.into(),
        app_roles: BTreeMap::from([
            (demo::ROLE_SPONSOR.to_owned(), "sponsor".to_owned()),
            (
                demo::ROLE_SECURITY_LEAD.to_owned(),
                "security-lead".to_owned(),
            ),
        ]),
        group_roles: BTreeMap::from([(demo::ON_CALL_GROUP.to_owned(), "on-call".to_owned())]),
    });
    s
}

/// Writes the emulator's CA to `dir/emulator-ca.pem`.
pub fn write_ca(emu: &Emulator, dir: &Path) -> PathBuf {
    let ca_file = dir.join("emulator-ca.pem");
    std::fs::write(&ca_file, emu.ca_pem().expect("HTTPS emulator")).expect("CA written");
    ca_file
}

/// The console's `[entra]` for `emu`.
pub fn console_config(emu: &Emulator, ca_file: &Path) -> EntraConfig {
    EntraConfig {
        tenant: emu.tenant_id(),
        client_id: emu.client_id(),
        authority_host: emu.base_url().to_owned(),
        graph_url: emu.base_url().to_owned(),
        api_scope: api_scope(),
        ca_file: ca_file.display().to_string(),
        ..EntraConfig::default()
    }
}

/// The same as a console settings file.
pub fn console_toml(config: &EntraConfig) -> String {
    let table = toml::to_string(config).expect("settings serialize");
    format!("[entra]\n{table}")
}

/// A governance server and an emulator on one manual clock.
pub struct EntraSetup {
    pub t: TestServer,
    pub emu: Emulator,
    pub ca_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl EntraSetup {
    pub async fn start() -> Self {
        Self::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> Self {
        let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap();
        let emu = Emulator::start(config.with_clock(EmulatorClock::manual(start)))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = write_ca(&emu, dir.path());
        let t = TestServer::start_with(trusting(settings(), &emu, &ca_file)).await;
        assert_eq!(t.clock_now(), emu.clock().now(), "one time for both");
        Self {
            t,
            emu,
            ca_file,
            dir,
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.t.advance(seconds);
        self.emu.advance(Duration::seconds(seconds));
    }

    /// The test server's clock, for the client under test.
    pub fn clock(&self) -> SharedClock {
        let clock: Arc<dyn Clock> = self.t.clock.clone();
        clock
    }

    pub fn config(&self) -> EntraConfig {
        console_config(&self.emu, &self.ca_file)
    }
}
