//! Rows to records: how each table's rows read back into the store's and protocol's types, and
//! the reads of a request with its decisions.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Tx, from_ms, opt_from_ms, parse_list};
use crate::domain::policy::Requirement;
use crate::domain::role::Role;
use crate::domain::trust;
use crate::protocol::agents::{Agent, AgentStatus, SponsorRef};
use crate::protocol::audit::{Actor, ActorKind, AuditEvent, UnhashedEvent};
use crate::protocol::oauth::SubjectKind;
use crate::protocol::requests::{Approval, Decision, Grant, Request, RequestKind, RequestStatus};
use crate::server::store::{
    AccessTokenRecord, DeviceRecord, DeviceStatus, SponsorRecord, StoreError, StoreResult,
};

pub(super) fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditEvent> {
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

pub(super) fn sponsor_from_row(row: &SqliteRow) -> StoreResult<SponsorRecord> {
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

pub(super) fn device_from_row(row: &SqliteRow) -> StoreResult<DeviceRecord> {
    let status: String = row.try_get("status")?;
    Ok(DeviceRecord {
        device_code_hash: row.try_get("device_code_hash")?,
        user_code: row.try_get("user_code")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("device status {status:?}")))?,
        sponsor_id: row.try_get("sponsor_id")?,
        interval_seconds: row.try_get("interval_seconds")?,
        expires_at: from_ms(row.try_get("expires_at")?),
    })
}

pub(super) fn access_from_row(row: &SqliteRow) -> StoreResult<AccessTokenRecord> {
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

pub(super) const AGENT_COLUMNS: &str = "did, name, public_key, capabilities, status, status_reason, \
     suspension_security, status_changed_at, status_changed_by, trust_score, trust_positive_at, \
     parent_did, delegation_depth, entra_object_id, model, runtime, created_at, updated_at";

pub(super) fn agent_from_row(
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

/// A request with its agent's and child's names.
macro_rules! request_select {
    () => {
        "SELECT r.*, a.name AS agent_name, c.name AS child_name
         FROM requests r JOIN agents a ON a.did = r.agent_did LEFT JOIN agents c ON c.did = r.child_did"
    };
}

pub(super) const REQUEST_SELECT: &str = request_select!();
const REQUEST_BY_ID: &str = concat!(request_select!(), " WHERE r.id = ?");

pub(super) fn request_from_row(row: &SqliteRow, approvals: Vec<Approval>) -> StoreResult<Request> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let caps: String = row.try_get("capabilities")?;
    let requirement: String = row.try_get("requirement")?;
    Ok(Request {
        id: row.try_get("id")?,
        kind: RequestKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("request kind {kind:?}")))?,
        agent_did: row.try_get("agent_did")?,
        agent_name: row.try_get("agent_name")?,
        child_did: row.try_get("child_did")?,
        child_name: row.try_get("child_name")?,
        capabilities: parse_list(&caps, "request capabilities")?,
        duration_seconds: row.try_get("duration_seconds")?,
        justification: row.try_get("justification")?,
        ticket: row.try_get("ticket")?,
        context: row.try_get("context")?,
        on_behalf_of: row.try_get("on_behalf_of")?,
        status: RequestStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("request status {status:?}")))?,
        reason: row.try_get("reason")?,
        policy: serde_json::from_str::<Requirement>(&requirement)
            .map_err(|e| StoreError::Corrupt(format!("request requirement: {e}")))?,
        approvals,
        trust_score: row.try_get("trust_score")?,
        created_at: from_ms(row.try_get("created_at")?),
        expires_at: from_ms(row.try_get("expires_at")?),
        decided_at: opt_from_ms(row.try_get("decided_at")?),
        grant_id: row.try_get("grant_id")?,
    })
}

pub(super) fn approval_from_row(row: &SqliteRow) -> StoreResult<Approval> {
    let decision: String = row.try_get("decision")?;
    let caps: Option<String> = row.try_get("capabilities")?;
    Ok(Approval {
        approver_id: row.try_get("approver_id")?,
        approver_username: row.try_get("username")?,
        decision: match decision.as_str() {
            "approve" => Decision::Approve,
            "deny" => Decision::Deny,
            other => return Err(StoreError::Corrupt(format!("decision {other:?}"))),
        },
        duration_seconds: row.try_get("duration_seconds")?,
        capabilities: caps
            .map(|c| parse_list(&c, "approval capabilities"))
            .transpose()?,
        justification: row.try_get("justification")?,
        at: from_ms(row.try_get("at")?),
    })
}

pub(super) fn grant_from_row(row: &SqliteRow, now: DateTime<Utc>) -> StoreResult<Grant> {
    let caps: String = row.try_get("capabilities")?;
    let not_before = from_ms(row.try_get("not_before")?);
    let not_after = from_ms(row.try_get("not_after")?);
    let revoked_at = opt_from_ms(row.try_get("revoked_at")?);
    Ok(Grant {
        id: row.try_get("id")?,
        agent_did: row.try_get("agent_did")?,
        capabilities: parse_list(&caps, "grant capabilities")?,
        not_before,
        not_after,
        request_id: row.try_get("request_id")?,
        source_grant_id: row.try_get("source_grant_id")?,
        revoked_at,
        revoked_by: row.try_get("revoked_by")?,
        revoke_reason: row.try_get("revoke_reason")?,
        active: revoked_at.is_none() && not_before <= now && now < not_after,
    })
}

pub(super) async fn approvals_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Vec<Approval>> {
    sqlx::query(
        "SELECT d.*, s.username FROM request_decisions d JOIN sponsors s ON s.id = d.approver_id
         WHERE d.request_id = ? ORDER BY d.at, d.approver_id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(approval_from_row)
    .collect()
}

pub(super) async fn request_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<Request>> {
    let Some(row) = sqlx::query(REQUEST_BY_ID)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let approvals = approvals_in(tx, id).await?;
    request_from_row(&row, approvals).map(Some)
}

/// An agent's stored status.
pub(super) fn status_of(s: &str) -> StoreResult<AgentStatus> {
    AgentStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("agent status {s:?}")))
}
