//! Sign-in state every server instance must share: device authorizations (RFC 8628), the
//! consents of the verification page, and the failed attempts rate limits count.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::device::{DevicePoll, DeviceStatus};

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
    /// When the person approved it: an ID token's `auth_time`.
    pub approved_at: Option<DateTime<Utc>>,
}

/// A one-time code of the authorization endpoint (RFC 6749 §4.1), kept by its hash, with what
/// redeeming it must match: the client, the redirect URI and the PKCE challenge (RFC 7636,
/// S256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub sponsor_id: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// When the person's password was checked.
    pub auth_time: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting an authorization code finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// Unused and unexpired, issued to this client: now used, its tokens to join `family_id`.
    Redeemed(AuthorizationCode),
    /// Used before: the sign-in it began is now revoked.
    Reused,
    /// Unknown, expired, or another client's.
    Invalid,
}

/// A signed-in human on the verification page who has not yet approved or denied; kept by the
/// hash of the secret the page carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub consent_hash: String,
    pub sponsor_id: String,
    pub user_code: String,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait SignInStore: Send + Sync {
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

    /// Keeps an authorization code (and forgets codes that expired a day ago).
    async fn create_authorization_code(
        &self,
        code: &AuthorizationCode,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Redeems a code at most once for `client_id`, its tokens to form `family_id`. A second
    /// use revokes that family's tokens, with a `token.family_revoked` event.
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        client_id: &str,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<CodeRedemption>;

    /// Keeps a consent (and forgets expired ones).
    async fn put_consent(&self, consent: &Consent, now: DateTime<Utc>) -> StoreResult<()>;
    /// Takes a consent, once: it is deleted, and returned only while unexpired.
    async fn take_consent(
        &self,
        consent_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Consent>>;

    /// Records a failed attempt under `key` (a wrong user code or password, per address or
    /// account).
    async fn record_failure(&self, key: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// How many failures `key` has had since `since`.
    async fn failures_since(&self, key: &str, since: DateTime<Utc>) -> StoreResult<u32>;
}
