//! Sign-in state in SQLite: device authorizations, consents, failed attempts. What a poll or a
//! decision on the verification page may do is `domain::device`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::audit::append;
use super::rows::device_from_row;
use super::tokens::revoke_family;
use super::{SqliteStore, from_ms, ms};
use crate::domain::device;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::server::store::{
    AuthorizationCode, CodeRedemption, Consent, DevicePoll, DeviceRecord, DeviceStatus,
    NewAuditEvent, SignInStore, StoreError, StoreResult,
};

#[async_trait]
impl SignInStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn create_device_authorization(
        &self,
        record: &DeviceRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Forget authorizations that ended a day ago; their user codes may be issued again.
        sqlx::query("DELETE FROM device_authorizations WHERE expires_at < ?")
            .bind(ms(now) - 86_400_000)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO device_authorizations
             (device_code_hash, user_code, client_id, scope, status, interval_seconds, created_at, expires_at)
             VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
        )
        .bind(&record.device_code_hash)
        .bind(&record.user_code)
        .bind(&record.client_id)
        .bind(&record.scope)
        .bind(record.interval_seconds)
        .bind(ms(now))
        .bind(ms(record.expires_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Duplicate);
            }
            Err(e) => return Err(e.into()),
        }
        self.finish(tx).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn device_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceRecord>> {
        sqlx::query("SELECT * FROM device_authorizations WHERE user_code = ?")
            .bind(user_code)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(device_from_row)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(sponsor_id = %sponsor_id))]
    async fn decide_device(
        &self,
        user_code: &str,
        sponsor_id: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<DeviceRecord> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT * FROM device_authorizations WHERE user_code = ?")
            .bind(user_code)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut record = device_from_row(&row)?;
        device::may_decide(record.status, record.expires_at, now)?;
        let status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        sqlx::query(
            "UPDATE device_authorizations SET status = ?, sponsor_id = ?, approved_at = ?
             WHERE device_code_hash = ? AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(sponsor_id)
        .bind(approve.then(|| ms(now)))
        .bind(&record.device_code_hash)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(Actor::sponsor(sponsor_id), sponsor_id, {
                let decided = action::DeviceDecided {
                    client_id: record.client_id.clone(),
                    scope: record.scope.clone(),
                    user_code: record.user_code.clone(),
                };
                if approve {
                    AuditAction::DeviceApproved(decided)
                } else {
                    AuditAction::DeviceDenied(decided)
                }
            }),
            now,
        )
        .await?;
        self.finish(tx).await?;
        record.status = status;
        record.sponsor_id = Some(sponsor_id.to_owned());
        record.approved_at = approve.then_some(now);
        Ok(record)
    }

    #[tracing::instrument(skip_all)]
    async fn poll_device(
        &self,
        device_code_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<DevicePoll> {
        let mut tx = self.write().await?;
        let Some(row) = sqlx::query(
            "SELECT *, last_polled_at FROM device_authorizations WHERE device_code_hash = ?",
        )
        .bind(device_code_hash)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(DevicePoll::Unknown);
        };
        let record = device_from_row(&row)?;
        let last: Option<i64> = row.try_get("last_polled_at")?;
        let outcome = device::poll(
            &device::PollFacts {
                client_id: &record.client_id,
                status: record.status,
                sponsor_id: record.sponsor_id.as_deref(),
                scope: &record.scope,
                interval_seconds: record.interval_seconds,
                expires_at: record.expires_at,
                last_polled_at: last.map(from_ms),
                approved_at: record.approved_at,
            },
            client_id,
            now,
        );
        match &outcome {
            DevicePoll::Unknown | DevicePoll::Expired | DevicePoll::AlreadyRedeemed => {
                return Ok(outcome);
            }
            DevicePoll::Denied => {}
            DevicePoll::Pending => {
                sqlx::query(
                    "UPDATE device_authorizations SET last_polled_at = ? WHERE device_code_hash = ?",
                )
                .bind(ms(now))
                .bind(device_code_hash)
                .execute(&mut *tx)
                .await?;
            }
            DevicePoll::SlowDown { interval_seconds } => {
                sqlx::query(
                    "UPDATE device_authorizations SET interval_seconds = ?, last_polled_at = ? WHERE device_code_hash = ?",
                )
                .bind(interval_seconds)
                .bind(ms(now))
                .bind(device_code_hash)
                .execute(&mut *tx)
                .await?;
            }
            DevicePoll::Redeemed { .. } => {
                // Redeemed at most once: a concurrent poll that got here first wins.
                let done = sqlx::query(
                    "UPDATE device_authorizations SET status = 'redeemed', last_polled_at = ?
                     WHERE device_code_hash = ? AND status = 'approved'",
                )
                .bind(ms(now))
                .bind(device_code_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done != 1 {
                    return Ok(DevicePoll::AlreadyRedeemed);
                }
            }
        }
        self.finish(tx).await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip_all)]
    async fn create_authorization_code(
        &self,
        code: &AuthorizationCode,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM authorization_codes WHERE expires_at < ?")
            .bind(ms(now) - 86_400_000)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, scope, sponsor_id,
             code_challenge, nonce, auth_time, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(&code.sponsor_id)
        .bind(&code.code_challenge)
        .bind(&code.nonce)
        .bind(ms(code.auth_time))
        .bind(ms(code.expires_at))
        .execute(&mut *tx)
        .await?;
        self.finish(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        client_id: &str,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<CodeRedemption> {
        let mut tx = self.write().await?;
        let Some(row) = sqlx::query("SELECT * FROM authorization_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(CodeRedemption::Invalid);
        };
        let code = code_from_row(&row)?;
        if code.client_id != client_id {
            return Ok(CodeRedemption::Invalid);
        }
        let redeemed_at: Option<i64> = row.try_get("redeemed_at")?;
        if redeemed_at.is_some() {
            let family: Option<String> = row.try_get("family_id")?;
            if let Some(family) = family {
                let revoked = revoke_family(&mut tx, &family, now).await?;
                if !revoked.is_empty() {
                    append(
                        &mut tx,
                        NewAuditEvent::new(
                            Actor::system(),
                            code.sponsor_id.clone(),
                            AuditAction::TokenFamilyRevoked(action::FamilyRevoked {
                                reason: action::FamilyRevokedReason::AuthorizationCodeReuse,
                                client_id: client_id.to_owned(),
                                family_id: Some(family),
                                revoked_tokens: Some(revoked),
                            }),
                        ),
                        now,
                    )
                    .await?;
                }
            }
            self.finish(tx).await?;
            return Ok(CodeRedemption::Reused);
        }
        if code.expires_at <= now {
            return Ok(CodeRedemption::Invalid);
        }
        sqlx::query(
            "UPDATE authorization_codes SET redeemed_at = ?, family_id = ?
             WHERE code_hash = ? AND redeemed_at IS NULL",
        )
        .bind(ms(now))
        .bind(family_id)
        .bind(code_hash)
        .execute(&mut *tx)
        .await?;
        self.finish(tx).await?;
        Ok(CodeRedemption::Redeemed(code))
    }

    #[tracing::instrument(skip_all)]
    async fn put_consent(&self, consent: &Consent, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM device_consents WHERE expires_at <= ?")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO device_consents (consent_hash, sponsor_id, user_code, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&consent.consent_hash)
        .bind(&consent.sponsor_id)
        .bind(&consent.user_code)
        .bind(ms(consent.expires_at))
        .execute(&mut *tx)
        .await?;
        self.finish(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn take_consent(
        &self,
        consent_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Consent>> {
        let mut tx = self.write().await?;
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "DELETE FROM device_consents WHERE consent_hash = ?
             RETURNING sponsor_id, user_code, expires_at",
        )
        .bind(consent_hash)
        .fetch_optional(&mut *tx)
        .await?;
        self.finish(tx).await?;
        Ok(row
            .map(|(sponsor_id, user_code, expires_at)| Consent {
                consent_hash: consent_hash.to_owned(),
                sponsor_id,
                user_code,
                expires_at: from_ms(expires_at),
            })
            .filter(|c| c.expires_at > now))
    }

    #[tracing::instrument(skip_all)]
    async fn record_failure(&self, key: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Failures older than a day no longer count under any limit.
        sqlx::query("DELETE FROM auth_failures WHERE at < ?")
            .bind(ms(now) - 86_400_000)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO auth_failures (key, at) VALUES (?, ?)")
            .bind(key)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        self.finish(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn failures_since(&self, key: &str, since: DateTime<Utc>) -> StoreResult<u32> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM auth_failures WHERE key = ? AND at > ?")
                .bind(key)
                .bind(ms(since))
                .fetch_one(&self.reader)
                .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

fn code_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<AuthorizationCode> {
    Ok(AuthorizationCode {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: row.try_get("scope")?,
        sponsor_id: row.try_get("sponsor_id")?,
        code_challenge: row.try_get("code_challenge")?,
        nonce: row.try_get("nonce")?,
        auth_time: from_ms(row.try_get("auth_time")?),
        expires_at: from_ms(row.try_get("expires_at")?),
    })
}
