//! The governed state as the tables hold it, for `audit verify --state`: read in one read
//! transaction, so the tables and the head of the chain are the same instant (a repeatable-read
//! snapshot).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use chrono::{DateTime, Utc};

use super::{from_ms, ms, parse_list};
use crate::domain::record::{AgentState, GrantState, StateSnapshot};
use crate::protocol::agents::AgentStatus;
use crate::server::store::{RevocationSnapshot, StoreError, StoreResult};

/// id, agent, capabilities, not_after, revoked_at, ended_at.
type GrantRow = (String, String, String, i64, Option<i64>, Option<i64>);

/// An agent row's status; anything else is a corrupt row.
fn agent_status(did: &str, status: &str) -> StoreResult<AgentStatus> {
    AgentStatus::parse(status)
        .ok_or_else(|| StoreError::Corrupt(format!("agent {did}: status {status:?}")))
}

pub(super) async fn snapshot(reader: &PgPool) -> StoreResult<(i64, StateSnapshot)> {
    let mut tx = super::snapshot(reader).await?;
    let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
        .fetch_one(&mut *tx)
        .await?;
    let mut state = StateSnapshot::default();

    let agents: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as("SELECT did, status, capabilities, parent_did FROM agents")
            .fetch_all(&mut *tx)
            .await?;
    for (did, status, capabilities, parent) in agents {
        let status = agent_status(&did, &status)?;
        let capabilities = parse_list(&capabilities, "agent capabilities")?;
        state.agents.insert(
            did,
            AgentState {
                status,
                capabilities: capabilities.into_iter().collect(),
                sponsors: BTreeSet::new(),
                parent,
            },
        );
    }
    let links: Vec<(String, String)> =
        sqlx::query_as("SELECT agent_did, sponsor_id FROM agent_sponsors")
            .fetch_all(&mut *tx)
            .await?;
    for (did, sponsor) in links {
        if let Some(agent) = state.agents.get_mut(&did) {
            agent.sponsors.insert(sponsor);
        }
    }

    let sponsors: Vec<(String, String)> = sqlx::query_as("SELECT id, roles FROM sponsors")
        .fetch_all(&mut *tx)
        .await?;
    state.sponsors = sponsors
        .into_iter()
        .map(|(id, roles)| {
            Ok((
                id,
                parse_list(&roles, "sponsor roles")?.into_iter().collect(),
            ))
        })
        .collect::<StoreResult<BTreeMap<_, _>>>()?;

    let grants: Vec<GrantRow> = sqlx::query_as(
        "SELECT id, agent_did, capabilities, not_after, revoked_at, ended_at FROM grants",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, agent, capabilities, not_after, revoked_at, ended_at) in grants {
        let capabilities = parse_list(&capabilities, "grant capabilities")?;
        state.grants.insert(
            id,
            GrantState {
                agent,
                capabilities: capabilities.into_iter().collect(),
                not_after: from_ms(not_after),
                revoked: revoked_at.is_some(),
                ended: ended_at.is_some(),
            },
        );
    }

    let revoked: Vec<(String,)> =
        sqlx::query_as("SELECT jti FROM access_tokens WHERE revoked_at IS NOT NULL")
            .fetch_all(&mut *tx)
            .await?;
    state.revoked_tokens = revoked.into_iter().map(|(jti,)| jti).collect();
    // A family is revoked when every refresh token in it is.
    let families: Vec<(String,)> = sqlx::query_as(
        "SELECT family_id FROM refresh_tokens GROUP BY family_id
         HAVING COUNT(*) = COUNT(revoked_at)",
    )
    .fetch_all(&mut *tx)
    .await?;
    state.revoked_families = families.into_iter().map(|(f,)| f).collect();
    let actions: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM action_requests")
        .fetch_all(&mut *tx)
        .await?;
    state.actions = actions.into_iter().collect();
    tx.rollback().await?;
    Ok((head, state))
}

/// What the revocation index starts from (see `AuditStore::revocation_snapshot`).
pub(super) async fn revocations(
    reader: &PgPool,
    now: DateTime<Utc>,
) -> StoreResult<RevocationSnapshot> {
    let mut tx = super::snapshot(reader).await?;
    let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
        .fetch_one(&mut *tx)
        .await?;
    let revoked: Vec<(String, i64)> = sqlx::query_as(
        "SELECT jti, expires_at FROM access_tokens WHERE revoked_at IS NOT NULL AND expires_at > $1",
    )
    .bind(ms(now))
    .fetch_all(&mut *tx)
    .await?;
    let inactive: Vec<(String, String)> =
        sqlx::query_as("SELECT did, status FROM agents WHERE status != 'active'")
            .fetch_all(&mut *tx)
            .await?;
    let inactive = inactive
        .into_iter()
        .map(|(did, status)| {
            let status = agent_status(&did, &status)?;
            Ok((did, status))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let sponsors: Vec<(String, String)> = sqlx::query_as("SELECT id, roles FROM sponsors")
        .fetch_all(&mut *tx)
        .await?;
    let sponsors = sponsors
        .into_iter()
        .map(|(id, roles)| Ok((id, parse_list(&roles, "sponsor roles")?)))
        .collect::<StoreResult<Vec<_>>>()?;
    tx.rollback().await?;
    Ok(RevocationSnapshot {
        head,
        revoked: revoked
            .into_iter()
            .map(|(jti, expires)| (jti, from_ms(expires)))
            .collect(),
        inactive,
        sponsors,
    })
}
