//! PostgreSQL for tests: the server `TEST_DATABASE_URL` names, a fresh schema or database per
//! test, dropped after. Unset, the tests that need it are skipped and say so.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// The variable that names the test server.
pub const VARIABLE: &str = "TEST_DATABASE_URL";

/// The test server's URL, or why there is none.
pub fn url() -> Result<String, String> {
    match std::env::var(VARIABLE) {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => Err(format!(
            "{VARIABLE} is not set (no PostgreSQL to test against)"
        )),
    }
}

/// A fresh name for a schema or database of one test.
fn fresh_name() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// Runs `sql` on a connection of its own to `url`.
async fn run(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    conn.close().await
}

/// Runs `sql` from outside any runtime (a `Drop`), ending the test's own connections first,
/// which a failed test may have left inside a transaction.
fn clean_up(url: String, application: String, sql: String) {
    let statement = sql.clone();
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let ended = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = '{application}' AND pid <> pg_backend_pid()"
            );
            run(&url, &ended).await?;
            run(&url, &statement).await
        })
        .map_err(|e| e.to_string())
    })
    .join();
    if let Ok(Err(e)) | Err(e) = done.map_err(|_| "the clean-up thread panicked".to_owned()) {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "PostgreSQL clean-up failed ({sql}): {e}");
    }
}

/// A schema of its own for one test, dropped with everything in it when this is dropped.
pub struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// Creates one in the test server's database; `Err` says why it was skipped.
    pub async fn create() -> Result<Self, String> {
        let url = url()?;
        let name = fresh_name();
        run(&url, &format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("{VARIABLE} is set but PostgreSQL refused: {e}"));
        Ok(Self { url, name })
    }

    /// Connection options that work in this schema only; its connections carry its name.
    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .unwrap_or_else(|e| panic!("{VARIABLE} does not parse: {e}"))
            .options([("search_path", self.name.as_str())])
            .application_name(&self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        clean_up(self.url.clone(), self.name.clone(), sql);
    }
}

/// A database of its own for one test (for a server process, which takes a URL), dropped when
/// this is dropped.
pub struct Database {
    admin_url: String,
    name: String,
    /// Its URL, for `--database`.
    pub url: String,
}

impl Database {
    /// Creates one on the test server; `Err` says why it was skipped.
    pub async fn create() -> Result<Self, String> {
        let admin_url = url()?;
        let name = fresh_name();
        run(&admin_url, &format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("{VARIABLE} is set but PostgreSQL refused: {e}"));
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("{VARIABLE} does not parse: {e}"));
        url.set_path(&name);
        Ok(Self {
            admin_url,
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // FORCE ends whatever connection a server process left.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        clean_up(self.admin_url.clone(), self.name.clone(), sql);
    }
}

/// A role that may log in and nothing else, for a test that needs a user without rights,
/// dropped when this is dropped (after the databases where it was granted anything, so make
/// it first).
pub struct LoginRole {
    admin_url: String,
    /// Its name.
    pub name: String,
}

impl LoginRole {
    /// Creates one on the test server; `Err` says why it was skipped.
    pub async fn create() -> Result<Self, String> {
        let admin_url = url()?;
        let name = fresh_name();
        run(&admin_url, &format!("CREATE ROLE {name} LOGIN"))
            .await
            .unwrap_or_else(|e| panic!("{VARIABLE} is set but PostgreSQL refused: {e}"));
        Ok(Self { admin_url, name })
    }

    /// `database`'s URL, signing in as this role.
    pub fn url(&self, database: &Database) -> String {
        let mut url = url::Url::parse(&database.url)
            .unwrap_or_else(|e| panic!("{VARIABLE} does not parse: {e}"));
        url.set_username(&self.name)
            .unwrap_or_else(|()| panic!("{} has no user part", database.url));
        url.to_string()
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        let sql = format!("DROP ROLE IF EXISTS {}", self.name);
        clean_up(self.admin_url.clone(), self.name.clone(), sql);
    }
}
