//! Sponsors and agents in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Row};

use super::audit::append;
use super::rows::{AGENT_COLUMNS, agent_from_row, sponsor_from_row};
use super::trust::{set_trust, trust_now};
use super::{AgentRow, PgStore, Tx, agents_held, from_ms, insert_agent, ms, remember, replay};
use crate::domain::{limits, trust};
use crate::protocol::agents::{Agent, AgentStatus, SponsorRef};
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::requests::TrustPoint;
use crate::server::store::{
    AgentCredential, AgentStore, ExternalSponsor, Idempotency, NewAgent, NewAuditEvent, NewChild,
    Registered, SponsorRecord, SponsorUpsert, StoreError, StoreResult,
};

/// Which agents to read.
enum Which<'a> {
    One(&'a str),
    OfSponsor(&'a str),
    All,
}

impl PgStore {
    async fn sponsors_of(&self, did: &str) -> StoreResult<Vec<SponsorRef>> {
        let rows = sqlx::query(
            "SELECT s.id, s.username, s.display_name FROM agent_sponsors a
             JOIN sponsors s ON s.id = a.sponsor_id WHERE a.agent_did = $1 ORDER BY s.username",
        )
        .bind(did)
        .fetch_all(&self.pool)
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

    async fn agents_where(&self, which: Which<'_>, now: DateTime<Utc>) -> StoreResult<Vec<Agent>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
        q.push(AGENT_COLUMNS).push(" FROM agents");
        match which {
            Which::One(did) => {
                q.push(" WHERE did = ").push_bind(did);
            }
            Which::OfSponsor(id) => {
                q.push(" WHERE did IN (SELECT agent_did FROM agent_sponsors WHERE sponsor_id = ")
                    .push_bind(id)
                    .push(")");
            }
            Which::All => {}
        }
        q.push(" ORDER BY name, did");
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let did: String = row.try_get("did")?;
            let sponsors = self.sponsors_of(&did).await?;
            out.push(agent_from_row(row, sponsors, now)?);
        }
        Ok(out)
    }
}

/// Registers the new child of a delegation request made by `parent`, inside the request's
/// transaction: it counts against each of the parent's sponsors, who sponsor it too. It is
/// `proposed` (no token, no requests) and linked to its parent, so the parent's kill switch
/// reaches it, until a human approves the delegation.
pub(super) async fn register_child(
    tx: &mut Tx<'_>,
    parent: &str,
    child: &NewChild,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sponsor_ids: Vec<(String,)> = sqlx::query_as(
        "SELECT sponsor_id FROM agent_sponsors WHERE agent_did = $1 ORDER BY sponsor_id",
    )
    .bind(parent)
    .fetch_all(&mut **tx)
    .await?;
    let sponsor_ids: Vec<String> = sponsor_ids.into_iter().map(|s| s.0).collect();
    let held = agents_held(tx, &sponsor_ids).await?;
    limits::new_child(&held, child.max_agents_per_sponsor)?;
    let (depth,): (i64,) = sqlx::query_as("SELECT delegation_depth FROM agents WHERE did = $1")
        .bind(parent)
        .fetch_one(&mut **tx)
        .await?;
    insert_agent(
        tx,
        &AgentRow {
            did: &child.did,
            status: AgentStatus::Proposed,
            parent: Some((parent, depth + 1)),
            name: &child.name,
            public_key: &child.public_key,
            capabilities: &[],
            trust_score: child.trust_score,
            entra_object_id: None,
            model: child.model.as_deref(),
            runtime: child.runtime.as_deref(),
        },
        now,
    )
    .await?;
    sqlx::query(
        "INSERT INTO agent_sponsors (agent_did, sponsor_id)
         SELECT $1, sponsor_id FROM agent_sponsors WHERE agent_did = $2",
    )
    .bind(&child.did)
    .bind(parent)
    .execute(&mut **tx)
    .await?;
    append(
        tx,
        NewAuditEvent::new(
            Actor::agent(parent.to_owned()),
            child.did.clone(),
            AuditAction::AgentRegistered(action::AgentRegistered {
                name: child.name.clone(),
                capabilities: Vec::new(),
                model: child.model.clone(),
                runtime: child.runtime.clone(),
                status: Some(AgentStatus::Proposed),
                by: action::RegisteredBy::Agent {
                    registered_by: parent.to_owned(),
                    trust_score: child.trust_score,
                },
            }),
        ),
        now,
    )
    .await
    .map(|_| ())
}

#[async_trait]
impl AgentStore for PgStore {
    #[tracing::instrument(skip_all)]
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
        let mut tx = self.write().await?;
        let existing: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, roles, display_name FROM sponsors WHERE username = $1")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let (id, added) = match existing {
            Some((id, _, _)) => {
                sqlx::query(
                    "UPDATE sponsors SET display_name = $1, roles = $2, password_hash = $3, source = $4, updated_at = $5 WHERE id = $6",
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
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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

    #[tracing::instrument(skip_all, fields(id = %sponsor.id))]
    async fn sync_external_sponsor(
        &self,
        sponsor: &ExternalSponsor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let names: Vec<String> = sponsor
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        let roles_json =
            serde_json::to_string(&names).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let stated = ms(sponsor.stated_at);
        let mut tx = self.write().await?;
        let existing: Option<(String, String, i64)> =
            sqlx::query_as("SELECT roles, display_name, updated_at FROM sponsors WHERE id = $1")
                .bind(&sponsor.id)
                .fetch_optional(&mut *tx)
                .await?;
        let added = match existing {
            Some((roles, display_name, updated_at)) => {
                let mut held: Vec<String> = serde_json::from_str(&roles)
                    .map_err(|e| StoreError::Corrupt(format!("sponsor roles: {e}")))?;
                held.sort();
                let mut wanted = names.clone();
                wanted.sort();
                if (held == wanted && display_name == sponsor.display_name) || stated <= updated_at
                {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE sponsors SET display_name = $1, roles = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(&sponsor.display_name)
                .bind(&roles_json)
                .bind(stated)
                .bind(&sponsor.id)
                .execute(&mut *tx)
                .await?;
                false
            }
            None => {
                // No password: an external sponsor signs in at its issuer, never here.
                sqlx::query(
                    "INSERT INTO sponsors (id, username, display_name, roles, password_hash, source, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, '', $5, $6, $7)",
                )
                .bind(&sponsor.id)
                .bind(&sponsor.id)
                .bind(&sponsor.display_name)
                .bind(&roles_json)
                .bind(&sponsor.source)
                .bind(ms(now))
                .bind(stated)
                .execute(&mut *tx)
                .await?;
                true
            }
        };
        let changed = action::SponsorChanged {
            username: sponsor.id.clone(),
            roles: names,
            source: sponsor.source.clone(),
        };
        let action = if added {
            AuditAction::SponsorAdded(changed)
        } else {
            AuditAction::SponsorUpdated(changed)
        };
        append(
            &mut tx,
            NewAuditEvent::new(Actor::system(), sponsor.id.clone(), action),
            now,
        )
        .await?;
        self.finish(tx).await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(username = %username))]
    async fn sponsor_by_username(&self, username: &str) -> StoreResult<Option<SponsorRecord>> {
        sqlx::query("SELECT * FROM sponsors WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(sponsor_from_row)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn sponsor_by_id(&self, id: &str) -> StoreResult<Option<SponsorRecord>> {
        sqlx::query("SELECT * FROM sponsors WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(sponsor_from_row)
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_sponsors(&self) -> StoreResult<Vec<SponsorRecord>> {
        sqlx::query("SELECT * FROM sponsors ORDER BY username")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(sponsor_from_row)
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn register_agent(
        &self,
        agent: NewAgent,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> StoreResult<Registered> {
        let mut tx = self.write().await?;
        if let Some(idem) = &idempotency
            && let Some(stored) = replay(&mut tx, idem).await?
        {
            return Ok(Registered::Replayed(stored));
        }
        let held = agents_held(&mut tx, std::slice::from_ref(&agent.sponsor_id)).await?;
        limits::agent_limit(
            held.first().copied().unwrap_or(0),
            agent.max_agents_per_sponsor,
        )?;
        insert_agent(
            &mut tx,
            &AgentRow {
                did: &agent.did,
                status: AgentStatus::Active,
                parent: None,
                name: &agent.name,
                public_key: &agent.public_key,
                capabilities: &agent.capabilities,
                trust_score: trust::DEFAULT_SCORE,
                entra_object_id: agent.entra_object_id.as_deref(),
                model: agent.model.as_deref(),
                runtime: agent.runtime.as_deref(),
            },
            now,
        )
        .await?;
        sqlx::query("INSERT INTO agent_sponsors (agent_did, sponsor_id) VALUES ($1, $2)")
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
                    status: Some(AgentStatus::Active),
                    by: action::RegisteredBy::Sponsor {
                        entra_object_id: agent.entra_object_id.clone(),
                    },
                }),
            ),
            now,
        )
        .await?;
        let sponsor: (String, String, String) =
            sqlx::query_as("SELECT id, username, display_name FROM sponsors WHERE id = $1")
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

    #[tracing::instrument(skip_all, fields(did = %did))]
    async fn agent(&self, did: &str, now: DateTime<Utc>) -> StoreResult<Option<Agent>> {
        let agents = self.agents_where(Which::One(did), now).await?;
        Ok(agents.into_iter().next())
    }

    #[tracing::instrument(skip_all, fields(did = %did))]
    async fn agent_credential(&self, did: &str) -> StoreResult<Option<AgentCredential>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT public_key, status, capabilities FROM agents WHERE did = $1")
                .bind(did)
                .fetch_optional(&self.pool)
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

    #[tracing::instrument(skip_all, fields(sponsor_id = %sponsor_id))]
    async fn agents_of_sponsor(
        &self,
        sponsor_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Agent>> {
        self.agents_where(Which::OfSponsor(sponsor_id), now).await
    }

    #[tracing::instrument(skip_all)]
    async fn all_agents(&self, now: DateTime<Utc>) -> StoreResult<Vec<Agent>> {
        self.agents_where(Which::All, now).await
    }

    #[tracing::instrument(skip_all, fields(did = %did, sponsor_id = %sponsor_id))]
    async fn is_sponsor_of(&self, sponsor_id: &str, did: &str) -> StoreResult<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1::BIGINT FROM agent_sponsors WHERE sponsor_id = $1 AND agent_did = $2",
        )
        .bind(sponsor_id)
        .bind(did)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    #[tracing::instrument(skip_all, fields(did = %did))]
    async fn trust_history(&self, did: &str, limit: u32) -> StoreResult<Vec<TrustPoint>> {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "SELECT at, score_after, delta, reason FROM (
                 SELECT id, at, score_after, delta, reason FROM trust_events WHERE agent_did = $1
                 ORDER BY id DESC LIMIT $2) AS newest ORDER BY id",
        )
        .bind(did)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, score, delta, reason)| TrustPoint {
                at: from_ms(at),
                score,
                delta,
                reason,
            })
            .collect())
    }
}

/// Retires the child a delegation request proposed, when the request ended without approval
/// (`domain::delegation::retires_proposed_child`): it is revoked, for good.
pub(super) async fn retire_proposed_child(
    tx: &mut Tx<'_>,
    request_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT a.did FROM requests r JOIN agents a ON a.did = r.child_did
         WHERE r.id = $1 AND a.status = 'proposed'",
    )
    .bind(request_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((did,)) = row else {
        return Ok(());
    };
    let actor = Actor::system();
    sqlx::query(
        "UPDATE agents SET status = 'revoked', status_reason = $1, status_changed_at = $2,
         status_changed_by = $3, updated_at = $4 WHERE did = $5",
    )
    .bind(reason)
    .bind(ms(now))
    .bind(actor.to_string())
    .bind(ms(now))
    .bind(&did)
    .execute(&mut **tx)
    .await?;
    let current = trust_now(tx, &did, now).await?;
    let capped = trust::out_of_service(current);
    set_trust(tx, &did, capped, capped - current, reason, now).await?;
    append(
        tx,
        NewAuditEvent::new(
            actor,
            did,
            AuditAction::AgentRevoked(action::TakenDown {
                reason: reason.to_owned(),
                security: false,
                grants_revoked: Vec::new(),
                requests_cancelled: Vec::new(),
                tokens_revoked: 0,
                revoked_tokens: Some(Vec::new()),
                trust_score: capped,
            }),
        ),
        now,
    )
    .await
    .map(|_| ())
}
