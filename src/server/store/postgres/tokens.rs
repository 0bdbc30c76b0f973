//! Tokens in PostgreSQL: signing keys, access and refresh tokens, client assertions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::audit::append;
use super::rows::access_from_row;
use super::{PgStore, Tx, from_ms, ms, opt_from_ms};
use crate::domain::effective;
use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::server::store::records::token_subject_of;
use crate::server::store::{
    AccessTokenRecord, NewAuditEvent, NewRefreshToken, RefreshOutcome, SigningAlg,
    SigningKeyRecord, StoreResult, TokenStore, TokenSubject,
};

/// Introspection's only query: one primary-key lookup.
const ACCESS_TOKEN_BY_JTI: &str = "SELECT * FROM access_tokens WHERE jti = $1";

async fn insert_access(tx: &mut Tx<'_>, a: &AccessTokenRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (jti, subject_kind, subject, client_id, family_id, scope, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&a.jti)
    .bind(a.subject_kind.as_str())
    .bind(&a.subject)
    .bind(&a.client_id)
    .bind(&a.family_id)
    .bind(&a.scope)
    .bind(ms(a.issued_at))
    .bind(ms(a.expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_refresh(tx: &mut Tx<'_>, r: &NewRefreshToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, sponsor_id, client_id, scope, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.token_hash)
    .bind(&r.family_id)
    .bind(&r.sponsor_id)
    .bind(&r.client_id)
    .bind(&r.scope)
    .bind(ms(r.issued_at))
    .bind(ms(r.expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A range over `client_assertions_by_expiry`.
const FORGET_EXPIRED_ASSERTIONS: &str = "DELETE FROM client_assertions WHERE expires_at < $1";

async fn insert_assertion(
    tx: &mut Tx<'_>,
    issuer: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO client_assertions (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(issuer)
    .bind(jti)
    .bind(ms(expires_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

async fn family_has_live_tokens(tx: &mut Tx<'_>, family: &str) -> StoreResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1::BIGINT FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL LIMIT 1",
    )
    .bind(family)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Revokes a refresh-token family and its access tokens; returns the access tokens revoked.
pub(super) async fn revoke_family(
    tx: &mut Tx<'_>,
    family: &str,
    now: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(ms(now))
    .bind(family)
    .execute(&mut **tx)
    .await?;
    let revoked: Vec<(String,)> = sqlx::query_as(
        "UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL
         RETURNING jti",
    )
    .bind(ms(now))
    .bind(family)
    .fetch_all(&mut **tx)
    .await?;
    let mut jtis: Vec<String> = revoked.into_iter().map(|(jti,)| jti).collect();
    jtis.sort();
    Ok(jtis)
}

#[async_trait]
impl TokenStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn published_keys(&self, now: DateTime<Utc>) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_pkcs8, public_key, created_at, retired_at, publish_until
             FROM signing_keys WHERE publish_until IS NULL OR publish_until > $1
             ORDER BY created_at DESC",
        )
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRecord {
                    kid: r.try_get("kid")?,
                    alg: SigningAlg::parse(r.try_get("alg")?).ok_or_else(|| {
                        crate::server::store::StoreError::Corrupt("signing key alg".into())
                    })?,
                    private_pkcs8: r.try_get("private_pkcs8")?,
                    public_key: r.try_get("public_key")?,
                    created_at: from_ms(r.try_get("created_at")?),
                    retired_at: opt_from_ms(r.try_get("retired_at")?),
                    publish_until: opt_from_ms(r.try_get("publish_until")?),
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_signing_keys(
        &self,
        keys: &[SigningKeyRecord],
        publish_old_until: DateTime<Utc>,
        actor: Actor,
    ) -> StoreResult<()> {
        let Some(now) = keys.first().map(|k| k.created_at) else {
            return Ok(());
        };
        let mut tx = self.write().await?;
        for key in keys {
            let retired = sqlx::query(
                "UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL AND alg = $3",
            )
            .bind(ms(now))
            .bind(ms(publish_old_until))
            .bind(key.alg.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_pkcs8, public_key, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(&key.private_pkcs8)
            .bind(&key.public_key)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            append(
                &mut tx,
                NewAuditEvent::new(
                    actor.clone(),
                    key.kid.clone(),
                    AuditAction::SigningKeyRotated(action::KeyRotated {
                        retired_keys: retired,
                        previous_published_until: publish_old_until,
                    }),
                ),
                now,
            )
            .await?;
        }
        self.finish(tx).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn record_tokens(
        &self,
        access: &AccessTokenRecord,
        refresh: Option<&NewRefreshToken>,
        audit: Option<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_access(&mut tx, access).await?;
        if let Some(r) = refresh {
            insert_refresh(&mut tx, r).await?;
        }
        if let Some(event) = audit {
            append(&mut tx, event, now).await?;
        }
        self.finish(tx).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn access_token(&self, jti: &str) -> StoreResult<Option<AccessTokenRecord>> {
        sqlx::query(ACCESS_TOKEN_BY_JTI)
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(access_from_row)
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_access_token(
        &self,
        jti: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL",
        )
        .bind(ms(now))
        .bind(jti)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            append(
                &mut tx,
                NewAuditEvent::new(
                    actor,
                    jti,
                    AuditAction::TokenRevoked(action::TokenRevoked {
                        token_type: "access_token".into(),
                    }),
                ),
                now,
            )
            .await?;
        }
        self.finish(tx).await?;
        Ok(changed == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn refresh_token_sponsor(&self, token_hash: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT sponsor_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    #[tracing::instrument(skip_all)]
    async fn use_refresh_token(
        &self,
        token_hash: &str,
        client_id: &str,
        next: &NewRefreshToken,
        access: &AccessTokenRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.write().await?;
        let row: Option<(String, String, String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT family_id, sponsor_id, client_id, expires_at, used_at, revoked_at
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((family, sponsor_id, owner, expires_at, used_at, revoked_at)) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        if owner != client_id || sponsor_id != next.sponsor_id {
            return Ok(RefreshOutcome::Invalid);
        }
        if used_at.is_some() {
            // Reuse of a rotated token: someone holds a copy. Revoke the whole family.
            if revoked_at.is_none() || family_has_live_tokens(&mut tx, &family).await? {
                let revoked = revoke_family(&mut tx, &family, now).await?;
                append(
                    &mut tx,
                    NewAuditEvent::new(
                        Actor::system(),
                        sponsor_id.clone(),
                        AuditAction::TokenFamilyRevoked(action::FamilyRevoked {
                            reason: action::FamilyRevokedReason::RefreshTokenReuse,
                            client_id: client_id.to_owned(),
                            family_id: Some(family.clone()),
                            revoked_tokens: Some(revoked),
                        }),
                    ),
                    now,
                )
                .await?;
            }
            self.finish(tx).await?;
            return Ok(RefreshOutcome::Reused);
        }
        if revoked_at.is_some() || expires_at <= ms(now) {
            return Ok(RefreshOutcome::Invalid);
        }
        let sponsor_active: Option<(String,)> =
            sqlx::query_as("SELECT status FROM sponsors WHERE id = $1")
                .bind(&sponsor_id)
                .fetch_optional(&mut *tx)
                .await?;
        if !matches!(sponsor_active, Some((ref s,)) if s == "active") {
            return Ok(RefreshOutcome::Invalid);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(ms(now))
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        let mut next = next.clone();
        next.family_id.clone_from(&family);
        next.sponsor_id.clone_from(&sponsor_id);
        insert_refresh(&mut tx, &next).await?;
        let mut access = access.clone();
        access.family_id = Some(family);
        insert_access(&mut tx, &access).await?;
        self.finish(tx).await?;
        Ok(RefreshOutcome::Rotated { sponsor_id })
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        client_id: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT family_id, client_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((family, owner)) = row else {
            return Ok(false);
        };
        if owner != client_id {
            return Ok(false);
        }
        if family_has_live_tokens(&mut tx, &family).await? {
            let revoked = revoke_family(&mut tx, &family, now).await?;
            append(
                &mut tx,
                NewAuditEvent::new(
                    actor,
                    family.clone(),
                    AuditAction::TokenFamilyRevoked(action::FamilyRevoked {
                        reason: action::FamilyRevokedReason::RevocationRequest,
                        client_id: client_id.to_owned(),
                        family_id: None,
                        revoked_tokens: Some(revoked),
                    }),
                ),
                now,
            )
            .await?;
        }
        self.finish(tx).await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn consume_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let fresh = insert_assertion(&mut tx, issuer, jti, expires_at).await?;
        self.finish(tx).await?;
        Ok(fresh)
    }

    #[tracing::instrument(skip_all)]
    async fn forget_expired_assertions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let forgotten = sqlx::query(FORGET_EXPIRED_ASSERTIONS)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Not `finish`: nothing anyone watches changed.
        tx.commit().await?;
        Ok(forgotten)
    }

    #[tracing::instrument(skip_all)]
    async fn token_subject(
        &self,
        did: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<TokenSubject>> {
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT a.public_key, a.status, a.capabilities,
                    COALESCE((SELECT json_agg(json_build_array(g.id, g.capabilities::json, g.not_after)
                                              ORDER BY g.not_after)
                              FROM grants g
                              WHERE g.agent_did = a.did AND g.revoked_at IS NULL
                                AND g.not_before <= $1 AND g.not_after > $1), '[]'::json)::text
             FROM agents a WHERE a.did = $2",
        )
        .bind(ms(now))
        .bind(did)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|columns| token_subject_of(did, columns))
            .transpose()
    }
    #[tracing::instrument(skip_all)]
    async fn issue_agent_token(
        &self,
        assertion_jti: &str,
        assertion_expires_at: DateTime<Utc>,
        access: &AccessTokenRecord,
        grant_ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let issuance = Issuance {
            assertion_jti,
            assertion_expires_at,
            access,
            grant_ids,
            now,
        };
        if !issue_agent_token_in(&mut tx, issuance).await? {
            return Ok(false);
        }
        self.finish(tx).await?;
        Ok(true)
    }
}

/// What an agent's token issuance stores.
struct Issuance<'a> {
    assertion_jti: &'a str,
    assertion_expires_at: DateTime<Utc>,
    access: &'a AccessTokenRecord,
    grant_ids: &'a [String],
    now: DateTime<Utc>,
}

/// Issues an agent's token inside `tx`: `false` when the assertion's `jti` was used before.
async fn issue_agent_token_in(tx: &mut Tx<'_>, issuance: Issuance<'_>) -> StoreResult<bool> {
    let Issuance {
        assertion_jti,
        assertion_expires_at,
        access,
        grant_ids,
        now,
    } = issuance;
    // Re-checked inside the write transaction: a suspension or grant revocation that
    // committed after the caller looked wins, and no token is issued.
    let status: Option<(String,)> = sqlx::query_as("SELECT status FROM agents WHERE did = $1")
        .bind(&access.subject)
        .fetch_optional(&mut **tx)
        .await?;
    let status = status.and_then(|(s,)| AgentStatus::parse(&s));
    let mut grants_live = true;
    for grant_id in grant_ids {
        let live: Option<(i64,)> = sqlx::query_as(
            "SELECT 1::BIGINT FROM grants WHERE id = $1 AND agent_did = $2 AND revoked_at IS NULL AND not_after > $3",
        )
        .bind(grant_id)
        .bind(&access.subject)
        .bind(ms(now))
        .fetch_optional(&mut **tx)
        .await?;
        grants_live &= live.is_some();
    }
    effective::may_issue(status, grants_live)?;
    if !insert_assertion(tx, &access.subject, assertion_jti, assertion_expires_at).await? {
        return Ok(false);
    }
    insert_access(tx, access).await?;
    for grant_id in grant_ids {
        sqlx::query("INSERT INTO token_grants (grant_id, jti) VALUES ($1, $2)")
            .bind(grant_id)
            .bind(&access.jti)
            .execute(&mut **tx)
            .await?;
    }
    append(
        tx,
        NewAuditEvent::new(
            Actor::agent(access.subject.clone()),
            access.subject.clone(),
            AuditAction::TokenIssued(action::TokenIssued {
                jti: access.jti.clone(),
                scope: access.scope.clone(),
                expires_at: access.expires_at,
                grants: grant_ids.to_vec(),
            }),
        ),
        now,
    )
    .await?;
    Ok(true)
}
