//! Rows to records, for every backend: each table's columns as a `FromRow` struct (generic over
//! the database, since both schemas have the same columns and types), what those columns mean
//! as the store's and protocol's types, and a request with its decisions read from the JSON
//! array both backends build in SQL.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::domain::capability::{self, Capability};
use crate::domain::policy::Requirement;
use crate::domain::role::Role;
use crate::domain::trust;
use crate::protocol::agents::{Agent, AgentStatus, SponsorRef};
use crate::protocol::audit::{Actor, ActorKind, AuditEvent, UnhashedEvent};
use crate::protocol::oauth::SubjectKind;
use crate::protocol::requests::{Approval, Decision, Grant, Request, RequestKind, RequestStatus};
use crate::server::store::{
    AccessTokenRecord, ActiveGrant, AgentCredential, DeviceRecord, DeviceStatus, SponsorRecord,
    StoreError, StoreResult, TokenSubject,
};

/// Stored timestamps are Unix milliseconds.
pub(super) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(super) fn opt_from_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

/// A JSON list column read back.
pub(super) fn parse_list(s: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A JSON list column to store.
pub(super) fn json_list(v: &[String]) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored list of capabilities, parsed.
pub(super) fn caps_of(items: &[String]) -> StoreResult<Vec<Capability>> {
    capability::parse_set(items).map_err(|e| StoreError::Corrupt(format!("capabilities: {e}")))
}

/// An agent's stored status.
pub(super) fn status_of(s: &str) -> StoreResult<AgentStatus> {
    AgentStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("agent status {s:?}")))
}

/// The columns of `audit_events`.
#[derive(sqlx::FromRow)]
pub(super) struct AuditColumns {
    seq: i64,
    at: i64,
    actor_kind: String,
    actor_id: String,
    action: String,
    subject: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditColumns {
    pub(super) fn into_event(self) -> AuditEvent {
        AuditEvent {
            event: UnhashedEvent {
                seq: self.seq,
                at: from_ms(self.at),
                actor: Actor {
                    kind: ActorKind::parse(&self.actor_kind),
                    id: self.actor_id,
                },
                action: self.action,
                subject: self.subject,
                // A row whose details no longer parse is kept as a string so verification can
                // still name it (its hash will not match).
                details: serde_json::from_str(&self.details)
                    .unwrap_or(serde_json::Value::String(self.details)),
                prev_hash: self.prev_hash,
            },
            hash: self.hash,
        }
    }
}

/// The columns of `sponsors`.
#[derive(sqlx::FromRow)]
pub(super) struct SponsorColumns {
    id: String,
    username: String,
    display_name: String,
    roles: String,
    password_hash: String,
    status: String,
}

impl SponsorColumns {
    pub(super) fn into_record(self) -> StoreResult<SponsorRecord> {
        let names: Vec<String> = serde_json::from_str(&self.roles)
            .map_err(|e| StoreError::Corrupt(format!("sponsor roles: {e}")))?;
        let roles = names
            .iter()
            .map(|n| Role::parse(n).map_err(|e| StoreError::Corrupt(e.message)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SponsorRecord {
            id: self.id,
            username: self.username,
            display_name: self.display_name,
            roles,
            password_hash: self.password_hash,
            active: self.status == "active",
        })
    }
}

/// The columns of `device_authorizations`.
#[derive(sqlx::FromRow)]
pub(super) struct DeviceColumns {
    device_code_hash: String,
    user_code: String,
    client_id: String,
    scope: String,
    status: String,
    sponsor_id: Option<String>,
    interval_seconds: i64,
    expires_at: i64,
    approved_at: Option<i64>,
}

impl DeviceColumns {
    pub(super) fn record(&self) -> StoreResult<DeviceRecord> {
        Ok(DeviceRecord {
            device_code_hash: self.device_code_hash.clone(),
            user_code: self.user_code.clone(),
            client_id: self.client_id.clone(),
            scope: self.scope.clone(),
            status: DeviceStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("device status {:?}", self.status)))?,
            sponsor_id: self.sponsor_id.clone(),
            interval_seconds: self.interval_seconds,
            expires_at: from_ms(self.expires_at),
            approved_at: self.approved_at.map(from_ms),
        })
    }
}

/// The columns of `access_tokens`.
#[derive(sqlx::FromRow)]
pub(super) struct AccessColumns {
    jti: String,
    subject_kind: String,
    subject: String,
    client_id: String,
    family_id: Option<String>,
    scope: String,
    issued_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl AccessColumns {
    pub(super) fn into_record(self) -> StoreResult<AccessTokenRecord> {
        Ok(AccessTokenRecord {
            jti: self.jti,
            subject_kind: match self.subject_kind.as_str() {
                "agent" => SubjectKind::Agent,
                "sponsor" => SubjectKind::Sponsor,
                other => {
                    return Err(StoreError::Corrupt(format!("token subject kind {other:?}")));
                }
            },
            subject: self.subject,
            client_id: self.client_id,
            family_id: self.family_id,
            scope: self.scope,
            issued_at: from_ms(self.issued_at),
            expires_at: from_ms(self.expires_at),
            revoked_at: opt_from_ms(self.revoked_at),
        })
    }
}

/// The columns an agent is read from, in the order of [`AgentColumns`].
pub(super) const AGENT_COLUMNS: &str = "did, name, public_key, capabilities, status, status_reason, \
     suspension_security, status_changed_at, status_changed_by, trust_score, trust_positive_at, \
     parent_did, delegation_depth, entra_object_id, model, runtime, created_at, updated_at";

/// The columns of `agents`.
#[derive(sqlx::FromRow)]
pub(super) struct AgentColumns {
    pub(super) did: String,
    name: String,
    public_key: String,
    capabilities: String,
    status: String,
    status_reason: Option<String>,
    suspension_security: i64,
    status_changed_at: Option<i64>,
    status_changed_by: Option<String>,
    trust_score: i64,
    trust_positive_at: Option<i64>,
    parent_did: Option<String>,
    delegation_depth: i64,
    entra_object_id: Option<String>,
    model: Option<String>,
    runtime: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl AgentColumns {
    /// The agent, its trust decayed to `now`.
    pub(super) fn into_agent(
        self,
        sponsors: Vec<SponsorRef>,
        now: DateTime<Utc>,
    ) -> StoreResult<Agent> {
        let positive_at = self.trust_positive_at.unwrap_or(self.created_at);
        let trust_score = trust::decayed(self.trust_score, from_ms(positive_at), now);
        Ok(Agent {
            did: self.did,
            name: self.name,
            public_key: self.public_key,
            sponsors,
            capabilities: serde_json::from_str(&self.capabilities)
                .map_err(|e| StoreError::Corrupt(format!("agent capabilities: {e}")))?,
            status: AgentStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("agent status {:?}", self.status)))?,
            status_reason: self.status_reason,
            suspension_security: self.suspension_security != 0,
            status_changed_at: opt_from_ms(self.status_changed_at),
            status_changed_by: self.status_changed_by,
            trust_score,
            trust_tier: trust::Tier::of(trust_score),
            parent_did: self.parent_did,
            delegation_depth: self.delegation_depth,
            entra_object_id: self.entra_object_id,
            model: self.model,
            runtime: self.runtime,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
        })
    }
}

/// The columns of `grants` a grant is read from.
#[derive(sqlx::FromRow)]
pub(super) struct GrantColumns {
    id: String,
    agent_did: String,
    capabilities: String,
    not_before: i64,
    not_after: i64,
    request_id: String,
    source_grant_id: Option<String>,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
}

impl GrantColumns {
    /// The grant, active or not at `now`.
    pub(super) fn into_grant(self, now: DateTime<Utc>) -> StoreResult<Grant> {
        let not_before = from_ms(self.not_before);
        let not_after = from_ms(self.not_after);
        let revoked_at = opt_from_ms(self.revoked_at);
        Ok(Grant {
            id: self.id,
            agent_did: self.agent_did,
            capabilities: parse_list(&self.capabilities, "grant capabilities")?,
            not_before,
            not_after,
            request_id: self.request_id,
            source_grant_id: self.source_grant_id,
            revoked_at,
            revoked_by: self.revoked_by,
            revoke_reason: self.revoke_reason,
            active: revoked_at.is_none() && not_before <= now && now < not_after,
        })
    }
}

/// A request row as each backend's request JSON lists it: one array of these fields in this
/// order, the last being the array of its decisions (read positionally).
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

/// One request from its JSON array.
pub(super) fn request_from_json(row: &str) -> StoreResult<Request> {
    serde_json::from_str::<RequestRow>(row)
        .map_err(|e| StoreError::Corrupt(format!("request row: {e}")))?
        .into_request()
}

/// Requests from a JSON array of request arrays.
pub(super) fn requests_from_json(page: &str) -> StoreResult<Vec<Request>> {
    serde_json::from_str::<Vec<RequestRow>>(page)
        .map_err(|e| StoreError::Corrupt(format!("request row: {e}")))?
        .into_iter()
        .map(RequestRow::into_request)
        .collect()
}

/// The columns `token_subject` reads: the agent's key, status and standing capabilities, and
/// its grants in force as a JSON array of `[id, capabilities, not_after]`.
pub(super) fn token_subject_of(
    did: &str,
    (public_key, status, capabilities, grants): (String, String, String, String),
) -> StoreResult<TokenSubject> {
    let rows: Vec<(String, Vec<String>, i64)> = serde_json::from_str(&grants)
        .map_err(|e| StoreError::Corrupt(format!("active grants of {did}: {e}")))?;
    Ok(TokenSubject {
        credential: AgentCredential {
            did: did.to_owned(),
            public_key,
            status: status_of(&status)?,
            capabilities: parse_list(&capabilities, "agent capabilities")?,
        },
        grants: rows
            .into_iter()
            .map(|(id, capabilities, not_after)| ActiveGrant {
                id,
                capabilities,
                not_after: from_ms(not_after),
            })
            .collect(),
    })
}
