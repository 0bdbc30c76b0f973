//! The Entra sign-in kept between runs: the one refresh token, who signed in, and the access
//! tokens it minted (per scope), in a private file (0600, directory 0700) beside the sessions,
//! written atomically. Nothing here is ever logged: `Debug` redacts every token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client::session::{SessionError, SessionStore, create_private_dir, write_private};

/// Who signed in, from the id token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraIdentity {
    /// `oid`: the person's object id.
    pub object_id: String,
    /// `tid`: the tenant that signed them in.
    pub tenant_id: String,
    /// The user principal name (`preferred_username`, else `upn`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl EntraIdentity {
    /// The UPN, else the object id.
    pub fn label(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.object_id)
    }
}

/// An access token and when it stops working.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    pub access_token: String,
    #[serde(with = "crate::protocol::time")]
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One person's Entra sign-in through one public client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraAccount {
    /// `https://login.microsoftonline.com/<tenant>`.
    pub authority: String,
    pub client_id: String,
    pub refresh_token: String,
    pub identity: EntraIdentity,
    /// Access tokens by the scope they were asked for.
    #[serde(default)]
    pub tokens: BTreeMap<String, CachedToken>,
}

impl std::fmt::Debug for EntraAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraAccount")
            .field("authority", &self.authority)
            .field("client_id", &self.client_id)
            .field("identity", &self.identity)
            .field("refresh_token", &"<redacted>")
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// Where Entra sign-ins live: `entra/` in the session directory.
#[derive(Debug, Clone)]
pub struct EntraAccountStore {
    dir: PathBuf,
}

impl EntraAccountStore {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Beside the sessions of `sessions`.
    pub fn beside(sessions: &SessionStore) -> Self {
        Self::at(sessions.dir().join("entra"))
    }

    /// The file of the sign-in at `authority` through `client_id`.
    pub fn path(&self, authority: &str, client_id: &str) -> PathBuf {
        let key = format!("{}|{}", authority.to_ascii_lowercase(), client_id);
        let digest = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        self.dir.join(format!("{digest}.json"))
    }

    pub fn load(
        &self,
        authority: &str,
        client_id: &str,
    ) -> Result<Option<EntraAccount>, SessionError> {
        let path = self.path(authority, client_id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SessionError::Io { path, source }),
        };
        let account: EntraAccount =
            serde_json::from_str(&text).map_err(|e| SessionError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if !account.authority.eq_ignore_ascii_case(authority) || account.client_id != client_id {
            return Err(SessionError::Corrupt {
                path,
                message: "it belongs to another tenant or client".into(),
            });
        }
        Ok(Some(account))
    }

    /// Writes atomically and privately.
    pub fn save(&self, account: &EntraAccount) -> Result<PathBuf, SessionError> {
        let path = self.path(&account.authority, &account.client_id);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SessionError::Io { path, source }
        };
        create_private_dir(&self.dir).map_err(io(&self.dir))?;
        let body = serde_json::to_vec_pretty(account).map_err(|e| SessionError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_private(&path, &body).map_err(io(&path))?;
        Ok(path)
    }

    /// Forgets the sign-in; true if there was one.
    pub fn remove(&self, authority: &str, client_id: &str) -> Result<bool, SessionError> {
        let path = self.path(authority, client_id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(SessionError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> EntraAccount {
        EntraAccount {
            authority: "https://login.example/tenant".into(),
            client_id: "client".into(),
            refresh_token: "1.Asecret-refresh".into(),
            identity: EntraIdentity {
                object_id: "oid".into(),
                tenant_id: "tid".into(),
                username: Some("adele@contoso.example".into()),
                display_name: None,
            },
            tokens: BTreeMap::from([(
                "scope".to_owned(),
                CachedToken {
                    access_token: "eyJ.secret-access".into(),
                    expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
                },
            )]),
        }
    }

    #[test]
    fn saved_privately_read_back_and_never_shown() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = EntraAccountStore::at(dir.path().join("entra"));
        let a = account();
        let path = store.save(&a).expect("saved");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
            assert_eq!(mode.unwrap_or(0) & 0o777, 0o600);
        }
        assert_eq!(
            store.load(&a.authority, &a.client_id).ok().flatten(),
            Some(a.clone())
        );
        assert_eq!(store.load(&a.authority, "other").ok().flatten(), None);
        let shown = format!("{a:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(store.remove(&a.authority, &a.client_id).unwrap_or(false));
        assert!(!store.remove(&a.authority, &a.client_id).unwrap_or(true));
    }
}
