//! Tokens: signing keys, access and refresh tokens, client assertions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use super::agents::AgentCredential;
use super::audit::NewAuditEvent;
use crate::protocol::audit::Actor;
use crate::protocol::oauth::SubjectKind;

/// What issuing an agent a token reads: its credential and the grants in force.
#[derive(Debug, Clone)]
pub struct TokenSubject {
    pub credential: AgentCredential,
    pub grants: Vec<ActiveGrant>,
}

/// A grant in force, as a token carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveGrant {
    pub id: String,
    pub capabilities: Vec<String>,
    pub not_after: DateTime<Utc>,
}

/// What a signing key signs with: Ed25519 signs access tokens, assertions and checkpoints;
/// RSA signs OpenID Connect ID tokens (RS256, which every relying party accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    EdDSA,
    RS256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(SigningAlg::EdDSA),
            "RS256" => Some(SigningAlg::RS256),
            _ => None,
        }
    }
}

/// A token-signing key. `public_key` is the JWK's `x` for Ed25519, and a JSON object with the
/// JWK's `n` and `e` for RSA.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
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
            .field("alg", &self.alg)
            .field("private_pkcs8", &"<redacted>")
            .field("retired_at", &self.retired_at)
            .finish()
    }
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

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Keys still published (current and recently retired), newest first.
    async fn published_keys(&self, now: DateTime<Utc>) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Adds signing keys in one transaction, each with its `signing_key.rotated` event; the
    /// current key of each one's algorithm stops signing and stays published until
    /// `publish_old_until`.
    async fn rotate_signing_keys(
        &self,
        keys: &[SigningKeyRecord],
        publish_old_until: DateTime<Utc>,
        actor: Actor,
    ) -> StoreResult<()>;

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
    ) -> StoreResult<bool>;
    /// Forgets client assertions that expired before `now`: they can no longer be replayed,
    /// since an expired assertion is refused before its `jti` is looked at. Returns how many.
    async fn forget_expired_assertions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// The agent's credential and its grants in force at `now` (not revoked, begun, not ended;
    /// soonest to end first), in one read: what the token endpoint checks before it issues.
    async fn token_subject(
        &self,
        did: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<TokenSubject>>;
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
}
