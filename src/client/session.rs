//! The signed-in session of one server, kept under the XDG state directory in a file only the
//! user can read (0600, directory 0700), written atomically so a crash never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Overrides where sessions are kept (tests, several identities side by side).
pub const STATE_DIR_ENV: &str = "SPONSOR_CONSOLE_STATE_DIR";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a session file ({message}); run `sponsor-console logout` to clear it")]
    Corrupt { path: PathBuf, message: String },
    #[error("no state directory: set {STATE_DIR_ENV} or HOME")]
    NoStateDir,
}

/// Tokens for one server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub server: String,
    pub client_id: String,
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(with = "crate::protocol::time")]
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub username: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$SPONSOR_CONSOLE_STATE_DIR`, else `$XDG_STATE_HOME/sponsor-console` (falling back to
    /// the local data directory on systems without a state directory).
    pub fn default_location() -> Result<Self, SessionError> {
        if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(Self::at(dir));
        }
        let dirs = crate::settings::project_dirs().ok_or(SessionError::NoStateDir)?;
        let dir = dirs
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
        Ok(Self::at(dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `agent-cli fleet` keeps the keys of its agents on `server`, to reuse them.
    pub fn fleet_dir(&self, server: &str) -> PathBuf {
        let digest = hex::encode(&Sha256::digest(server.as_bytes())[..8]);
        self.dir.join("fleet").join(digest)
    }

    /// The session file of `server`.
    pub fn path(&self, server: &str) -> PathBuf {
        let digest = hex::encode(&Sha256::digest(server.as_bytes())[..8]);
        self.dir.join("sessions").join(format!("{digest}.json"))
    }

    pub fn load(&self, server: &str) -> Result<Option<Session>, SessionError> {
        let path = self.path(server);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SessionError::Io { path, source }),
        };
        let session: Session = serde_json::from_str(&text).map_err(|e| SessionError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if session.server != server {
            return Err(SessionError::Corrupt {
                path,
                message: "it belongs to another server".into(),
            });
        }
        Ok(Some(session))
    }

    /// Writes atomically: a private temporary file, fsync, rename.
    pub fn save(&self, session: &Session) -> Result<PathBuf, SessionError> {
        let path = self.path(&session.server);
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SessionError::Io { path, source }
        };
        create_private_dir(&dir).map_err(io(&dir))?;
        let body = serde_json::to_vec_pretty(session).map_err(|e| SessionError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_private(&path, &body).map_err(io(&path))?;
        Ok(path)
    }

    /// Forgets the session of `server`; true if there was one.
    pub fn remove(&self, server: &str) -> Result<bool, SessionError> {
        let path = self.path(server);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(SessionError::Io { path, source }),
        }
    }
}

/// Writes `body` to `path` atomically and privately (0600): a temporary file beside it, fsync,
/// rename. The directory must exist.
pub(crate) fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(server: &str) -> Session {
        Session {
            server: server.into(),
            client_id: "sponsor-console".into(),
            access_token: "a.b.c".into(),
            refresh_token: Some("r".into()),
            expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            username: Some("alice".into()),
        }
    }

    #[test]
    fn round_trip_private_and_redacted() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SessionStore::at(dir.path());
        let s = session("http://127.0.0.1:7070");
        let path = store.save(&s).expect("the session saves");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(store.load(&s.server).ok().flatten(), Some(s.clone()));
        assert_eq!(store.load("http://other").ok().flatten(), None);
        assert!(!format!("{s:?}").contains("a.b.c"));
        assert!(store.remove(&s.server).unwrap_or(false));
        assert_eq!(store.load(&s.server).ok().flatten(), None);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SessionStore::at(dir.path());
        let path = store.path("http://x");
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path())).unwrap_or_default();
        std::fs::write(&path, "{not json").unwrap_or_default();
        assert!(matches!(
            store.load("http://x"),
            Err(SessionError::Corrupt { .. })
        ));
    }
}
