//! Configuration: shipped defaults in `config/*.default.toml` (embedded in the binaries, so a
//! fresh machine needs no files), overlaid by the user's file. Unknown keys are errors, and
//! settings that hold secrets redact themselves in `Debug`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod agt;
mod database;
mod trusted_issuers;
pub use agt::{AgtIntegration, AgtSettings, CREDENTIAL_PREFIX, new_credential};
pub use database::{Database, PostgresSettings};
pub use trusted_issuers::TrustedIssuerSettings;

/// The shipped server defaults, commented.
pub const SERVER_DEFAULTS: &str = include_str!("../config/server.default.toml");

/// A configuration file that cannot be used, and where it is.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The text of a configuration file: the user's, or the shipped one when there is none.
#[derive(Debug, Clone)]
pub struct ConfigText {
    pub text: std::borrow::Cow<'static, str>,
    /// Where the text came from, for errors.
    pub origin: PathBuf,
}

impl ConfigText {
    /// The file at `path`, else the `shipped` text (named `shipped_origin` in errors).
    pub fn read(
        path: Option<&Path>,
        shipped: &'static str,
        shipped_origin: &str,
    ) -> Result<Self, FileError> {
        Ok(match path {
            None => Self {
                text: shipped.into(),
                origin: PathBuf::from(shipped_origin),
            },
            Some(path) => Self {
                text: std::fs::read_to_string(path)
                    .map_err(|source| FileError::Read {
                        path: path.to_owned(),
                        source,
                    })?
                    .into(),
                origin: path.to_owned(),
            },
        })
    }

    /// Parses the text as TOML into `T`; errors name the file.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(&self.text).map_err(|e| self.invalid(e.message()))
    }

    /// An error about this file's content.
    pub fn invalid(&self, message: impl Into<String>) -> FileError {
        FileError::Parse {
            path: self.origin.clone(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub server: Listen,
    pub tokens: Tokens,
    pub device: Device,
    pub limits: Limits,
    pub rate_limits: RateLimits,
    pub audit: AuditSettings,
    pub postgres: PostgresSettings,
    /// The AGT approval webhook.
    pub agt: AgtSettings,
    pub clients: Vec<ClientSettings>,
    pub sponsors: Vec<SponsorSettings>,
    /// External issuers (Microsoft Entra) whose tokens act as sponsors.
    pub trusted_issuers: Vec<TrustedIssuerSettings>,
    /// The policy in force: set by [`ServerSettings::load`] from `server.policy` (or the shipped
    /// `config/policy.default.toml`); tests set it directly.
    #[serde(skip)]
    pub policy: Option<crate::domain::policy::Policy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub bind: SocketAddr,
    pub issuer: String,
    pub database: String,
    /// Policy file; empty: $XDG_CONFIG_HOME/sponsor-console/policy.toml if it exists, else the
    /// shipped defaults.
    pub policy: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    pub audience: String,
    pub agent_access_seconds: u32,
    pub sponsor_access_seconds: u32,
    pub refresh_seconds: u32,
    pub max_assertion_seconds: u32,
    /// How old a DPoP proof's `iat` may be, in seconds; a proof is usable, and its `jti`
    /// remembered, that long.
    pub dpop_max_age_seconds: u32,
    /// How far ahead of the server's clock a DPoP proof's `iat` may be, in seconds.
    pub dpop_ahead_seconds: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Device {
    pub expires_seconds: u32,
    pub interval_seconds: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_agents_per_sponsor: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    pub user_code_failures: u32,
    pub user_code_window_seconds: u32,
    /// Wrong passwords for one account from one network.
    pub password_failures: u32,
    pub password_window_seconds: u32,
    /// Wrong passwords for one account from every network together (a ceiling well above
    /// `password_failures`, so guessing elsewhere does not lock the owner out).
    pub account_failures: u32,
    /// Wrong passwords for any account from one network.
    pub address_failures: u32,
    /// Device authorizations one network may start per window.
    pub device_authorizations: u32,
    pub device_window_seconds: u32,
}

/// Signed checkpoints of the audit chain's head, written on a schedule to sinks outside the
/// database (see ARCHITECTURE.md, "Threat model of the audit chain").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// How often the head is signed when it changed (`5m`, `30s`, `1h`).
    pub checkpoint_every: String,
    /// Append each checkpoint as one JSON line to this file (fsynced); empty: no file.
    pub checkpoint_file: String,
    /// Print each checkpoint as one JSON line on standard output.
    pub checkpoint_stdout: bool,
    /// Send each checkpoint to syslog (RFC 3164 over `syslog_socket`, facility auth).
    pub checkpoint_syslog: bool,
    /// The local syslog socket.
    pub syslog_socket: String,
    /// How often the tables are checked against the chain (`audit verify --state`); the first
    /// check runs at start.
    pub state_check_every: String,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_every: "5m".into(),
            checkpoint_file: String::new(),
            checkpoint_stdout: false,
            checkpoint_syslog: false,
            syslog_socket: "/dev/log".into(),
            state_check_every: "10m".into(),
        }
    }
}

impl AuditSettings {
    /// `checkpoint_every` as a duration (at least one second).
    pub fn checkpoint_interval(&self) -> Result<std::time::Duration, SettingsError> {
        interval("checkpoint_every", &self.checkpoint_every)
    }

    /// `state_check_every` as a duration (at least one second).
    pub fn state_check_interval(&self) -> Result<std::time::Duration, SettingsError> {
        interval("state_check_every", &self.state_check_every)
    }

    /// Whether any sink is configured (without one the schedule has nowhere to write).
    pub fn has_sink(&self) -> bool {
        !self.checkpoint_file.is_empty() || self.checkpoint_stdout || self.checkpoint_syslog
    }
}

/// An `[audit]` interval such as `5m`: at least one second.
fn interval(key: &str, text: &str) -> Result<std::time::Duration, SettingsError> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| d.as_secs() >= 1)
        .ok_or_else(|| {
            SettingsError::Invalid(format!(
                "audit.{key}: {text:?} is not a duration of at least 1s (e.g. \"5m\")"
            ))
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub client_id: String,
    pub name: String,
    /// Where the authorization endpoint may send this client's browser back (authorization
    /// code with PKCE). Empty: the client signs in with the device flow only. A loopback
    /// `http://127.0.0.1/…` URI accepts any port (RFC 8252 §7.3).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SponsorSettings {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    pub roles: Vec<String>,
    pub password_hash: String,
}

impl std::fmt::Debug for SponsorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SponsorSettings")
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            server: Listen::default(),
            tokens: Tokens::default(),
            device: Device::default(),
            limits: Limits::default(),
            rate_limits: RateLimits::default(),
            audit: AuditSettings::default(),
            postgres: PostgresSettings::default(),
            agt: AgtSettings::default(),
            clients: vec![ClientSettings {
                client_id: "sponsor-console".into(),
                name: "Sponsor Console".into(),
                redirect_uris: Vec::new(),
            }],
            sponsors: Vec::new(),
            trusted_issuers: Vec::new(),
            policy: None,
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7070)),
            issuer: String::new(),
            database: String::new(),
            policy: String::new(),
        }
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            audience: "governance-api".into(),
            agent_access_seconds: 900,
            sponsor_access_seconds: 600,
            refresh_seconds: 43_200,
            max_assertion_seconds: 300,
            dpop_max_age_seconds: 60,
            dpop_ahead_seconds: 5,
        }
    }
}

impl Default for Device {
    fn default() -> Self {
        Self {
            expires_seconds: 600,
            interval_seconds: 5,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_agents_per_sponsor: 25,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            user_code_failures: 10,
            user_code_window_seconds: 600,
            password_failures: 5,
            password_window_seconds: 900,
            account_failures: 50,
            address_failures: 20,
            device_authorizations: 30,
            device_window_seconds: 600,
        }
    }
}

impl ServerSettings {
    /// Parses settings text (a user's file: missing keys keep their defaults).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, SettingsError> {
        Self::from_text(&ConfigText {
            text: text.to_owned().into(),
            origin: origin.to_owned(),
        })
    }

    fn from_text(file: &ConfigText) -> Result<Self, SettingsError> {
        let settings: Self = file.parse()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads a settings file; `None` gives the shipped defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        Self::from_text(&ConfigText::read(
            path,
            SERVER_DEFAULTS,
            "config/server.default.toml",
        )?)
    }

    /// The policy in force: the one set on these settings, else [`Self::policy_file`].
    pub fn resolve_policy(&self) -> Result<crate::domain::policy::Policy, SettingsError> {
        match &self.policy {
            Some(p) => Ok(p.clone()),
            None => Ok(self.policy_file()?.policy),
        }
    }

    /// The policy file (`server.policy`, else the user's `policy.toml`, else none) layered over
    /// the shipped defaults key by key; errors name the file and the key.
    pub fn policy_file(&self) -> Result<PolicyFile, SettingsError> {
        use crate::domain::policy::{Policy, layered_over_shipped};
        let path = (!self.server.policy.is_empty())
            .then(|| PathBuf::from(&self.server.policy))
            .or_else(|| user_config_file("policy.toml"));
        let file = ConfigText::read(
            path.as_deref(),
            crate::domain::policy::SHIPPED,
            "config/policy.default.toml",
        )?;
        let invalid = |e: crate::domain::Invalid| file.invalid(e.message);
        let table = layered_over_shipped(&file.text).map_err(invalid)?;
        let policy = Policy::from_table(table.clone()).map_err(invalid)?;
        Ok(PolicyFile {
            path,
            table,
            policy,
        })
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let t = &self.tokens;
        if t.agent_access_seconds == 0 || t.sponsor_access_seconds == 0 || t.refresh_seconds == 0 {
            return Err(SettingsError::Invalid(
                "token lifetimes must be positive".into(),
            ));
        }
        if t.max_assertion_seconds == 0 || t.max_assertion_seconds > 3600 {
            return Err(SettingsError::Invalid(
                "tokens.max_assertion_seconds must be between 1 and 3600".into(),
            ));
        }
        if !(1..=3600).contains(&t.dpop_max_age_seconds) || t.dpop_ahead_seconds > 300 {
            return Err(SettingsError::Invalid(
                "tokens.dpop_max_age_seconds must be between 1 and 3600, \
                 tokens.dpop_ahead_seconds at most 300"
                    .into(),
            ));
        }
        if self.device.expires_seconds < 60 {
            return Err(SettingsError::Invalid(
                "device.expires_seconds must be at least 60".into(),
            ));
        }
        if !(1..=60).contains(&self.device.interval_seconds) {
            return Err(SettingsError::Invalid(
                "device.interval_seconds must be between 1 and 60".into(),
            ));
        }
        self.audit.checkpoint_interval()?;
        self.postgres.validate()?;
        self.agt.validate()?;
        if self.clients.is_empty() {
            return Err(SettingsError::Invalid(
                "at least one [[clients]] entry is required".into(),
            ));
        }
        for client in &self.clients {
            for uri in &client.redirect_uris {
                crate::domain::authorize::registrable(uri).map_err(|e| {
                    SettingsError::Invalid(format!(
                        "clients {}: redirect_uris: {e}",
                        client.client_id
                    ))
                })?;
            }
        }
        for s in &self.sponsors {
            if crate::domain::external::is_reserved_username(&s.username) {
                return Err(SettingsError::Invalid(format!(
                    "sponsor {}: usernames starting with {} are kept for external sponsors",
                    s.username,
                    crate::domain::external::ENTRA_PREFIX
                )));
            }
            crate::domain::role::parse_list(&s.roles.join(","))
                .map_err(|e| SettingsError::Invalid(format!("sponsor {}: {e}", s.username)))?;
            argon2::PasswordHash::new(&s.password_hash).map_err(|_| {
                SettingsError::Invalid(format!(
                    "sponsor {}: password_hash is not an argon2 PHC string",
                    s.username
                ))
            })?;
        }
        trusted_issuers::validate_all(
            &self.trusted_issuers,
            self.server.issuer.trim_end_matches('/'),
        )?;
        Ok(())
    }

    /// The issuer URL: configured, or derived from the address actually bound.
    pub fn issuer_for(&self, bound: SocketAddr) -> String {
        if self.server.issuer.is_empty() {
            format!("http://{bound}")
        } else {
            self.server.issuer.trim_end_matches('/').to_owned()
        }
    }
}

/// The policy in force and where it came from.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    /// The user's file layered over the shipped defaults; `None`: the shipped defaults alone.
    pub path: Option<PathBuf>,
    /// The merged policy as TOML.
    pub table: toml::Table,
    pub policy: crate::domain::policy::Policy,
}

/// The XDG directories of the project (data, state, config).
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "sponsor-console")
}

/// The user's `$XDG_CONFIG_HOME/sponsor-console/<name>` (`server.toml`, `policy.toml`,
/// `console.toml`), if it exists.
pub fn user_config_file(name: &str) -> Option<PathBuf> {
    project_dirs()
        .map(|d| d.config_dir().join(name))
        .filter(|p| p.exists())
}

/// Where the server keeps its database when none is configured.
pub fn default_database_path() -> PathBuf {
    project_dirs()
        .map(|d| d.data_dir().join("governance.db"))
        .unwrap_or_else(|| PathBuf::from("governance.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse_and_match_code_defaults() {
        let shipped = ServerSettings::load(None).expect("the shipped settings load");
        let code = ServerSettings::default();
        assert_eq!(shipped.server.bind, code.server.bind);
        assert_eq!(
            shipped.tokens.agent_access_seconds,
            code.tokens.agent_access_seconds
        );
        assert_eq!(
            shipped.tokens.sponsor_access_seconds,
            code.tokens.sponsor_access_seconds
        );
        assert_eq!(shipped.tokens.refresh_seconds, code.tokens.refresh_seconds);
        assert_eq!(
            (
                shipped.tokens.dpop_max_age_seconds,
                shipped.tokens.dpop_ahead_seconds
            ),
            (
                code.tokens.dpop_max_age_seconds,
                code.tokens.dpop_ahead_seconds
            )
        );
        assert_eq!(
            shipped.device.interval_seconds,
            code.device.interval_seconds
        );
        assert_eq!(shipped.device.expires_seconds, code.device.expires_seconds);
        assert_eq!(
            shipped.limits.max_agents_per_sponsor,
            code.limits.max_agents_per_sponsor
        );
        assert_eq!(
            shipped.rate_limits.password_failures,
            code.rate_limits.password_failures
        );
        assert_eq!(shipped.clients, code.clients);
        assert_eq!(shipped.audit, code.audit);
    }

    #[test]
    fn a_bad_checkpoint_interval_is_refused() {
        for every in ["soon", "0s", ""] {
            let text = format!("[audit]\ncheckpoint_every = \"{every}\"\n");
            assert!(ServerSettings::from_toml(&text, Path::new("x.toml")).is_err());
        }
        let text = "[audit]\ncheckpoint_every = \"30s\"\ncheckpoint_stdout = true\n";
        let ok = ServerSettings::from_toml(text, Path::new("x.toml")).expect("parses");
        assert_eq!(
            ok.audit.checkpoint_interval().ok(),
            Some(std::time::Duration::from_secs(30))
        );
        assert!(ok.audit.has_sink());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = ServerSettings::from_toml("[server]\nbindd = \"x\"\n", Path::new("bad.toml"));
        assert!(matches!(
            err,
            Err(SettingsError::File(FileError::Parse { .. }))
        ));
    }

    #[test]
    fn bad_sponsor_hash_is_refused() {
        let text =
            "[[sponsors]]\nusername = \"a\"\nroles = [\"sponsor\"]\npassword_hash = \"plain\"\n";
        assert!(ServerSettings::from_toml(text, Path::new("x.toml")).is_err());
    }
}
