//! Which database the server keeps its data in: `--database` or `[server] database`, a SQLite
//! file or a PostgreSQL URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SettingsError;

/// Where the server's data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: a path, or `sqlite://` followed by one.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL: `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl Database {
    /// Reads a `--database` value: a PostgreSQL URL by its scheme, anything else a SQLite file.
    pub fn parse(value: &str) -> Self {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Self::Postgres(value.to_owned());
        }
        let path = value.strip_prefix("sqlite://").unwrap_or(value);
        Self::Sqlite(PathBuf::from(path))
    }
}

/// `[postgres]`: each instance's pool of connections (SQLite ignores it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// Connections one instance keeps for requests (it opens two more: the listener's and the
    /// leader's). Several instances together must stay under the server's `max_connections`.
    pub max_connections: u32,
    /// How long a request waits for a free connection before the answer is a 503 with
    /// `Retry-After` (`5s`, `500ms`).
    pub acquire_timeout: String,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: "5s".into(),
        }
    }
}

impl PostgresSettings {
    /// `acquire_timeout` as a duration, from 100 ms to 5 minutes.
    pub fn acquire_timeout(&self) -> Result<Duration, SettingsError> {
        humantime::parse_duration(&self.acquire_timeout)
            .ok()
            .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(300)).contains(d))
            .ok_or_else(|| {
                SettingsError::Invalid(format!(
                    "postgres.acquire_timeout: {:?} is not a duration from 100ms to 5m (e.g. \"5s\")",
                    self.acquire_timeout
                ))
            })
    }

    /// Checks both keys.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=1000).contains(&self.max_connections) {
            return Err(SettingsError::Invalid(format!(
                "postgres.max_connections must be between 1 and 1000, not {}",
                self.max_connections
            )));
        }
        self.acquire_timeout().map(|_| ())
    }
}

/// The path, or the URL with its password hidden: what logs and messages may show.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

/// As [`Display`](fmt::Display): a URL's password never reaches a log through `Debug` either.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(_) => write!(f, "Sqlite({self})"),
            Self::Postgres(_) => write!(f, "Postgres({self})"),
        }
    }
}

/// A connection URL with the password (in the user part or a `password=` parameter) replaced.
fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return without_user(url);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".into() } else { v };
                (k.into_owned(), v.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// A URL that does not parse, shown without its user part (where a password would be) and
/// without its parameters.
fn without_user(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_and_paths_stay_sqlite() {
        assert_eq!(
            Database::parse("postgres://app@db:5432/gov"),
            Database::Postgres("postgres://app@db:5432/gov".into())
        );
        assert_eq!(
            Database::parse("postgresql://db/gov"),
            Database::Postgres("postgresql://db/gov".into())
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/gov.db"),
            Database::Sqlite("/var/lib/gov.db".into())
        );
        assert_eq!(
            Database::parse("data/gov.db"),
            Database::Sqlite("data/gov.db".into())
        );
    }

    #[test]
    fn pool_settings_are_checked() {
        let ok = PostgresSettings::default();
        assert_eq!(ok.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(ok.acquire_timeout().ok(), Some(Duration::from_secs(5)));
        for (max_connections, acquire_timeout, says) in [
            (0, "5s", "postgres.max_connections"),
            (1001, "5s", "postgres.max_connections"),
            (8, "0s", "postgres.acquire_timeout"),
            (8, "soon", "postgres.acquire_timeout"),
            (8, "1h", "postgres.acquire_timeout"),
        ] {
            let bad = PostgresSettings {
                max_connections,
                acquire_timeout: acquire_timeout.into(),
            };
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let db = Database::parse("postgres://app:s3cret@db:5432/gov?sslmode=require&password=x2");
        let shown = format!("{db} {db:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("x2"),
            "{shown}"
        );
        assert!(shown.contains("postgres://app:***@db:5432/gov"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        let broken = Database::parse("postgres://app:s3cret@db:port/gov?password=x2");
        assert_eq!(broken.to_string(), "postgres://db:port/gov");
    }
}
