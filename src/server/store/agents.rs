//! Agents and the humans who sponsor them: sponsors, agent identities and their keys, trust
//! history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Idempotency, StoreResult, StoredResponse};
use crate::domain::role::Role;
use crate::protocol::agents::{Agent, AgentStatus};
use crate::protocol::audit::Actor;
use crate::protocol::requests::TrustPoint;

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

/// A sponsor vouched for by a trusted issuer (`domain::external`): created on first sight,
/// its name and roles following the newest token that states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalSponsor {
    /// `entra:<tid>:<oid>`; also its username, a form local usernames may not take.
    pub id: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    /// Where the account comes from: `entra`.
    pub source: String,
    /// When the issuer stated these roles (the token's `iat`): an older statement never
    /// overwrites a newer one.
    pub stated_at: DateTime<Utc>,
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

#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates a sponsor, or updates the roles, name and password of one with that username.
    async fn upsert_sponsor(
        &self,
        sponsor: &SponsorUpsert,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<SponsorRecord>;
    /// Creates an external sponsor, or updates its name and roles when `sponsor.stated_at` is
    /// newer than what they were last set from; writes `sponsor.added` / `sponsor.updated` in
    /// the same transaction. Returns whether anything changed.
    async fn sync_external_sponsor(
        &self,
        sponsor: &ExternalSponsor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn sponsor_by_username(&self, username: &str) -> StoreResult<Option<SponsorRecord>>;
    async fn sponsor_by_id(&self, id: &str) -> StoreResult<Option<SponsorRecord>>;
    async fn list_sponsors(&self) -> StoreResult<Vec<SponsorRecord>>;

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

    async fn trust_history(&self, did: &str, limit: u32) -> StoreResult<Vec<TrustPoint>>;
}
