//! Rows to records in PostgreSQL: the shared column structs of `store::records` read from
//! `PgRow`s, and the request JSON built in SQL with the same items in the same order as
//! SQLite's, so one reader (`records`) turns both into requests.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::postgres::PgRow;

use super::Tx;
use crate::protocol::agents::{Agent, SponsorRef};
use crate::protocol::audit::AuditEvent;
use crate::protocol::requests::{Grant, Request};
pub(super) use crate::server::store::records::{AGENT_COLUMNS, requests_from_json, status_of};
use crate::server::store::records::{
    AccessColumns, AgentColumns, AuditColumns, DeviceColumns, GrantColumns, SponsorColumns,
    request_from_json,
};
use crate::server::store::{AccessTokenRecord, DeviceRecord, SponsorRecord, StoreResult};

pub(super) fn audit_from_row(row: &PgRow) -> StoreResult<AuditEvent> {
    Ok(AuditColumns::from_row(row)?.into_event())
}

pub(super) fn sponsor_from_row(row: &PgRow) -> StoreResult<SponsorRecord> {
    SponsorColumns::from_row(row)?.into_record()
}

pub(super) fn device_from_row(row: &PgRow) -> StoreResult<DeviceRecord> {
    DeviceColumns::from_row(row)?.record()
}

pub(super) fn access_from_row(row: &PgRow) -> StoreResult<AccessTokenRecord> {
    AccessColumns::from_row(row)?.into_record()
}

pub(super) fn agent_from_row(
    row: &PgRow,
    sponsors: Vec<SponsorRef>,
    now: DateTime<Utc>,
) -> StoreResult<Agent> {
    AgentColumns::from_row(row)?.into_agent(sponsors, now)
}

pub(super) fn grant_from_row(row: &PgRow, now: DateTime<Utc>) -> StoreResult<Grant> {
    GrantColumns::from_row(row)?.into_grant(now)
}

/// A request with its agent's and child's names and its decisions, as one JSON array whose
/// items are `records::RequestRow`'s fields in order; decisions in no set order (`records`
/// sorts them).
macro_rules! request_json {
    () => {
        "json_build_array(r.id, r.kind, r.agent_did, a.name, r.child_did, c.name, r.capabilities,
             r.duration_seconds, r.justification, r.ticket, r.context, r.on_behalf_of, r.status,
             r.reason, r.requirement, r.trust_score, r.created_at, r.expires_at, r.decided_at,
             r.grant_id,
             COALESCE((SELECT json_agg(json_build_array(d.approver_id, s.username, d.decision,
                          d.duration_seconds, d.capabilities, d.justification, d.at))
                       FROM request_decisions d JOIN sponsors s ON s.id = d.approver_id
                       WHERE d.request_id = r.id), '[]'::json))"
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
    "::text",
    request_from!(),
    " WHERE r.id = $1"
);

pub(super) async fn request_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<Request>> {
    let row: Option<(String,)> = sqlx::query_as(REQUEST_BY_ID)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|(row,)| request_from_json(&row)).transpose()
}
