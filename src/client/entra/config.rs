//! `[entra]` in the console's settings: which tenant and public client to sign in with, where
//! the login host and Graph are, the governance server's API scope, and an extra CA to trust.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EntraError;

/// Entra's login host.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Microsoft Graph.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
/// Graph's resource identifier, the prefix of its scopes, wherever Graph is served from.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Least-privileged delegated Graph scopes for what the console does (entra-graph.md §9):
/// who I am, requesters' names, PIM role requests and their steps, role names, PIM for Groups,
/// group names, access-package requests.
pub const DEFAULT_GRAPH_SCOPES: [&str; 7] = [
    "User.Read",
    "User.ReadBasic.All",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagement.Read.Directory",
    "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
    "GroupMember.Read.All",
    "EntitlementManagement.ReadWrite.All",
];
/// The OIDC scopes every sign-in asks for: a refresh token and the person's identity.
pub const OIDC_SCOPES: [&str; 3] = ["offline_access", "openid", "profile"];

/// The console's Microsoft Entra settings. Unset (`tenant` and `client_id` empty): no Entra.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntraConfig {
    /// The tenant id (or a verified domain name).
    pub tenant: String,
    /// The console's app registration: a public client with device flow allowed.
    pub client_id: String,
    /// The login host.
    pub authority_host: String,
    /// Where Graph is served.
    pub graph_url: String,
    /// The governance server's delegated scope (`api://<app-id>/governance`); empty: the
    /// governance server is not signed in to through Entra.
    pub api_scope: String,
    /// A PEM file of extra CA certificates to trust for the login host and Graph.
    pub ca_file: String,
    /// Delegated Graph scopes to ask for (short names or full `https://graph.microsoft.com/X`).
    pub graph_scopes: Vec<String>,
    /// How often each approval source is polled (seconds, jittered by the console).
    pub poll_seconds: u64,
}

impl Default for EntraConfig {
    fn default() -> Self {
        Self {
            tenant: String::new(),
            client_id: String::new(),
            authority_host: DEFAULT_AUTHORITY_HOST.into(),
            graph_url: DEFAULT_GRAPH_URL.into(),
            api_scope: String::new(),
            ca_file: String::new(),
            graph_scopes: DEFAULT_GRAPH_SCOPES.map(String::from).to_vec(),
            poll_seconds: 30,
        }
    }
}

/// Plain `http` only for loopback hosts (a local emulator); everything else must be `https`.
fn secure_url(key: &str, value: &str) -> Result<url::Url, String> {
    let url =
        url::Url::parse(value).map_err(|e| format!("entra.{key}: {value:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "entra.{key}: {value:?} must be https (http only on loopback)"
        )),
    }
}

impl EntraConfig {
    /// Whether the settings ask for Entra at all.
    pub fn is_set(&self) -> bool {
        !self.tenant.trim().is_empty() || !self.client_id.trim().is_empty()
    }

    /// Checks a set section; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.tenant.trim().is_empty() || self.client_id.trim().is_empty() {
            return Err("entra: set both tenant and client_id (or neither)".into());
        }
        if !self
            .tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!(
                "entra.tenant: {:?} is not a tenant id or domain name",
                self.tenant
            ));
        }
        secure_url("authority_host", &self.authority_host)?;
        secure_url("graph_url", &self.graph_url)?;
        if !self.api_scope.is_empty()
            && (self.api_scope.contains(char::is_whitespace) || !self.api_scope.contains('/'))
        {
            return Err(format!(
                "entra.api_scope: {:?} must be one scope like api://<app-id>/governance",
                self.api_scope
            ));
        }
        if self.graph_scopes.is_empty() {
            return Err("entra.graph_scopes: at least one scope is needed".into());
        }
        if self.poll_seconds < 5 {
            return Err("entra.poll_seconds: at least 5".into());
        }
        Ok(())
    }

    /// `https://login.microsoftonline.com/<tenant>`.
    pub fn authority(&self) -> String {
        format!(
            "{}/{}",
            self.authority_host.trim_end_matches('/'),
            self.tenant.trim()
        )
    }

    pub fn device_code_url(&self) -> String {
        format!("{}/oauth2/v2.0/devicecode", self.authority())
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v2.0/token", self.authority())
    }

    /// The Graph base URL without a trailing slash.
    pub fn graph_base(&self) -> &str {
        self.graph_url.trim_end_matches('/')
    }

    /// The Graph scopes as full names (`https://graph.microsoft.com/User.Read`).
    pub fn graph_scope_names(&self) -> Vec<String> {
        self.graph_scopes
            .iter()
            .map(|s| {
                if s.contains("://") || s.contains('/') {
                    s.clone()
                } else {
                    format!("{GRAPH_RESOURCE}/{s}")
                }
            })
            .collect()
    }

    /// The governance server's scope, when Entra signs in to it.
    pub fn api_scope(&self) -> Option<&str> {
        Some(self.api_scope.trim()).filter(|s| !s.is_empty())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_seconds)
    }

    /// One HTTP client for the login host and Graph: rustls with the built-in roots plus the
    /// `ca_file`, no redirects (a token must never follow one to another host), timeouts.
    pub fn http_client(&self) -> Result<reqwest::Client, EntraError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("sponsor-console/", env!("CARGO_PKG_VERSION")));
        if !self.ca_file.is_empty() {
            let ca = |message: String| EntraError::CaFile {
                path: self.ca_file.clone(),
                message,
            };
            let pem = std::fs::read(&self.ca_file).map_err(|e| ca(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca("no certificate in the file".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map_err(|e| EntraError::Network(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> EntraConfig {
        EntraConfig {
            tenant: "7b1d6c4e-2f3a-4e5b-9c8d-0a1b2c3d4e5f".into(),
            client_id: "535fb089-9ff3-47b6-9bfb-4f1264799865".into(),
            api_scope: "api://c0ffee00/governance".into(),
            ..EntraConfig::default()
        }
    }

    #[test]
    fn unset_is_no_entra_and_a_set_one_checks() {
        assert!(!EntraConfig::default().is_set());
        let good = set();
        assert!(good.is_set());
        assert_eq!(good.check(), Ok(()));
        assert_eq!(
            good.device_code_url(),
            "https://login.microsoftonline.com/7b1d6c4e-2f3a-4e5b-9c8d-0a1b2c3d4e5f/oauth2/v2.0/devicecode"
        );
        assert_eq!(
            good.graph_scope_names()[0],
            "https://graph.microsoft.com/User.Read"
        );
        assert_eq!(good.api_scope(), Some("api://c0ffee00/governance"));
    }

    #[test]
    fn bad_sections_name_the_key() {
        let cases: Vec<(EntraConfig, &str)> = vec![
            (
                EntraConfig {
                    client_id: String::new(),
                    ..set()
                },
                "tenant and client_id",
            ),
            (
                EntraConfig {
                    authority_host: "http://login.example".into(),
                    ..set()
                },
                "entra.authority_host",
            ),
            (
                EntraConfig {
                    graph_url: "not a url".into(),
                    ..set()
                },
                "entra.graph_url",
            ),
            (
                EntraConfig {
                    tenant: "a/b".into(),
                    ..set()
                },
                "entra.tenant",
            ),
            (
                EntraConfig {
                    api_scope: "governance".into(),
                    ..set()
                },
                "entra.api_scope",
            ),
            (
                EntraConfig {
                    poll_seconds: 1,
                    ..set()
                },
                "entra.poll_seconds",
            ),
        ];
        for (config, needle) in cases {
            let err = config.check().err().unwrap_or_default();
            assert!(err.contains(needle), "{err}");
        }
        let loopback = EntraConfig {
            authority_host: "http://127.0.0.1:8443".into(),
            ..set()
        };
        assert_eq!(loopback.check(), Ok(()));
    }
}
