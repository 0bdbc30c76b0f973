//! The query strings of the `/v1` lists, as structs: the client serializes them, the server
//! parses the same struct, so both ends agree by construction.

use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::requests::RequestStatus;

/// Whose items a sponsor lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListScope {
    /// Items about the caller's own agents.
    #[default]
    Mine,
    /// Every item (security leads and admins).
    All,
}

/// Which statuses a request list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
    All,
}

impl StatusFilter {
    /// The one status to list, or `None` for all of them.
    pub fn status(self) -> Option<RequestStatus> {
        Some(match self {
            StatusFilter::Pending => RequestStatus::Pending,
            StatusFilter::Approved => RequestStatus::Approved,
            StatusFilter::Denied => RequestStatus::Denied,
            StatusFilter::Expired => RequestStatus::Expired,
            StatusFilter::Cancelled => RequestStatus::Cancelled,
            StatusFilter::All => return None,
        })
    }
}

/// `GET /v1/requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// Default: all statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusFilter>,
    /// Only requests made by this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `mine` (default) or `all` (security leads and admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ListScope>,
    /// Page size, 1 to 10,000 (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Pending lists: the `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl RequestQuery {
    /// A page of pending requests, soonest to expire first.
    pub fn pending(limit: u32, after: Option<String>) -> Self {
        Self {
            status: Some(StatusFilter::Pending),
            limit: Some(limit),
            after,
            ..Self::default()
        }
    }
}

/// `GET /v1/grants`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `true` (default): only grants in force now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `mine` (default) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ListScope>,
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AgentQuery {
    /// `mine` (default) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ListScope>,
}

/// `GET /v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events after this `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The newest N events instead (what a console shows first); excludes `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// Also report the hash the chain holds at this `seq` (1 or more), to compare with a
    /// checkpoint kept earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

/// `GET /v1/requests/{id}/wait`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait for a decision, 0–60 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `GET /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Start after this `seq` (as `Last-Event-ID` does; the header wins). Default: only new
    /// events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip_through_a_query_string() {
        let q = RequestQuery {
            status: Some(StatusFilter::Pending),
            agent: Some("did:mesh:0123".into()),
            scope: Some(ListScope::All),
            limit: Some(10),
            after: Some("1700000000000.req_ab".into()),
        };
        let text = serde_urlencoded::to_string(&q).unwrap_or_default();
        assert_eq!(
            text,
            "status=pending&agent=did%3Amesh%3A0123&scope=all&limit=10&after=1700000000000.req_ab"
        );
        assert_eq!(
            serde_urlencoded::from_str::<RequestQuery>(&text).ok(),
            Some(q)
        );
        assert_eq!(
            serde_urlencoded::to_string(GrantQuery::default()).ok(),
            Some(String::new())
        );
        assert!(serde_urlencoded::from_str::<AgentQuery>("scope=everything").is_err());
        assert!(serde_urlencoded::from_str::<AgentQuery>("bogus=1").is_err());
    }
}
