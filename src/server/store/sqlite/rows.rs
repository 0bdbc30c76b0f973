//! Rows to records: how each table's rows read back into the store's and protocol's types, and
//! the reads of a request with its decisions.

use chrono::{DateTime, Utc};
use serde::Deserialize;
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

/// A request with its agent's and child's names and its decisions, as one JSON array whose
/// items are [`RequestRow`]'s fields in order. SQLite builds it so that a page of requests
/// crosses from SQLite to Rust as one value: sqlx copies every column of every row and hands
/// each row to the async side on its own, and that was most of what a page of 500 cost
/// (`cargo bench --bench pending_page`). Stored JSON (capabilities, the requirement) stays text
/// and is parsed here, as before. Decisions are gathered in no set order and sorted here
/// (an aggregate's `ORDER BY` builds a temporary b-tree for every request).
macro_rules! request_json {
    () => {
        "json_array(r.id, r.kind, r.agent_did, a.name, r.child_did, c.name, r.capabilities,
             r.duration_seconds, r.justification, r.ticket, r.context, r.on_behalf_of, r.status,
             r.reason, r.requirement, r.trust_score, r.created_at, r.expires_at, r.decided_at,
             r.grant_id,
             json((SELECT json_group_array(json_array(d.approver_id, s.username, d.decision,
                          d.duration_seconds, d.capabilities, d.justification, d.at))
                   FROM request_decisions d JOIN sponsors s ON s.id = d.approver_id
                   WHERE d.request_id = r.id)))"
    };
}

macro_rules! request_from {
    () => {
        " FROM requests r JOIN agents a ON a.did = r.agent_did
          LEFT JOIN agents c ON c.did = r.child_did"
    };
}

/// `SELECT` the `request_json!` array `AS row` from a request joined with its agents; a
/// filter's `WHERE` follows.
pub(super) const REQUEST_PAGE_SELECT: &str =
    concat!("SELECT ", request_json!(), " AS row", request_from!());
const REQUEST_BY_ID: &str = concat!(
    "SELECT ",
    request_json!(),
    request_from!(),
    " WHERE r.id = ?"
);

/// A request row as `request_json!` lists it (read positionally from the array).
#[derive(Deserialize)]
struct RequestRow {
    id: String,
    kind: RequestKind,
    agent_did: String,
    agent_name: String,
    child_did: Option<String>,
    child_name: Option<String>,
    capabilities: String,
    duration_seconds: i64,
    justification: String,
    ticket: Option<String>,
    context: Option<String>,
    on_behalf_of: Option<String>,
    status: RequestStatus,
    reason: Option<String>,
    requirement: String,
    trust_score: i64,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    grant_id: Option<String>,
    approvals: Vec<ApprovalRow>,
}

#[derive(Deserialize)]
struct ApprovalRow {
    approver_id: String,
    approver_username: String,
    decision: Decision,
    duration_seconds: Option<i64>,
    capabilities: Option<String>,
    justification: String,
    at: i64,
}

impl RequestRow {
    fn into_request(mut self) -> StoreResult<Request> {
        // In the order they were made; two at the same moment by approver.
        self.approvals
            .sort_by(|x, y| (x.at, &x.approver_id).cmp(&(y.at, &y.approver_id)));
        Ok(Request {
            id: self.id,
            kind: self.kind,
            agent_did: self.agent_did,
            agent_name: self.agent_name,
            child_did: self.child_did,
            child_name: self.child_name,
            capabilities: parse_list(&self.capabilities, "request capabilities")?,
            duration_seconds: self.duration_seconds,
            justification: self.justification,
            ticket: self.ticket,
            context: self.context,
            on_behalf_of: self.on_behalf_of,
            status: self.status,
            reason: self.reason,
            policy: serde_json::from_str::<Requirement>(&self.requirement)
                .map_err(|e| StoreError::Corrupt(format!("request requirement: {e}")))?,
            approvals: self
                .approvals
                .into_iter()
                .map(ApprovalRow::into_approval)
                .collect::<StoreResult<_>>()?,
            trust_score: self.trust_score,
            created_at: from_ms(self.created_at),
            expires_at: from_ms(self.expires_at),
            decided_at: opt_from_ms(self.decided_at),
            grant_id: self.grant_id,
        })
    }
}

impl ApprovalRow {
    fn into_approval(self) -> StoreResult<Approval> {
        Ok(Approval {
            approver_id: self.approver_id,
            approver_username: self.approver_username,
            decision: self.decision,
            duration_seconds: self.duration_seconds,
            capabilities: self
                .capabilities
                .map(|c| parse_list(&c, "approval capabilities"))
                .transpose()?,
            justification: self.justification,
            at: from_ms(self.at),
        })
    }
}

/// Requests from a JSON array of `request_json!` arrays.
pub(super) fn requests_from_json(page: &str) -> StoreResult<Vec<Request>> {
    serde_json::from_str::<Vec<RequestRow>>(page)
        .map_err(|e| StoreError::Corrupt(format!("request row: {e}")))?
        .into_iter()
        .map(RequestRow::into_request)
        .collect()
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

pub(super) async fn request_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<Request>> {
    let row: Option<(String,)> = sqlx::query_as(REQUEST_BY_ID)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some((row,)) = row else {
        return Ok(None);
    };
    serde_json::from_str::<RequestRow>(&row)
        .map_err(|e| StoreError::Corrupt(format!("request row: {e}")))?
        .into_request()
        .map(Some)
}

/// An agent's stored status.
pub(super) fn status_of(s: &str) -> StoreResult<AgentStatus> {
    AgentStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("agent status {s:?}")))
}
