//! `[agt]`: the approval webhook of Microsoft's Agent Governance Toolkit (AGT), where its
//! `VersionedWebhookApproval` posts approval requests, and the integrations that may call it
//! with a static credential instead of an agent's own token.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::SettingsError;

/// The route's default path.
pub const DEFAULT_PATH: &str = "/v1/agt/approvals";
/// What every integration credential starts with, so a log scanner can find a leaked one.
pub const CREDENTIAL_PREFIX: &str = "agt_";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgtSettings {
    /// Where the webhook listens (an absolute path; not under `/oauth2`).
    pub path: String,
    pub integrations: Vec<AgtIntegration>,
}

impl Default for AgtSettings {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.into(),
            integrations: Vec::new(),
        }
    }
}

/// A caller that is not one of our agents (an AGT deployment whose `agent_id` is `*` or a name
/// of its own): it authenticates with `Authorization: Bearer agt_…`, and its sponsor decides
/// the actions of agents the server does not know.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgtIntegration {
    pub name: String,
    /// The username of the sponsor who answers for it.
    pub sponsor: String,
    /// Hex SHA-256 of the credential (`governance-server agt credential` makes both); the
    /// credential itself is never stored.
    pub credential_sha256: String,
}

impl std::fmt::Debug for AgtIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgtIntegration")
            .field("name", &self.name)
            .field("sponsor", &self.sponsor)
            .field("credential_sha256", &"<redacted>")
            .finish()
    }
}

impl AgtSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError::Invalid(format!("agt.{m}")));
        let p = &self.path;
        if !p.starts_with('/')
            || p.len() > 200
            || p.starts_with("/oauth2")
            || p.starts_with("/.well-known")
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        {
            return bad(format!(
                "path: {p:?} must be an absolute path of letters, digits, '/', '-', '_' and '.', \
                 outside /oauth2 and /.well-known"
            ));
        }
        let mut names = std::collections::HashSet::new();
        for i in &self.integrations {
            if i.name.is_empty()
                || i.name.len() > 64
                || !i
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return bad(format!(
                    "integrations: name {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                    i.name
                ));
            }
            if !names.insert(i.name.as_str()) {
                return bad(format!("integrations: {} is listed twice", i.name));
            }
            if i.sponsor.trim().is_empty() {
                return bad(format!("integrations: {} needs a sponsor", i.name));
            }
            let hash = &i.credential_sha256;
            if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return bad(format!(
                    "integrations: {}: credential_sha256 must be 64 lowercase hex digits \
                     (governance-server agt credential makes one)",
                    i.name
                ));
            }
        }
        Ok(())
    }

    /// The integration whose credential this is, compared in constant time against every
    /// configured hash (so the time taken says nothing about which, if any, matched).
    pub fn integration_for(&self, credential: &str) -> Option<&AgtIntegration> {
        use sha2::{Digest, Sha256};
        let presented = hex::encode(Sha256::digest(credential.as_bytes()));
        let mut found = None;
        for i in &self.integrations {
            if bool::from(presented.as_bytes().ct_eq(i.credential_sha256.as_bytes())) {
                found = Some(i);
            }
        }
        found
    }
}

/// A new integration credential: `agt_` and 32 random bytes, base64url.
pub fn new_credential() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "{CREDENTIAL_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(credential: &str) -> AgtSettings {
        use sha2::{Digest, Sha256};
        AgtSettings {
            integrations: vec![AgtIntegration {
                name: "ledger".into(),
                sponsor: "alice".into(),
                credential_sha256: hex::encode(Sha256::digest(credential.as_bytes())),
            }],
            ..AgtSettings::default()
        }
    }

    #[test]
    fn a_credential_finds_its_integration_and_nothing_else_does() {
        let credential = new_credential();
        assert!(credential.starts_with("agt_") && credential.len() == 4 + 43);
        let settings = with(&credential);
        settings.validate().unwrap();
        assert_eq!(
            settings.integration_for(&credential).unwrap().name,
            "ledger"
        );
        assert!(settings.integration_for(&new_credential()).is_none());
        assert!(settings.integration_for("").is_none());
    }

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        let mut s = with("x");
        s.path = "v1/agt".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("agt.path")
        );
        let mut s = with("x");
        s.path = "/oauth2/agt".into();
        assert!(s.validate().is_err());
        let mut s = with("x");
        s.integrations[0].credential_sha256 = "secret".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("credential_sha256")
        );
        let mut s = with("x");
        s.integrations.push(s.integrations[0].clone());
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        assert!(!format!("{:?}", with("x")).contains(&with("x").integrations[0].credential_sha256));
    }
}
