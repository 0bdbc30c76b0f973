//! The store boundary: everything the server persists goes through [`Store`]. Handlers never see
//! SQL, so a PostgreSQL implementation can fill the same trait. Every state change and the audit
//! event that records it commit in one transaction inside the implementation.

mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::policy::{Requirement, TrustRules};
use crate::domain::role::Role;
use crate::protocol::agents::{Agent, AgentStatus};
use crate::protocol::audit::{Actor, AuditAction, AuditEvent};
use crate::protocol::oauth::SubjectKind;
use crate::protocol::requests::{
    Decision, Grant, Request, RequestKind, RequestStatus, Suspension, TrustPoint,
};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A state conflict the caller can act on; `code` is the API error code.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A rule of the domain refused the change (422).
    #[error("{0}")]
    Invalid(#[from] crate::domain::Invalid),
    /// The caller may not make this change (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
}

impl StoreError {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An audit event to append; the store assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub actor: Actor,
    pub subject: String,
    pub action: AuditAction,
}

impl NewAuditEvent {
    pub fn new(actor: Actor, subject: impl Into<String>, action: AuditAction) -> Self {
        Self {
            actor,
            subject: subject.into(),
            action,
        }
    }
}

/// A token-signing key.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub private_pkcs8: Vec<u8>,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("private_pkcs8", &"<redacted>")
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A human principal of the local tenant.
#[derive(Clone)]
pub struct SponsorRecord {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub password_hash: String,
    pub active: bool,
}

impl std::fmt::Debug for SponsorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SponsorRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A sponsor to create, or to update by username.
#[derive(Clone)]
pub struct SponsorUpsert {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub password_hash: String,
    /// Where the account comes from: `config` or `cli`.
    pub source: String,
}

impl std::fmt::Debug for SponsorUpsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SponsorUpsert")
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    Redeemed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Redeemed => "redeemed",
        }
    }
    fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "redeemed" => DeviceStatus::Redeemed,
            other => return Err(StoreError::Corrupt(format!("device status {other:?}"))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub device_code_hash: String,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub status: DeviceStatus,
    pub sponsor_id: Option<String>,
    pub interval_seconds: i64,
    pub expires_at: DateTime<Utc>,
}

/// What a poll of the token endpoint with a device code finds.
#[derive(Debug, Clone)]
pub enum DevicePoll {
    /// No such device code (or issued to another client).
    Unknown,
    Expired,
    /// Polled sooner than the interval; the interval is now `interval_seconds`.
    SlowDown {
        interval_seconds: i64,
    },
    Pending,
    Denied,
    /// Already exchanged once: a device code is redeemed at most once.
    AlreadyRedeemed,
    /// Approved and now redeemed by this poll.
    Redeemed {
        sponsor_id: String,
        scope: String,
    },
}

/// A row of `access_tokens`.
#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    pub jti: String,
    pub subject_kind: SubjectKind,
    pub subject: String,
    pub client_id: String,
    pub family_id: Option<String>,
    pub scope: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub sponsor_id: String,
    pub client_id: String,
    pub scope: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token finds.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// Valid: it is now used, and its successor and access token are stored.
    Rotated { sponsor_id: String },
    /// Already used once: the whole family is now revoked.
    Reused,
    /// Unknown, expired, revoked, or issued to another client.
    Invalid,
}

/// A new agent with its first sponsor.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub did: String,
    pub name: String,
    pub public_key: String,
    pub capabilities: Vec<String>,
    pub sponsor_id: String,
    pub entra_object_id: Option<String>,
    pub model: Option<String>,
    pub runtime: Option<String>,
    pub max_agents_per_sponsor: u32,
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

/// What registering an agent did.
#[derive(Debug, Clone)]
pub enum Registered {
    Created(Box<Agent>),
    /// The same `Idempotency-Key` and body were seen before: this is that answer again.
    Replayed(StoredResponse),
}

/// What an agent authenticates with.
#[derive(Debug, Clone)]
pub struct AgentCredential {
    pub did: String,
    pub public_key: String,
    pub status: AgentStatus,
    pub capabilities: Vec<String>,
}

/// The child of a delegation request.
#[derive(Debug, Clone)]
pub enum ChildSpec {
    Existing(String),
    /// Registered in the same transaction as the request, with the parent's sponsors.
    New {
        did: String,
        name: String,
        public_key: String,
        model: Option<String>,
        runtime: Option<String>,
        trust_score: i64,
        /// The child counts against each sponsor's agent limit.
        max_agents_per_sponsor: u32,
    },
}

/// A request to store. Approval fatigue is decided inside the transaction, so concurrent
/// submissions count each other.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub kind: RequestKind,
    pub agent_did: String,
    pub child: Option<ChildSpec>,
    pub capabilities: Vec<String>,
    pub duration_seconds: i64,
    pub justification: String,
    pub ticket: Option<String>,
    pub context: Option<String>,
    pub on_behalf_of: Option<String>,
    pub requirement: Requirement,
    pub trust_score: i64,
    pub expires_at: DateTime<Utc>,
    pub fatigue_limit: u32,
    pub fatigue_window_seconds: i64,
    pub fatigue_penalty: i64,
}

#[derive(Debug, Clone)]
pub enum Submitted {
    Created(Box<Request>),
    Replayed(StoredResponse),
}

/// A human's decision, with the rules the store applies inside its transaction.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub approver_id: String,
    pub approver_username: String,
    pub decision: Decision,
    pub duration_seconds: Option<i64>,
    pub capabilities: Option<Vec<String>>,
    pub justification: String,
    pub trust: TrustRules,
    pub max_delegation_depth: i64,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only requests about agents this sponsor sponsors (`None`: all).
    pub sponsor_id: Option<String>,
    /// Only requests made by this agent.
    pub agent_did: Option<String>,
    pub status: Option<RequestStatus>,
    pub limit: u32,
    /// Pending lists only: continue after this (expires_at, id), as the last page ended.
    pub after: Option<(DateTime<Utc>, String)>,
}

/// Which grants to list.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub sponsor_id: Option<String>,
    pub agent_did: Option<String>,
    pub active_only: bool,
}

/// Whose agents to suspend.
#[derive(Debug, Clone)]
pub enum SuspendTarget {
    /// One agent and its delegated descendants.
    Agent(String),
    /// Every agent of a sponsor, with their descendants.
    Sponsor(String),
}

/// Which audit events a reader may see.
#[derive(Debug, Clone)]
pub enum AuditScope {
    All,
    /// Events by this sponsor or about the agents they sponsor.
    Sponsor(String),
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    // Keys.
    /// Keys still published (current and recently retired), newest first.
    async fn published_keys(&self, now: DateTime<Utc>) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Adds a signing key; any current key stops signing and stays published until `publish_until`.
    async fn rotate_signing_key(
        &self,
        key: SigningKeyRecord,
        publish_old_until: DateTime<Utc>,
        actor: Actor,
    ) -> StoreResult<()>;

    // Sponsors.
    /// Creates a sponsor, or updates the roles, name and password of one with that username.
    async fn upsert_sponsor(
        &self,
        sponsor: &SponsorUpsert,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<SponsorRecord>;
    async fn sponsor_by_username(&self, username: &str) -> StoreResult<Option<SponsorRecord>>;
    async fn sponsor_by_id(&self, id: &str) -> StoreResult<Option<SponsorRecord>>;
    async fn list_sponsors(&self) -> StoreResult<Vec<SponsorRecord>>;

    // Device authorization grant.
    async fn create_device_authorization(
        &self,
        record: &DeviceRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn device_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceRecord>>;
    /// Approves or denies a pending, unexpired authorization, with its audit event.
    async fn decide_device(
        &self,
        user_code: &str,
        sponsor_id: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<DeviceRecord>;
    /// One poll of the token endpoint; on success the code is redeemed (at most once).
    async fn poll_device(
        &self,
        device_code_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<DevicePoll>;

    // Tokens.
    /// Stores an issued access token (and optionally a refresh token and an audit event).
    async fn record_tokens(
        &self,
        access: &AccessTokenRecord,
        refresh: Option<&NewRefreshToken>,
        audit: Option<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// One primary-key lookup.
    async fn access_token(&self, jti: &str) -> StoreResult<Option<AccessTokenRecord>>;
    async fn revoke_access_token(
        &self,
        jti: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The sponsor a refresh token belongs to, if it exists (a read; [`Store::use_refresh_token`]
    /// decides).
    async fn refresh_token_sponsor(&self, token_hash: &str) -> StoreResult<Option<String>>;
    /// Uses a refresh token: rotates it (storing `next` and `access`) or detects reuse.
    async fn use_refresh_token(
        &self,
        token_hash: &str,
        client_id: &str,
        next: &NewRefreshToken,
        access: &AccessTokenRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes the family of a refresh token; false when the token is unknown or another client's.
    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        client_id: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records a client assertion's `jti`; false when it was already used.
    async fn consume_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Client credentials in one transaction: the assertion's `jti` is consumed, the access
    /// token stored and audited. Returns false (and changes nothing) on a replayed `jti`.
    async fn issue_agent_token(
        &self,
        assertion_jti: &str,
        assertion_expires_at: DateTime<Utc>,
        access: &AccessTokenRecord,
        grant_ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    // Agents.
    /// Registers an agent, its audit event and (with a key) the answer to replay, in one
    /// transaction; a repeated key with the same body replays, with another body conflicts.
    async fn register_agent(
        &self,
        agent: NewAgent,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Registered>;
    /// An agent, its trust decayed to `now`.
    async fn agent(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Option<Agent>>;
    async fn agent_credential(&self, did: &str) -> StoreResult<Option<AgentCredential>>;
    async fn agents_of_sponsor(
        &self,
        sponsor_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Agent>>;
    async fn all_agents(&self, now: DateTime<Utc>) -> StoreResult<Vec<Agent>>;
    async fn is_sponsor_of(&self, sponsor_id: &str, did: &str) -> StoreResult<bool>;

    // Audit.
    async fn audit_page(
        &self,
        scope: &AuditScope,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    async fn append_audit(&self, event: NewAuditEvent, now: DateTime<Utc>) -> StoreResult<i64>;
    /// The newest `limit` events in scope, oldest first.
    async fn audit_tail(&self, scope: &AuditScope, limit: u32) -> StoreResult<Vec<AuditEvent>>;
    /// The `seq` of the newest audit event (0 for an empty chain).
    async fn audit_head(&self) -> StoreResult<i64>;

    // Requests.
    async fn submit_request(
        &self,
        request: NewRequest,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Submitted>;
    async fn request(&self, id: &str) -> StoreResult<Option<Request>>;
    async fn list_requests(&self, filter: &RequestFilter) -> StoreResult<Vec<Request>>;
    /// Records a decision; the request's status, grant, trust event and exactly one audit event
    /// change in one transaction.
    async fn decide_request(
        &self,
        id: &str,
        input: DecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Request>;
    /// The agent that made a pending request withdraws it.
    async fn cancel_request(
        &self,
        id: &str,
        agent_did: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Request>;
    /// Expires pending requests past their TTL (a deny); returns their ids.
    async fn expire_requests(
        &self,
        now: DateTime<Utc>,
        trust_delta: i64,
    ) -> StoreResult<Vec<String>>;

    // Grants.
    async fn active_grants(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Vec<Grant>>;
    async fn grant(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Grant>>;
    async fn list_grants(
        &self,
        filter: &GrantFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Grant>>;
    /// Revokes a grant early with the grants delegated from it, and the tokens carrying them.
    async fn revoke_grant(
        &self,
        id: &str,
        actor: Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension>;

    // Kill switch.
    /// Suspends in one transaction: statuses, grants, pending requests, tokens.
    async fn suspend(
        &self,
        target: SuspendTarget,
        reason: &str,
        security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension>;
    /// Lifts a suspension of one agent; `may_lift_security` says whether the caller may lift a
    /// security suspension.
    async fn reactivate(
        &self,
        did: &str,
        reason: &str,
        may_lift_security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Agent>;
    /// Revokes an agent for good, with its descendants.
    async fn revoke_agent(
        &self,
        did: &str,
        reason: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension>;
    /// The agents a suspension of `target` would reach, without changing anything.
    async fn suspension_targets(&self, target: &SuspendTarget) -> StoreResult<Vec<String>>;

    // Trust.
    async fn trust_history(&self, did: &str, limit: u32) -> StoreResult<Vec<TrustPoint>>;

    /// A receiver that changes after every committed write (wakes SSE streams and long polls).
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}
