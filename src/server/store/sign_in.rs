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
