//! What an approval writes: the grants, and for a delegation the child's place in the tree,
//! as `domain::delegation` plans them from what the parent holds inside the transaction.

use chrono::{DateTime, Duration, Utc};

use super::rows::{grant_from_row, status_of};
use super::trust::trust_now;
use super::{Tx, caps_of, json_list, ms, parse_list};
use crate::domain::capability::Capability;
use crate::domain::delegation::{self, HeldGrant, Parent};
use crate::domain::limits;
use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::action;
use crate::protocol::requests::{Request, RequestKind};
use crate::server::store::{StoreError, StoreResult};

/// The parent's status and holdings, for the delegation rules.
async fn parent_view(
    tx: &mut Tx<'_>,
    did: &str,
    now: DateTime<Utc>,
) -> StoreResult<(AgentStatus, Parent)> {
    let (status, caps, depth): (String, String, i64) =
        sqlx::query_as("SELECT status, capabilities, delegation_depth FROM agents WHERE did = $1")
            .bind(did)
            .fetch_one(&mut **tx)
            .await?;
    let status = status_of(&status)?;
    let standing = caps_of(&parse_list(&caps, "agent capabilities")?)?;
    let rows = sqlx::query(
        "SELECT * FROM grants WHERE agent_did = $1 AND revoked_at IS NULL AND not_before <= $2 AND not_after > $3",
    )
    .bind(did)
    .bind(ms(now))
    .bind(ms(now))
    .fetch_all(&mut **tx)
    .await?;
    let mut grants = Vec::with_capacity(rows.len());
    for row in &rows {
        let g = grant_from_row(row, now)?;
        grants.push(HeldGrant {
            grant_id: g.id,
            capabilities: caps_of(&g.capabilities)?,
            not_after: g.not_after,
        });
    }
    let parent = Parent {
        depth,
        trust: trust_now(tx, did, now).await?,
        standing,
        grants,
    };
    Ok((status, parent))
}

#[allow(clippy::too_many_arguments)]
async fn insert_grant(
    tx: &mut Tx<'_>,
    agent_did: &str,
    caps: &[String],
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    request_id: &str,
    source: Option<&str>,
) -> StoreResult<String> {
    let id = format!("grt_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO grants (id, agent_did, capabilities, not_before, not_after, request_id, source_grant_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(agent_did)
    .bind(json_list(caps)?)
    .bind(ms(not_before))
    .bind(ms(not_after))
    .bind(request_id)
    .bind(source)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Creates the grant(s) of an approved request. Elevation: one grant to the agent.
/// Delegation: `domain::delegation::approve` checks the rules again against what the parent
/// holds now and says which grants the child gets.
pub(super) async fn create_grants(
    tx: &mut Tx<'_>,
    request: &Request,
    caps: &[Capability],
    duration: i64,
    max_depth: i64,
    now: DateTime<Utc>,
) -> StoreResult<Vec<action::GrantMade>> {
    let ends = now + Duration::seconds(duration);
    let child = match (request.kind, &request.child_did) {
        (RequestKind::Elevation, _) => {
            let list: Vec<String> = caps.iter().cloned().map(String::from).collect();
            let id =
                insert_grant(tx, &request.agent_did, &list, now, ends, &request.id, None).await?;
            return Ok(vec![action::GrantMade {
                id,
                capabilities: list,
                not_after: ends,
            }]);
        }
        (RequestKind::Delegation, Some(child)) => child,
        (RequestKind::Delegation, None) => {
            return Err(StoreError::Corrupt(
                "delegation request without a child".into(),
            ));
        }
    };
    let (parent_status, parent) = parent_view(tx, &request.agent_did, now).await?;
    let (child_status,): (String,) = sqlx::query_as("SELECT status FROM agents WHERE did = $1")
        .bind(child)
        .fetch_one(&mut **tx)
        .await?;
    let child_trust = trust_now(tx, child, now).await?;
    // Checked again inside the transaction, against the tree as it is now: one parent, no
    // cycle, and the child's whole subtree within the depth limit once it moves under the
    // parent (two approvals that each passed at submission cannot together break them).
    let (child_parent,): (Option<String>,) =
        sqlx::query_as("SELECT parent_did FROM agents WHERE did = $1")
            .bind(child)
            .fetch_one(&mut **tx)
            .await?;
    let ancestors = ancestors_of(tx, &request.agent_did).await?;
    limits::existing_child(
        child,
        child_parent.as_deref(),
        &request.agent_did,
        &ancestors,
    )?;
    let subtree = descendants_of(tx, child).await?;
    let height = subtree.iter().map(|(_, below)| *below).max().unwrap_or(0);
    limits::depth(parent.depth + height, max_depth)?;
    let planned = delegation::approve(
        &parent,
        parent_status,
        status_of(&child_status)?,
        child_trust,
        caps,
        duration,
        max_depth,
        now,
    )?;
    sqlx::query(
        // The approval links the child (an existing one) and activates it (a proposed one).
        "UPDATE agents SET parent_did = $1, delegation_depth = $2, updated_at = $3,
                status = CASE WHEN status = 'proposed' THEN 'active' ELSE status END
         WHERE did = $4",
    )
    .bind(&request.agent_did)
    .bind(parent.depth + 1)
    .bind(ms(now))
    .bind(child)
    .execute(&mut **tx)
    .await?;
    // An adopted subtree moves down with its root.
    for (did, below) in &subtree {
        sqlx::query("UPDATE agents SET delegation_depth = $1, updated_at = $2 WHERE did = $3")
            .bind(parent.depth + 1 + below)
            .bind(ms(now))
            .bind(did)
            .execute(&mut **tx)
            .await?;
    }
    let mut out = Vec::with_capacity(planned.len());
    for grant in planned {
        let list: Vec<String> = grant.capabilities.into_iter().map(String::from).collect();
        let id = insert_grant(
            tx,
            child,
            &list,
            now,
            grant.not_after,
            &request.id,
            grant.source_grant_id.as_deref(),
        )
        .await?;
        out.push(action::GrantMade {
            id,
            capabilities: list,
            not_after: grant.not_after,
        });
    }
    Ok(out)
}

/// The chain above `did`: its parent, the parent's parent, and so on (bounded, in case a
/// corrupt table holds a loop).
async fn ancestors_of(tx: &mut Tx<'_>, did: &str) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    let mut at = did.to_owned();
    for _ in 0..256 {
        let parent: Option<(Option<String>,)> =
            sqlx::query_as("SELECT parent_did FROM agents WHERE did = $1")
                .bind(&at)
                .fetch_optional(&mut **tx)
                .await?;
        match parent.and_then(|(p,)| p) {
            Some(p) if !out.contains(&p) => {
                out.push(p.clone());
                at = p;
            }
            _ => return Ok(out),
        }
    }
    Ok(out)
}

/// Every agent below `did`, with how many levels below it each sits (1 for its children).
async fn descendants_of(tx: &mut Tx<'_>, did: &str) -> StoreResult<Vec<(String, i64)>> {
    let mut out: Vec<(String, i64)> = Vec::new();
    let mut level = vec![did.to_owned()];
    for below in 1..=256 {
        let mut next = Vec::new();
        for parent in &level {
            let children: Vec<(String,)> =
                sqlx::query_as("SELECT did FROM agents WHERE parent_did = $1")
                    .bind(parent)
                    .fetch_all(&mut **tx)
                    .await?;
            for (child,) in children {
                if child != did && !out.iter().any(|(d, _)| *d == child) {
                    out.push((child.clone(), below));
                    next.push(child);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(out)
}
