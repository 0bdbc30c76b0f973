//! The store boundary: everything the server persists goes through these traits, one per area
//! ([`AgentStore`], [`SignInStore`], [`TokenStore`], [`RequestStore`], [`GrantStore`],
//! [`AuditStore`], [`ActionStore`], [`ClientStore`]), with
//! [`Store`] for code that needs them all. Handlers never see SQL. Each method that changes
//! state loads the facts a rule of `domain` needs, calls the rule and writes its outcome and the
//! audit event that records it in one transaction. `tests/integration/conformance` checks any
//! implementation against the same suite.

mod actions;
mod agents;
mod audit;
mod clients;
mod grants;
mod health;
mod postgres;
mod records;
mod requests;
mod sign_in;
mod sqlite;
mod tokens;

pub use actions::{ActionDecisionInput, ActionFilter, ActionStore, Arrival, NewAction};
pub use agents::{
    AgentCredential, AgentStore, ExternalSponsor, NewAgent, Registered, SponsorRecord,
    SponsorUpsert,
};
pub use audit::{AuditScope, AuditStore, NewAuditEvent, RevocationSnapshot};
pub use clients::{ClientAuth, ClientStore, ResourceClient};
pub use grants::{GrantFilter, GrantStore, SuspendTarget};
pub use health::HealthStore;
pub use postgres::{PgStore, PoolSize};
pub use requests::{
    ChildSpec, DecisionInput, NewChild, NewRequest, RequestFilter, RequestStore, Submitted,
};
pub use sign_in::{AuthorizationCode, CodeRedemption, Consent, DeviceRecord, SignInStore};
pub use sqlite::{LockError, ServeLock, SqliteStore};
pub use tokens::{
    AccessTokenRecord, ActiveGrant, NewRefreshToken, RefreshOutcome, SigningAlg, SigningKeyRecord,
    TokenStore, TokenSubject,
};

pub use crate::domain::device::{DevicePoll, DeviceStatus};
use crate::domain::{Invalid, Refusal};

/// What storing can fail with. The store reports storage facts only; when a domain rule it
/// applied inside its transaction refuses, the rule's [`Refusal`] passes through unchanged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the call names does not exist.
    #[error("not found")]
    NotFound,
    /// A row with the same unique key exists (an agent's key, a user code).
    #[error("already exists")]
    Duplicate,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A domain rule refused the change; nothing was written.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A write that shared a transaction which failed as a whole (a group commit): nothing of
    /// it was stored. Carries the failure's outage, if it was one, and its message.
    #[error("the shared commit failed: {message}")]
    SharedCommit {
        outage: Option<Outage>,
        message: String,
    },
}

/// Why the store cannot take a write right now; both pass when the cause does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk (or the database's size limit) is full.
    Full,
    /// The database is busy, read-only, or failing to read or write.
    Unavailable,
}

impl StoreError {
    /// Whether this error is an outage of the store rather than a fault of the request or the
    /// data: the answer is then 507 or 503 with `Retry-After`, never a 500.
    pub fn outage(&self) -> Option<Outage> {
        let e = match self {
            StoreError::Database(e) => e,
            StoreError::SharedCommit { outage, .. } => return *outage,
            _ => return None,
        };
        match e {
            sqlx::Error::Database(db) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    return postgres_outage(pg.code());
                }
                // SQLite's primary result code is the low byte of the extended one.
                let code: i64 = db.code()?.parse().ok()?;
                match code & 0xff {
                    13 => Some(Outage::Full),
                    5 | 6 | 8 | 10 | 14 => Some(Outage::Unavailable),
                    _ => None,
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::InvalidSavePointStatement => Some(Outage::Unavailable),
            _ => None,
        }
    }
}

impl StoreError {
    /// What an operator can do about a database that would not open, for the causes that
    /// have a known remedy: a wrong user or password, a missing database or schema, a role
    /// without the right to create the tables, a schema migrated by a newer release.
    pub fn hint(&self) -> Option<&'static str> {
        use sqlx::migrate::MigrateError;
        let e = match self {
            StoreError::Database(e)
            | StoreError::Migrate(
                MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _),
            ) => e,
            StoreError::Migrate(MigrateError::VersionMissing(_)) => {
                return Some(
                    "a newer governance-server has migrated this database: run that release here",
                );
            }
            _ => return None,
        };
        let db = e.as_database_error()?;
        let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
        match pg.code() {
            "28000" | "28P01" => Some(
                "check the user and password in the URL, or PGPASSWORD, and the server's pg_hba.conf",
            ),
            "3D000" => Some("create the database first, with createdb, or name one that exists"),
            "3F000" => Some("create the schema the search_path names, or name one that exists"),
            "42501" => Some(
                "the role may not create the tables: GRANT CREATE ON SCHEMA to it, or start once \
                 as the schema's owner so the migrations run",
            ),
            _ => None,
        }
    }
}

/// Which PostgreSQL errors (by SQLSTATE) are outages: a full disk, a server out of
/// connections or memory, shutting down or starting, a lost connection, a read-only standby,
/// a transaction that lost a deadlock or a serialization conflict (worth retrying).
fn postgres_outage(sqlstate: &str) -> Option<Outage> {
    match sqlstate {
        "53100" => Some(Outage::Full),
        "25006" | "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" => {
            Some(Outage::Unavailable)
        }
        s if s.starts_with("08") || s.starts_with("53") => Some(Outage::Unavailable),
        _ => None,
    }
}

impl StoreError {
    /// The same failure, for each of the writes it failed together (see `SharedCommit`).
    pub fn shared(&self) -> StoreError {
        StoreError::SharedCommit {
            outage: self.outage(),
            message: self.to_string(),
        }
    }
}

impl From<Invalid> for StoreError {
    fn from(e: Invalid) -> Self {
        Self::Refused(e.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the server stores, for code that needs all of it (the server's state).
pub trait Store:
    AgentStore
    + ActionStore
    + ClientStore
    + SignInStore
    + TokenStore
    + RequestStore
    + GrantStore
    + AuditStore
    + HealthStore
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: AgentStore
        + ActionStore
        + ClientStore
        + SignInStore
        + TokenStore
        + RequestStore
        + GrantStore
        + AuditStore
        + HealthStore
        + std::fmt::Debug
{
}

/// An `Idempotency-Key` claim carried by a creating POST.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub principal: String,
    pub key: String,
    pub request_hash: String,
}
/// A stored answer to replay for a repeated `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}
