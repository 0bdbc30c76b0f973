//! `[[trusted_issuers]]`: external issuers (Microsoft Entra) whose access tokens the server
//! accepts for `/v1`, and how their app roles and groups map to our roles.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SettingsError;
use crate::domain::external::{IssuerRule, RoleMapping};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerSettings {
    /// The `iss` of its tokens, exactly (`https://login.microsoftonline.com/<tid>/v2.0`).
    pub issuer: String,
    /// The `aud` its tokens must carry: the API app's client id (v2.0 tokens).
    pub audience: String,
    /// The one tenant whose tokens count (`tid`).
    #[serde(alias = "tid")]
    pub tenant_id: String,
    /// OpenID discovery document; empty: `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: String,
    /// The JWKS, instead of discovery; empty: the discovery document's `jwks_uri`.
    #[serde(default)]
    pub jwks_url: String,
    /// A PEM file of extra CA certificates to trust when fetching discovery and keys.
    #[serde(default)]
    pub ca_file: String,
    /// The delegated scope (`scp`) a token needs to act on `/v1`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// App-role value → `sponsor`, `security-lead` or `on-call`.
    #[serde(default)]
    pub app_roles: BTreeMap<String, String>,
    /// Group object id → `sponsor`, `security-lead` or `on-call`.
    #[serde(default)]
    pub group_roles: BTreeMap<String, String>,
}

fn default_scope() -> String {
    "governance".into()
}

/// Plain `http` only for loopback hosts (a local emulator); everything else must be `https`.
fn secure_url(key: &str, value: &str) -> Result<(), SettingsError> {
    let url = url::Url::parse(value).map_err(|e| {
        SettingsError::Invalid(format!(
            "trusted_issuers.{key}: {value:?} is not a URL: {e}"
        ))
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(SettingsError::Invalid(format!(
            "trusted_issuers.{key}: {value:?} must be https (http only on loopback)"
        ))),
    }
}

impl TrustedIssuerSettings {
    /// Where the issuer's keys are found: the JWKS URL, or the discovery document's.
    pub fn discovery(&self) -> String {
        if self.discovery_url.is_empty() {
            format!(
                "{}/.well-known/openid-configuration",
                self.issuer.trim_end_matches('/')
            )
        } else {
            self.discovery_url.clone()
        }
    }

    /// The rules tokens from this issuer are held to.
    pub fn rule(&self) -> Result<IssuerRule, SettingsError> {
        let mapping = RoleMapping::new(&self.app_roles, &self.group_roles)
            .map_err(|e| SettingsError::Invalid(format!("trusted_issuers {}: {e}", self.issuer)))?;
        Ok(IssuerRule {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            tenant_id: self.tenant_id.to_ascii_lowercase(),
            scope: self.scope.clone(),
            mapping,
        })
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        for (key, value) in [
            ("issuer", &self.issuer),
            ("audience", &self.audience),
            ("tenant_id", &self.tenant_id),
            ("scope", &self.scope),
        ] {
            if value.trim().is_empty() {
                return Err(SettingsError::Invalid(format!(
                    "trusted_issuers.{key} must not be empty"
                )));
            }
        }
        secure_url("issuer", &self.issuer)?;
        secure_url("discovery_url", &self.discovery())?;
        if !self.jwks_url.is_empty() {
            secure_url("jwks_url", &self.jwks_url)?;
        }
        self.rule().map(|_| ())
    }
}

/// Every issuer valid, none twice, none the server itself.
pub fn validate_all(
    issuers: &[TrustedIssuerSettings],
    own_issuer: &str,
) -> Result<(), SettingsError> {
    for (i, issuer) in issuers.iter().enumerate() {
        issuer.validate()?;
        if issuers[..i].iter().any(|o| o.issuer == issuer.issuer) {
            return Err(SettingsError::Invalid(format!(
                "trusted_issuers: {} is listed twice",
                issuer.issuer
            )));
        }
        if !own_issuer.is_empty() && issuer.issuer.trim_end_matches('/') == own_issuer {
            return Err(SettingsError::Invalid(format!(
                "trusted_issuers: {} is this server's own issuer",
                issuer.issuer
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::settings::ServerSettings;

    const GOOD: &str = r#"
[[trusted_issuers]]
issuer = "https://login.microsoftonline.com/7b1d6c4e-2f3a-4e5b-9c8d-0a1b2c3d4e5f/v2.0"
audience = "c0ffee00-1111-4222-8333-944455556666"
tid = "7b1d6c4e-2f3a-4e5b-9c8d-0a1b2c3d4e5f"
[trusted_issuers.app_roles]
"Governance.Sponsor" = "sponsor"
[trusted_issuers.group_roles]
"3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a99" = "on-call"
"#;

    fn parse(text: &str) -> Result<ServerSettings, crate::settings::SettingsError> {
        ServerSettings::from_toml(text, Path::new("server.toml"))
    }

    #[test]
    fn a_trusted_issuer_parses_with_its_defaults() {
        let s = parse(GOOD).expect("parses");
        let t = &s.trusted_issuers[0];
        assert_eq!(t.scope, "governance");
        assert_eq!(
            t.discovery(),
            "https://login.microsoftonline.com/7b1d6c4e-2f3a-4e5b-9c8d-0a1b2c3d4e5f/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(t.rule().expect("a rule").tenant_id, t.tenant_id);
    }

    #[test]
    fn bad_trusted_issuers_are_refused() {
        let cases = [
            GOOD.replace("https://login", "http://login"),
            GOOD.replace("\"sponsor\"", "\"admin\""),
            GOOD.replace("\"on-call\"", "\"owner\""),
            GOOD.replace("audience = \"c0ffee00-1111-4222-8333-944455556666\"", "audience = \"\""),
            GOOD.replace("tid =", "tenant =")
                .replace("tenant =", "tenant_id_typo ="),
            format!("{GOOD}\n{}", GOOD.replace("[trusted_issuers.app_roles]\n\"Governance.Sponsor\" = \"sponsor\"\n", "")),
            GOOD.replace("[trusted_issuers.app_roles]\n\"Governance.Sponsor\" = \"sponsor\"\n[trusted_issuers.group_roles]\n\"3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a99\" = \"on-call\"\n", ""),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert!(parse(text).is_err(), "case {i} parsed:\n{text}");
        }
        let loopback = GOOD.replace("https://login.microsoftonline.com", "http://127.0.0.1:8443");
        assert!(parse(&loopback).is_ok(), "plain http is fine on loopback");
    }

    #[test]
    fn the_shipped_example_parses_once_uncommented() {
        let shipped = crate::settings::SERVER_DEFAULTS;
        let at = shipped
            .find("# [[trusted_issuers]]")
            .expect("the example is shipped");
        let example: String = shipped[at..]
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let s = parse(&example).expect("the uncommented example parses");
        assert_eq!(s.trusted_issuers.len(), 1);
        assert_eq!(s.trusted_issuers[0].app_roles.len(), 3);
    }

    #[test]
    fn local_sponsors_may_not_take_the_external_form() {
        let text = "[[sponsors]]\nusername = \"entra:t:o\"\nroles = [\"sponsor\"]\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNo\"\n";
        assert!(parse(text).is_err());
    }
}
