//! SQLite implementation of [`Store`]: WAL, foreign keys on, a busy timeout, and one writer
//! connection so transactions that extend the audit chain never race each other.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::watch;

use super::*;
use crate::domain::audit::{GENESIS_HASH, seal};
use crate::domain::trust;
use crate::protocol::agents::SponsorRef;
use crate::protocol::audit::{ActorKind, UnhashedEvent, action};
use crate::protocol::requests::{Grant, Request, Suspension, TrustPoint};

/// Introspection's only query: one primary-key lookup (see the query-plan test below).
const ACCESS_TOKEN_BY_JTI: &str = "SELECT * FROM access_tokens WHERE jti = ?";

mod requests;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Bumped after every committed write, so live readers (SSE, long polls) wake up.
    changes: Arc<watch::Sender<u64>>,
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn opt_from_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Corrupt(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        let (changes, _) = watch::channel(0);
        Ok(Self {
            writer,
            reader,
            changes: Arc::new(changes),
        })
    }

    /// Commits and wakes everyone waiting for changes.
    async fn finish(&self, tx: Transaction<'_, Sqlite>) -> StoreResult<()> {
        tx.commit().await?;
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        Ok(())
    }

    /// Closes both pools (flushing the WAL).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Appends an audit event inside `tx`: reads the head, links, hashes, inserts.
async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    event: NewAuditEvent,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    // Millisecond precision, the precision the row keeps, so the hash recomputes exactly.
    let at = from_ms(ms(now));
    let (action, details) = event
        .action
        .into_parts()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sealed = seal(UnhashedEvent {
        seq,
        at,
        actor: event.actor,
        action,
        subject: event.subject,
        details,
        prev_hash,
    })
    .map_err(|e| StoreError::Corrupt(format!("audit event not serializable: {e}")))?;
    let e = &sealed.event;
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, subject, details, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.seq)
    .bind(ms(e.at))
    .bind(e.actor.kind.as_str())
    .bind(&e.actor.id)
    .bind(&e.action)
    .bind(&e.subject)
    .bind(e.details.to_string())
    .bind(&e.prev_hash)
    .bind(&sealed.hash)
    .execute(&mut **tx)
    .await?;
    Ok(seq)
}

fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditEvent> {
    let details: String = row.try_get("details")?;
    Ok(AuditEvent {
        event: UnhashedEvent {
            seq: row.try_get("seq")?,
            at: from_ms(row.try_get("at")?),
            actor: Actor {
                kind: ActorKind::parse(row.try_get("actor_kind")?),
                id: row.try_get("actor_id")?,
            },
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            // A row whose details no longer parse is kept as a string so verification can
            // still name it (its hash will not match).
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
            prev_hash: row.try_get("prev_hash")?,
        },
        hash: row.try_get("hash")?,
    })
}

fn sponsor_from_row(row: &SqliteRow) -> StoreResult<SponsorRecord> {
    let roles: String = row.try_get("roles")?;
    let names: Vec<String> = serde_json::from_str(&roles)
        .map_err(|e| StoreError::Corrupt(format!("sponsor roles: {e}")))?;
    let roles = names
        .iter()
        .map(|n| Role::parse(n).map_err(|e| StoreError::Corrupt(e.message)))
        .collect::<StoreResult<Vec<_>>>()?;
    let status: String = row.try_get("status")?;
    Ok(SponsorRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        roles,
        password_hash: row.try_get("password_hash")?,
        active: status == "active",
    })
}

fn device_from_row(row: &SqliteRow) -> StoreResult<DeviceRecord> {
    let status: String = row.try_get("status")?;
    Ok(DeviceRecord {
        device_code_hash: row.try_get("device_code_hash")?,
        user_code: row.try_get("user_code")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        status: DeviceStatus::parse(&status)?,
        sponsor_id: row.try_get("sponsor_id")?,
        interval_seconds: row.try_get("interval_seconds")?,
        expires_at: from_ms(row.try_get("expires_at")?),
    })
}

fn access_from_row(row: &SqliteRow) -> StoreResult<AccessTokenRecord> {
    let kind: String = row.try_get("subject_kind")?;
    Ok(AccessTokenRecord {
        jti: row.try_get("jti")?,
        subject_kind: match kind.as_str() {
            "agent" => SubjectKind::Agent,
            "sponsor" => SubjectKind::Sponsor,
            other => return Err(StoreError::Corrupt(format!("token subject kind {other:?}"))),
        },
        subject: row.try_get("subject")?,
        client_id: row.try_get("client_id")?,
        family_id: row.try_get("family_id")?,
        scope: row.try_get("scope")?,
        issued_at: from_ms(row.try_get("issued_at")?),
        expires_at: from_ms(row.try_get("expires_at")?),
        revoked_at: opt_from_ms(row.try_get("revoked_at")?),
    })
}

const AGENT_COLUMNS: &str = "did, name, public_key, capabilities, status, status_reason, \
     suspension_security, status_changed_at, status_changed_by, trust_score, trust_positive_at, \
     parent_did, delegation_depth, entra_object_id, model, runtime, created_at, updated_at";

fn agent_from_row(
    row: &SqliteRow,
    sponsors: Vec<SponsorRef>,
    now: DateTime<Utc>,
) -> StoreResult<Agent> {
    let caps: String = row.try_get("capabilities")?;
    let status: String = row.try_get("status")?;
    let stored: i64 = row.try_get("trust_score")?;
    let positive_at: Option<i64> = row.try_get("trust_positive_at")?;
    let created_at: i64 = row.try_get("created_at")?;
    let trust_score = trust::decayed(stored, from_ms(positive_at.unwrap_or(created_at)), now);
    Ok(Agent {
        did: row.try_get("did")?,
        name: row.try_get("name")?,
        public_key: row.try_get("public_key")?,
        sponsors,
        capabilities: serde_json::from_str(&caps)
            .map_err(|e| StoreError::Corrupt(format!("agent capabilities: {e}")))?,
        status: AgentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("agent status {status:?}")))?,
        status_reason: row.try_get("status_reason")?,
        suspension_security: row.try_get::<i64, _>("suspension_security")? != 0,
        status_changed_at: opt_from_ms(row.try_get("status_changed_at")?),
        status_changed_by: row.try_get("status_changed_by")?,
        trust_score,
        trust_tier: trust::Tier::of(trust_score),
        parent_did: row.try_get("parent_did")?,
        delegation_depth: row.try_get("delegation_depth")?,
        entra_object_id: row.try_get("entra_object_id")?,
        model: row.try_get("model")?,
        runtime: row.try_get("runtime")?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

impl SqliteStore {
    async fn sponsors_of(&self, did: &str) -> StoreResult<Vec<SponsorRef>> {
        let rows = sqlx::query(
            "SELECT s.id, s.username, s.display_name FROM agent_sponsors a
             JOIN sponsors s ON s.id = a.sponsor_id WHERE a.agent_did = ? ORDER BY s.username",
        )
        .bind(did)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SponsorRef {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                    display_name: r.try_get("display_name")?,
                })
            })
            .collect()
    }

    async fn agents_where(
        &self,
        clause: &str,
        bind: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Agent>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents {clause} ORDER BY name, did");
        let mut q = sqlx::query(&sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.reader).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let did: String = row.try_get("did")?;
            let sponsors = self.sponsors_of(&did).await?;
            out.push(agent_from_row(row, sponsors, now)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn published_keys(&self, now: DateTime<Utc>) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, private_pkcs8, public_key, created_at, retired_at, publish_until
             FROM signing_keys WHERE publish_until IS NULL OR publish_until > ?
             ORDER BY created_at DESC",
        )
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRecord {
                    kid: r.try_get("kid")?,
                    private_pkcs8: r.try_get("private_pkcs8")?,
                    public_key: r.try_get("public_key")?,
                    created_at: from_ms(r.try_get("created_at")?),
                    retired_at: opt_from_ms(r.try_get("retired_at")?),
                    publish_until: opt_from_ms(r.try_get("publish_until")?),
                })
            })
            .collect()
    }

    async fn rotate_signing_key(
        &self,
        key: SigningKeyRecord,
        publish_old_until: DateTime<Utc>,
        actor: Actor,
    ) -> StoreResult<()> {
        let now = key.created_at;
        let mut tx = self.writer.begin().await?;
        let retired = sqlx::query(
            "UPDATE signing_keys SET retired_at = ?, publish_until = ? WHERE retired_at IS NULL",
        )
        .bind(ms(now))
        .bind(ms(publish_old_until))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pkcs8, public_key, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.private_pkcs8)
        .bind(&key.public_key)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                actor,
                key.kid.clone(),
                AuditAction::SigningKeyRotated(action::KeyRotated {
                    retired_keys: retired,
                    previous_published_until: publish_old_until,
                }),
            ),
            now,
        )
        .await?;
        self.finish(tx).await?;
        Ok(())
    }

    async fn upsert_sponsor(
        &self,
        sponsor: &SponsorUpsert,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<SponsorRecord> {
        let username = sponsor.username.as_str();
        let display_name = sponsor.display_name.as_str();
        let roles = sponsor.roles.as_slice();
        let password_hash = sponsor.password_hash.as_str();
        let source = sponsor.source.as_str();
        let roles_json =
            serde_json::to_string(&roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.writer.begin().await?;
        let existing: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, roles, display_name FROM sponsors WHERE username = ?")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let (id, added) = match existing {
            Some((id, _, _)) => {
                sqlx::query(
                    "UPDATE sponsors SET display_name = ?, roles = ?, password_hash = ?, source = ?, updated_at = ? WHERE id = ?",
                )
                .bind(display_name)
                .bind(&roles_json)
                .bind(password_hash)
                .bind(source)
                .bind(ms(now))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                sqlx::query(
                    "INSERT INTO sponsors (id, username, display_name, roles, password_hash, source, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(username)
                .bind(display_name)
                .bind(&roles_json)
                .bind(password_hash)
                .bind(source)
                .bind(ms(now))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                (id, true)
            }
        };
        append(
            &mut tx,
            NewAuditEvent::new(actor, id.clone(), {
                let changed = action::SponsorChanged {
                    username: username.to_owned(),
                    roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
                    source: source.to_owned(),
                };
                if added {
                    AuditAction::SponsorAdded(changed)
                } else {
                    AuditAction::SponsorUpdated(changed)
                }
            }),
            now,
        )
        .await?;
        self.finish(tx).await?;
        Ok(SponsorRecord {
            id,
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            roles: roles.to_vec(),
            password_hash: password_hash.to_owned(),
            active: true,
        })
    }

    async fn sponsor_by_username(&self, username: &str) -> StoreResult<Option<SponsorRecord>> {
        sqlx::query("SELECT * FROM sponsors WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(sponsor_from_row)
            .transpose()
    }

    async fn sponsor_by_id(&self, id: &str) -> StoreResult<Option<SponsorRecord>> {
        sqlx::query("SELECT * FROM sponsors WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(sponsor_from_row)
            .transpose()
    }

    async fn list_sponsors(&self) -> StoreResult<Vec<SponsorRecord>> {
        sqlx::query("SELECT * FROM sponsors ORDER BY username")
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(sponsor_from_row)
            .collect()
    }

    async fn create_device_authorization(
        &self,
        record: &DeviceRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
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
                return Err(StoreError::conflict(
                    "user_code_collision",
                    "user code in use",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.finish(tx).await?;
        Ok(())
    }

    async fn device_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceRecord>> {
        sqlx::query("SELECT * FROM device_authorizations WHERE user_code = ?")
            .bind(user_code)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(device_from_row)
            .transpose()
    }

    async fn decide_device(
        &self,
        user_code: &str,
        sponsor_id: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<DeviceRecord> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query("SELECT * FROM device_authorizations WHERE user_code = ?")
            .bind(user_code)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut record = device_from_row(&row)?;
        if record.expires_at <= now {
            return Err(StoreError::conflict(
                "expired_token",
                "this code has expired",
            ));
        }
        if record.status != DeviceStatus::Pending {
            return Err(StoreError::conflict(
                "already_decided",
                "this code has already been used",
            ));
        }
        let status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        sqlx::query(
            "UPDATE device_authorizations SET status = ?, sponsor_id = ? WHERE device_code_hash = ? AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(sponsor_id)
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
        Ok(record)
    }

    async fn poll_device(
        &self,
        device_code_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<DevicePoll> {
        let mut tx = self.writer.begin().await?;
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
        if record.client_id != client_id {
            return Ok(DevicePoll::Unknown);
        }
        if record.status == DeviceStatus::Redeemed {
            return Ok(DevicePoll::AlreadyRedeemed);
        }
        if record.expires_at <= now {
            return Ok(DevicePoll::Expired);
        }
        let last: Option<i64> = row.try_get("last_polled_at")?;
        let too_soon = last.is_some_and(|l| ms(now) - l < record.interval_seconds * 1000);
        let outcome = if too_soon && record.status == DeviceStatus::Pending {
            // RFC 8628 §3.5: the client must add 5 seconds to its interval from now on.
            let interval_seconds = record.interval_seconds + 5;
            sqlx::query(
                "UPDATE device_authorizations SET interval_seconds = ?, last_polled_at = ? WHERE device_code_hash = ?",
            )
            .bind(interval_seconds)
            .bind(ms(now))
            .bind(device_code_hash)
            .execute(&mut *tx)
            .await?;
            DevicePoll::SlowDown { interval_seconds }
        } else {
            match record.status {
                DeviceStatus::Pending => {
                    sqlx::query(
                        "UPDATE device_authorizations SET last_polled_at = ? WHERE device_code_hash = ?",
                    )
                    .bind(ms(now))
                    .bind(device_code_hash)
                    .execute(&mut *tx)
                    .await?;
                    DevicePoll::Pending
                }
                DeviceStatus::Denied => DevicePoll::Denied,
                DeviceStatus::Approved => {
                    let done = sqlx::query(
                        "UPDATE device_authorizations SET status = 'redeemed', last_polled_at = ?
                         WHERE device_code_hash = ? AND status = 'approved'",
                    )
                    .bind(ms(now))
                    .bind(device_code_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    match (done, record.sponsor_id) {
                        (1, Some(sponsor_id)) => DevicePoll::Redeemed {
                            sponsor_id,
                            scope: record.scope,
                        },
                        _ => DevicePoll::AlreadyRedeemed,
                    }
                }
                DeviceStatus::Redeemed => DevicePoll::AlreadyRedeemed,
            }
        };
        self.finish(tx).await?;
        Ok(outcome)
    }

    async fn record_tokens(
        &self,
        access: &AccessTokenRecord,
        refresh: Option<&NewRefreshToken>,
        audit: Option<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
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

    async fn access_token(&self, jti: &str) -> StoreResult<Option<AccessTokenRecord>> {
        sqlx::query(ACCESS_TOKEN_BY_JTI)
            .bind(jti)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(access_from_row)
            .transpose()
    }

    async fn revoke_access_token(
        &self,
        jti: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let changed = sqlx::query(
            "UPDATE access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL",
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

    async fn refresh_token_sponsor(&self, token_hash: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT sponsor_id FROM refresh_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(|r| r.0))
    }

    async fn use_refresh_token(
        &self,
        token_hash: &str,
        client_id: &str,
        next: &NewRefreshToken,
        access: &AccessTokenRecord,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(String, String, String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT family_id, sponsor_id, client_id, expires_at, used_at, revoked_at
             FROM refresh_tokens WHERE token_hash = ?",
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
                revoke_family(&mut tx, &family, now).await?;
                append(
                    &mut tx,
                    NewAuditEvent::new(
                        Actor::system(),
                        sponsor_id.clone(),
                        AuditAction::TokenFamilyRevoked(action::FamilyRevoked {
                            reason: action::FamilyRevokedReason::RefreshTokenReuse,
                            client_id: client_id.to_owned(),
                            family_id: Some(family.clone()),
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
            sqlx::query_as("SELECT status FROM sponsors WHERE id = ?")
                .bind(&sponsor_id)
                .fetch_optional(&mut *tx)
                .await?;
        if !matches!(sponsor_active, Some((ref s,)) if s == "active") {
            return Ok(RefreshOutcome::Invalid);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
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

    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        client_id: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT family_id, client_id FROM refresh_tokens WHERE token_hash = ?")
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
            revoke_family(&mut tx, &family, now).await?;
            append(
                &mut tx,
                NewAuditEvent::new(
                    actor,
                    family.clone(),
                    AuditAction::TokenFamilyRevoked(action::FamilyRevoked {
                        reason: action::FamilyRevokedReason::RevocationRequest,
                        client_id: client_id.to_owned(),
                        family_id: None,
                    }),
                ),
                now,
            )
            .await?;
        }
        self.finish(tx).await?;
        Ok(true)
    }

    async fn consume_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let fresh = insert_assertion(&mut tx, issuer, jti, expires_at, now).await?;
        self.finish(tx).await?;
        Ok(fresh)
    }

    async fn issue_agent_token(
        &self,
        assertion_jti: &str,
        assertion_expires_at: DateTime<Utc>,
        access: &AccessTokenRecord,
        grant_ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        // Re-checked inside the writer transaction: a suspension or grant revocation that
        // committed after the caller looked wins, and no token is issued.
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM agents WHERE did = ?")
            .bind(&access.subject)
            .fetch_optional(&mut *tx)
            .await?;
        if !matches!(status, Some((ref s,)) if s == "active") {
            return Err(StoreError::Forbidden {
                code: "agent_inactive",
                message: "the agent is not active".into(),
            });
        }
        for grant_id in grant_ids {
            let live: Option<(i64,)> = sqlx::query_as(
                "SELECT 1 FROM grants WHERE id = ? AND agent_did = ? AND revoked_at IS NULL AND not_after > ?",
            )
            .bind(grant_id)
            .bind(&access.subject)
            .bind(ms(now))
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_none() {
                return Err(StoreError::conflict(
                    "grant_ended",
                    "a grant ended while the token was being issued; ask again",
                ));
            }
        }
        if !insert_assertion(
            &mut tx,
            &access.subject,
            assertion_jti,
            assertion_expires_at,
            now,
        )
        .await?
        {
            return Ok(false);
        }
        insert_access(&mut tx, access).await?;
        for grant_id in grant_ids {
            sqlx::query("INSERT INTO token_grants (grant_id, jti) VALUES (?, ?)")
                .bind(grant_id)
                .bind(&access.jti)
                .execute(&mut *tx)
                .await?;
        }
        append(
            &mut tx,
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
        self.finish(tx).await?;
        Ok(true)
    }

    async fn register_agent(
        &self,
        agent: NewAgent,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Registered> {
        let mut tx = self.writer.begin().await?;
        if let Some(idem) = &idempotency {
            if let Some(stored) = replay(&mut tx, idem).await? {
                return Ok(Registered::Replayed(stored));
            }
        }
        let (held,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM agent_sponsors s JOIN agents a ON a.did = s.agent_did
             WHERE s.sponsor_id = ? AND a.status != 'revoked'",
        )
        .bind(&agent.sponsor_id)
        .fetch_one(&mut *tx)
        .await?;
        if held >= i64::from(agent.max_agents_per_sponsor) {
            return Err(StoreError::conflict(
                "agent_limit_reached",
                format!(
                    "you already sponsor {held} agents, the most this server allows ({})",
                    agent.max_agents_per_sponsor
                ),
            ));
        }
        insert_agent(
            &mut tx,
            &AgentRow {
                did: &agent.did,
                name: &agent.name,
                public_key: &agent.public_key,
                capabilities: &agent.capabilities,
                trust_score: trust::DEFAULT_SCORE,
                entra_object_id: agent.entra_object_id.as_deref(),
                model: agent.model.as_deref(),
                runtime: agent.runtime.as_deref(),
            },
            "an agent with this public key is already registered",
            now,
        )
        .await?;
        sqlx::query("INSERT INTO agent_sponsors (agent_did, sponsor_id) VALUES (?, ?)")
            .bind(&agent.did)
            .bind(&agent.sponsor_id)
            .execute(&mut *tx)
            .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                Actor::sponsor(agent.sponsor_id.clone()),
                agent.did.clone(),
                AuditAction::AgentRegistered(action::AgentRegistered {
                    name: agent.name.clone(),
                    capabilities: agent.capabilities.clone(),
                    model: agent.model.clone(),
                    runtime: agent.runtime.clone(),
                    by: action::RegisteredBy::Sponsor {
                        entra_object_id: agent.entra_object_id.clone(),
                    },
                }),
            ),
            now,
        )
        .await?;
        let sponsor: (String, String, String) =
            sqlx::query_as("SELECT id, username, display_name FROM sponsors WHERE id = ?")
                .bind(&agent.sponsor_id)
                .fetch_one(&mut *tx)
                .await?;
        let created = Agent {
            did: agent.did,
            name: agent.name,
            public_key: agent.public_key,
            sponsors: vec![SponsorRef {
                id: sponsor.0,
                username: sponsor.1,
                display_name: sponsor.2,
            }],
            capabilities: agent.capabilities,
            status: AgentStatus::Active,
            status_reason: None,
            suspension_security: false,
            status_changed_at: None,
            status_changed_by: None,
            trust_score: trust::DEFAULT_SCORE,
            trust_tier: trust::Tier::of(trust::DEFAULT_SCORE),
            parent_did: None,
            delegation_depth: 0,
            entra_object_id: agent.entra_object_id,
            model: agent.model,
            runtime: agent.runtime,
            created_at: from_ms(ms(now)),
            updated_at: from_ms(ms(now)),
        };
        if let Some(idem) = &idempotency {
            remember(&mut tx, idem, 201, &created, now).await?;
        }
        self.finish(tx).await?;
        Ok(Registered::Created(Box::new(created)))
    }

    async fn agent(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Option<Agent>> {
        let agents = self.agents_where("WHERE did = ?", Some(did), now).await?;
        Ok(agents.into_iter().next())
    }

    async fn agent_credential(&self, did: &str) -> StoreResult<Option<AgentCredential>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT public_key, status, capabilities FROM agents WHERE did = ?")
                .bind(did)
                .fetch_optional(&self.reader)
                .await?;
        row.map(|(public_key, status, caps)| {
            Ok(AgentCredential {
                did: did.to_owned(),
                public_key,
                status: AgentStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("agent status {status:?}")))?,
                capabilities: serde_json::from_str(&caps)
                    .map_err(|e| StoreError::Corrupt(format!("agent capabilities: {e}")))?,
            })
        })
        .transpose()
    }

    async fn agents_of_sponsor(
        &self,
        sponsor_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Agent>> {
        self.agents_where(
            "WHERE did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ?)",
            Some(sponsor_id),
            now,
        )
        .await
    }

    async fn all_agents(&self, now: DateTime<Utc>) -> StoreResult<Vec<Agent>> {
        self.agents_where("", None, now).await
    }

    async fn audit_tail(&self, scope: &AuditScope, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        let rows = match scope {
            AuditScope::All => {
                sqlx::query("SELECT * FROM audit_events ORDER BY seq DESC LIMIT ?")
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?
            }
            AuditScope::Sponsor(id) => {
                sqlx::query(
                    "SELECT * FROM audit_events WHERE actor_id = ? OR subject = ?
                          OR subject IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ?)
                     ORDER BY seq DESC LIMIT ?",
                )
                .bind(id)
                .bind(id)
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?
            }
        };
        let mut events: Vec<AuditEvent> = rows
            .iter()
            .map(audit_from_row)
            .collect::<StoreResult<_>>()?;
        events.reverse();
        Ok(events)
    }

    async fn audit_head(&self) -> StoreResult<i64> {
        let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
            .fetch_one(&self.reader)
            .await?;
        Ok(head)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn submit_request(
        &self,
        request: NewRequest,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Submitted> {
        self.submit_request_impl(request, idempotency, now).await
    }

    async fn request(&self, id: &str) -> StoreResult<Option<Request>> {
        self.request_impl(id).await
    }

    async fn list_requests(&self, filter: &RequestFilter) -> StoreResult<Vec<Request>> {
        self.list_requests_impl(filter).await
    }

    async fn decide_request(
        &self,
        id: &str,
        input: DecisionInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Request> {
        self.decide_request_impl(id, input, now).await
    }

    async fn cancel_request(
        &self,
        id: &str,
        agent_did: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Request> {
        self.cancel_request_impl(id, agent_did, reason, now).await
    }

    async fn expire_requests(
        &self,
        now: DateTime<Utc>,
        trust_delta: i64,
    ) -> StoreResult<Vec<String>> {
        self.expire_requests_impl(now, trust_delta).await
    }

    async fn active_grants(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Vec<Grant>> {
        self.active_grants_impl(did, now).await
    }

    async fn grant(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Grant>> {
        self.grant_impl(id, now).await
    }

    async fn list_grants(
        &self,
        filter: &GrantFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Grant>> {
        self.list_grants_impl(filter, now).await
    }

    async fn revoke_grant(
        &self,
        id: &str,
        actor: Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        self.revoke_grant_impl(id, actor, reason, now).await
    }

    async fn suspend(
        &self,
        target: SuspendTarget,
        reason: &str,
        security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        self.suspend_impl(target, reason, security, actor, now)
            .await
    }

    async fn reactivate(
        &self,
        did: &str,
        reason: &str,
        may_lift_security: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Agent> {
        self.reactivate_impl(did, reason, may_lift_security, actor, now)
            .await?;
        self.agent(did, now).await?.ok_or(StoreError::NotFound)
    }

    async fn revoke_agent(
        &self,
        did: &str,
        reason: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Suspension> {
        self.revoke_agent_impl(did, reason, actor, now).await
    }

    async fn suspension_targets(&self, target: &SuspendTarget) -> StoreResult<Vec<String>> {
        self.suspension_targets_impl(target).await
    }

    async fn trust_history(&self, did: &str, limit: u32) -> StoreResult<Vec<TrustPoint>> {
        self.trust_history_impl(did, limit).await
    }

    async fn is_sponsor_of(&self, sponsor_id: &str, did: &str) -> StoreResult<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM agent_sponsors WHERE sponsor_id = ? AND agent_did = ?")
                .bind(sponsor_id)
                .bind(did)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.is_some())
    }

    async fn audit_page(
        &self,
        scope: &AuditScope,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = match scope {
            AuditScope::All => {
                sqlx::query("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?
            }
            AuditScope::Sponsor(id) => {
                sqlx::query(
                    "SELECT * FROM audit_events WHERE seq > ?
                     AND (actor_id = ? OR subject = ?
                          OR subject IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ?))
                     ORDER BY seq LIMIT ?",
                )
                .bind(after)
                .bind(id)
                .bind(id)
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(audit_from_row).collect()
    }

    async fn append_audit(&self, event: NewAuditEvent, now: DateTime<Utc>) -> StoreResult<i64> {
        let mut tx = self.writer.begin().await?;
        let seq = append(&mut tx, event, now).await?;
        self.finish(tx).await?;
        Ok(seq)
    }
}

async fn insert_access(tx: &mut Transaction<'_, Sqlite>, a: &AccessTokenRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (jti, subject_kind, subject, client_id, family_id, scope, issued_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

async fn insert_refresh(tx: &mut Transaction<'_, Sqlite>, r: &NewRefreshToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, sponsor_id, client_id, scope, issued_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
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

async fn insert_assertion(
    tx: &mut Transaction<'_, Sqlite>,
    issuer: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // Assertions that have expired can no longer be replayed; forget them.
    sqlx::query("DELETE FROM client_assertions WHERE issuer = ? AND expires_at < ?")
        .bind(issuer)
        .bind(ms(now))
        .execute(&mut **tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO client_assertions (issuer, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(issuer)
    .bind(jti)
    .bind(ms(expires_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

async fn family_has_live_tokens(
    tx: &mut Transaction<'_, Sqlite>,
    family: &str,
) -> StoreResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM refresh_tokens WHERE family_id = ? AND revoked_at IS NULL LIMIT 1",
    )
    .bind(family)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

async fn revoke_family(
    tx: &mut Transaction<'_, Sqlite>,
    family: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
    )
    .bind(ms(now))
    .bind(family)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE access_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
    )
    .bind(ms(now))
    .bind(family)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The columns of a new agent.
pub(super) struct AgentRow<'a> {
    pub did: &'a str,
    pub name: &'a str,
    pub public_key: &'a str,
    pub capabilities: &'a [String],
    pub trust_score: i64,
    pub entra_object_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub runtime: Option<&'a str>,
}

/// Inserts an active agent; a key already registered is a conflict saying `exists`.
pub(super) async fn insert_agent(
    tx: &mut Transaction<'_, Sqlite>,
    row: &AgentRow<'_>,
    exists: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let caps =
        serde_json::to_string(row.capabilities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO agents (did, name, public_key, capabilities, status, trust_score, entra_object_id,
                             model, runtime, created_at, updated_at, trust_positive_at)
         VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.did)
    .bind(row.name)
    .bind(row.public_key)
    .bind(caps)
    .bind(row.trust_score)
    .bind(row.entra_object_id)
    .bind(row.model)
    .bind(row.runtime)
    .bind(ms(now))
    .bind(ms(now))
    .bind(ms(now))
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::conflict("agent_exists", exists.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The stored answer to a repeated `Idempotency-Key` with the same body; a conflict when the
/// body differs; `None` for a new key.
pub(super) async fn replay(
    tx: &mut Transaction<'_, Sqlite>,
    idem: &Idempotency,
) -> StoreResult<Option<StoredResponse>> {
    let seen: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = ? AND key = ?",
    )
    .bind(&idem.principal)
    .bind(&idem.key)
    .fetch_optional(&mut **tx)
    .await?;
    match seen {
        None => Ok(None),
        Some((hash, status, body)) if hash == idem.request_hash => Ok(Some(StoredResponse {
            status: u16::try_from(status).unwrap_or(200),
            body,
        })),
        Some(_) => Err(StoreError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        )),
    }
}

/// Stores the answer to replay for an `Idempotency-Key`, in the transaction that made it.
pub(super) async fn remember<T: serde::Serialize>(
    tx: &mut Transaction<'_, Sqlite>,
    idem: &Idempotency,
    status: u16,
    answer: &T,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let body = serde_json::to_string(answer).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&idem.principal)
    .bind(&idem.key)
    .bind(&idem.request_hash)
    .bind(i64::from(status))
    .bind(body)
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn introspection_is_one_primary_key_lookup() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {ACCESS_TOKEN_BY_JTI}"))
                .bind("x")
                .fetch_all(&store.reader)
                .await
                .unwrap_or_default();
        assert_eq!(plan.len(), 1, "{plan:?}");
        let detail = &plan[0].3;
        assert!(
            detail.starts_with(
                "SEARCH access_tokens USING INDEX sqlite_autoindex_access_tokens_1 (jti=?)"
            ) || detail.contains("PRIMARY KEY"),
            "{detail}"
        );
    }
}
