//! Rows to records in SQLite: the shared column structs of `store::records` read from
//! `SqliteRow`s, and the request JSON SQLite builds.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::sqlite::SqliteRow;

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

pub(super) fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditEvent> {
    Ok(AuditColumns::from_row(row)?.into_event())
}

pub(super) fn sponsor_from_row(row: &SqliteRow) -> StoreResult<SponsorRecord> {
    SponsorColumns::from_row(row)?.into_record()
}

pub(super) fn device_from_row(row: &SqliteRow) -> StoreResult<DeviceRecord> {
    DeviceColumns::from_row(row)?.record()
}

pub(super) fn access_from_row(row: &SqliteRow) -> StoreResult<AccessTokenRecord> {
    AccessColumns::from_row(row)?.into_record()
}

pub(super) fn agent_from_row(
    row: &SqliteRow,
    sponsors: Vec<SponsorRef>,
    now: DateTime<Utc>,
) -> StoreResult<Agent> {
    AgentColumns::from_row(row)?.into_agent(sponsors, now)
}

/// A request with its agent's and child's names and its decisions, as one JSON array whose
/// items are `records::RequestRow`'s fields in order. SQLite builds it so that a page of requests
/// crosses from SQLite to Rust as one value: sqlx copies every column of every row and hands
/// each row to the async side on its own, and that was most of what a page of 500 cost
/// (`cargo bench --bench pending_page`). Stored JSON (capabilities, the requirement) stays text
/// and is parsed by `records`, as before. Decisions are gathered in no set order and sorted
/// there (an aggregate's `ORDER BY` builds a temporary b-tree for every request).
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

pub(super) fn grant_from_row(row: &SqliteRow, now: DateTime<Utc>) -> StoreResult<Grant> {
    GrantColumns::from_row(row)?.into_grant(now)
}

pub(super) async fn request_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<Request>> {
    let row: Option<(String,)> = sqlx::query_as(REQUEST_BY_ID)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|(row,)| request_from_json(&row)).transpose()
}
