//! The three PIM sources as data: what waits on me (v1.0 `filterByCurrentUser(on='approver')`
//! for directory-role activations, PIM for Groups and access-package assignments), one typed
//! [`EntraApproval`] per row with the names resolved and cached, one request by id, and an
//! approval's steps or stages (beta for roles, v1.0 for the others).

use super::model::{
    self, Approval, GroupRequest, PackageRequest, RoleRequest, Schedule, TicketInfo, User, pending,
    time,
};
use super::names::NameCache;
use super::{Answer, ApiVersion, GraphClient, GraphError, segment};
use crate::client::entra::EntraTokens;
use crate::clock::SharedClock;
use crate::domain::entra::{
    EntraApproval, EntraSource, Expiration, IsoDuration, Principal, RequestedWindow, Target,
    Ticket, parse_key,
};

const APPROVER: &str = "filterByCurrentUser(on='approver')";

/// Where each source's requests and approvals are.
struct Paths {
    requests: &'static str,
    approvals: &'static str,
    /// Role approvals are beta-only; the others are v1.0.
    approvals_version: ApiVersion,
    filter: &'static str,
    expand: &'static str,
}

fn paths(source: EntraSource) -> Paths {
    match source {
        EntraSource::DirectoryRole => Paths {
            requests: "roleManagement/directory/roleAssignmentScheduleRequests",
            approvals: "roleManagement/directory/roleAssignmentApprovals",
            approvals_version: ApiVersion::Beta,
            filter: "status eq 'PendingApproval'",
            expand: "roleDefinition,principal",
        },
        EntraSource::PimGroup => Paths {
            requests: "identityGovernance/privilegedAccess/group/assignmentScheduleRequests",
            approvals: "identityGovernance/privilegedAccess/group/assignmentApprovals",
            approvals_version: ApiVersion::V1,
            filter: "status eq 'PendingApproval'",
            expand: "group,principal",
        },
        EntraSource::AccessPackage => Paths {
            requests: "identityGovernance/entitlementManagement/assignmentRequests",
            approvals: "identityGovernance/entitlementManagement/accessPackageAssignmentApprovals",
            approvals_version: ApiVersion::V1,
            filter: "state eq 'pendingApproval'",
            expand: "accessPackage,requestor",
        },
    }
}

/// The approvals of the signed-in person: their object id, Graph, and the names seen so far.
#[derive(Debug)]
pub struct EntraApprovals {
    graph: GraphClient,
    me: String,
    names: NameCache,
}

impl EntraApprovals {
    /// Approvals as `me` (an object id) sees them through `graph`.
    pub fn new(graph: GraphClient, me: impl Into<String>) -> Self {
        Self {
            graph,
            me: me.into(),
            names: NameCache::default(),
        }
    }

    /// The signed-in person's, through Graph as `[entra]` names it.
    pub fn for_tokens(tokens: &EntraTokens, clock: SharedClock) -> Result<Self, GraphError> {
        Ok(Self::new(
            GraphClient::for_tokens(tokens, clock)?,
            tokens.identity().object_id.clone(),
        ))
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    /// My object id.
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn names(&self) -> &NameCache {
        &self.names
    }

    /// Everything in `source` that waits on me, every page, names resolved.
    pub async fn list(&self, source: EntraSource) -> Result<Vec<EntraApproval>, GraphError> {
        let p = paths(source);
        let url = self.graph.url(
            ApiVersion::V1,
            &format!("{}/{APPROVER}", p.requests),
            &[("$filter", p.filter), ("$expand", p.expand)],
        )?;
        // The filter is asked for and checked again: a row that no longer waits is not shown.
        let mut rows: Vec<EntraApproval> = match source {
            EntraSource::DirectoryRole => {
                let listed = self.graph.list::<RoleRequest>(url).await?;
                listed
                    .items
                    .into_iter()
                    .filter(|r| pending(&r.status))
                    .map(role_row)
                    .collect()
            }
            EntraSource::PimGroup => {
                let listed = self.graph.list::<GroupRequest>(url).await?;
                listed
                    .items
                    .into_iter()
                    .filter(|r| pending(&r.status))
                    .map(group_row)
                    .collect()
            }
            EntraSource::AccessPackage => {
                let listed = self.graph.list::<PackageRequest>(url).await?;
                listed
                    .items
                    .into_iter()
                    .filter(|r| pending(&r.state) || (r.state.is_none() && pending(&r.status)))
                    .map(package_row)
                    .collect()
            }
        };
        self.names.remember(&rows);
        self.names.resolve(&self.graph, &mut rows).await;
        Ok(rows)
    }

    /// One request of `source` by id (whatever its status), names resolved.
    pub async fn get(&self, source: EntraSource, id: &str) -> Result<EntraApproval, GraphError> {
        let p = paths(source);
        let url = self.graph.url(
            ApiVersion::V1,
            &format!("{}/{}", p.requests, segment(id)?),
            &[("$expand", p.expand)],
        )?;
        let row = match source {
            EntraSource::DirectoryRole => role_row(self.graph.get::<RoleRequest>(url).await?.value),
            EntraSource::PimGroup => group_row(self.graph.get::<GroupRequest>(url).await?.value),
            EntraSource::AccessPackage => {
                package_row(self.graph.get::<PackageRequest>(url).await?.value)
            }
        };
        let mut rows = [row];
        self.names.remember(&rows);
        self.names.resolve(&self.graph, &mut rows).await;
        let [row] = rows;
        Ok(row)
    }

    /// A request by its key (`role:<id>`, `group:<id>`, `package:<id>`) or a bare id, looked
    /// for in each source in turn.
    pub async fn find(&self, key: &str) -> Result<EntraApproval, GraphError> {
        let (source, id) = parse_key(key);
        if let Some(source) = source {
            return self.get(source, id).await;
        }
        // Not there (404) in one source, not mine to see (403) in another: the 403 says more.
        let (mut forbidden, mut missing) = (None, None);
        for source in EntraSource::ALL {
            match self.get(source, id).await {
                Ok(row) => return Ok(row),
                Err(e) if e.status() == Some(403) => {
                    forbidden.get_or_insert(e);
                }
                Err(e) if matches!(e.status(), Some(400 | 404)) => {
                    missing.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(forbidden
            .or(missing)
            .unwrap_or_else(|| GraphError::Usage(format!("no request {key}"))))
    }

    /// The approval of a request with its steps (roles, beta) or stages.
    pub async fn approval(
        &self,
        source: EntraSource,
        approval_id: &str,
    ) -> Result<Answer<Approval>, GraphError> {
        let p = paths(source);
        let url = self.graph.url(
            p.approvals_version,
            &format!("{}/{}", p.approvals, segment(approval_id)?),
            &[],
        )?;
        self.graph.get(url).await
    }
}

fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn person(id: &str, user: Option<User>) -> Principal {
    match user {
        Some(u) if u.id.eq_ignore_ascii_case(id) => Principal {
            id: id.to_owned(),
            display_name: text(u.display_name),
            username: text(u.user_principal_name).or(text(u.mail)),
        },
        _ => Principal::new(id),
    }
}

/// The window a schedule asks for; a pattern this build cannot read is kept as written.
fn window(schedule: Option<Schedule>) -> RequestedWindow {
    let schedule = schedule.unwrap_or_default();
    let exp = schedule.expiration.unwrap_or_default();
    let kind = exp.kind.as_deref().unwrap_or("").to_ascii_lowercase();
    let duration = exp.duration.as_deref().and_then(IsoDuration::parse);
    let end = time(exp.end_date_time.as_deref());
    let expiration = match (kind.as_str(), duration, end) {
        ("noexpiration", _, _) => Expiration::NoExpiration,
        ("afterdatetime", _, Some(end)) | ("", None, Some(end)) => {
            Expiration::AfterDateTime { end }
        }
        ("afterduration" | "", Some(duration), _) => Expiration::AfterDuration { duration },
        _ => Expiration::NotSpecified {
            raw: exp.kind.clone().or(exp.duration.clone()),
        },
    };
    RequestedWindow {
        start: time(schedule.start_date_time.as_deref()),
        expiration,
    }
}

fn ticket(info: Option<TicketInfo>) -> Option<Ticket> {
    let info = info?;
    let t = Ticket {
        number: text(info.ticket_number),
        system: text(info.ticket_system),
    };
    (t.number.is_some() || t.system.is_some()).then_some(t)
}

fn creator(set: Option<model::IdentitySet>, principal: &str) -> Option<String> {
    set?.user?
        .id
        .filter(|id| !id.eq_ignore_ascii_case(principal))
}

fn role_row(r: RoleRequest) -> EntraApproval {
    EntraApproval {
        source: EntraSource::DirectoryRole,
        approval_id: r.approval_id.unwrap_or_else(|| r.id.clone()),
        created_by: creator(r.created_by, &r.principal_id),
        requester: person(&r.principal_id, r.principal),
        target: Target {
            display_name: r.role_definition.and_then(|d| text(d.display_name)),
            id: r.role_definition_id,
        },
        scope: text(r.directory_scope_id),
        action: text(r.action),
        window: window(r.schedule_info),
        justification: text(r.justification),
        ticket: ticket(r.ticket_info),
        created_at: time(r.created_date_time.as_deref()),
        status: r.status.unwrap_or_default(),
        id: r.id,
    }
}

fn group_row(r: GroupRequest) -> EntraApproval {
    EntraApproval {
        source: EntraSource::PimGroup,
        approval_id: r.approval_id.unwrap_or_else(|| r.id.clone()),
        created_by: creator(r.created_by, &r.principal_id),
        requester: person(&r.principal_id, r.principal),
        target: Target {
            display_name: r.group.and_then(|g| text(g.display_name)),
            id: r.group_id,
        },
        scope: text(r.access_id),
        action: text(r.action),
        window: window(r.schedule_info),
        justification: text(r.justification),
        ticket: ticket(r.ticket_info),
        created_at: time(r.created_date_time.as_deref()),
        status: r.status.unwrap_or_default(),
        id: r.id,
    }
}

fn package_row(r: PackageRequest) -> EntraApproval {
    let subject = r.requestor.unwrap_or_default();
    let requester = Principal {
        id: subject.object_id.or(subject.id).unwrap_or_default(),
        display_name: text(subject.display_name),
        username: text(subject.principal_name).or(text(subject.email)),
    };
    let target = match r.access_package {
        Some(p) => Target {
            display_name: text(p.display_name),
            id: p.id,
        },
        None => Target::default(),
    };
    EntraApproval {
        source: EntraSource::AccessPackage,
        approval_id: r.id.clone(),
        created_by: None,
        requester,
        target,
        scope: None,
        action: text(r.request_type),
        window: window(r.schedule),
        justification: text(r.justification),
        ticket: None,
        created_at: time(r.created_date_time.as_deref()),
        status: r.state.or(r.status).unwrap_or_default(),
        id: r.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::graph::model::ExpirationPattern;

    fn schedule(kind: Option<&str>, duration: Option<&str>, end: Option<&str>) -> Option<Schedule> {
        Some(Schedule {
            start_date_time: Some("2026-11-24T09:00:00Z".into()),
            expiration: Some(ExpirationPattern {
                kind: kind.map(str::to_owned),
                end_date_time: end.map(str::to_owned),
                duration: duration.map(str::to_owned),
            }),
        })
    }

    #[test]
    fn every_expiration_pattern_and_its_casing() {
        let w = window(schedule(Some("AfterDuration"), Some("PT8H"), None));
        assert!(matches!(w.expiration, Expiration::AfterDuration { .. }));
        assert!(w.start.is_some());
        let w = window(schedule(
            Some("afterDateTime"),
            None,
            Some("2026-11-24T17:00:00Z"),
        ));
        assert!(matches!(w.expiration, Expiration::AfterDateTime { .. }));
        let w = window(schedule(Some("NoExpiration"), None, None));
        assert_eq!(w.expiration, Expiration::NoExpiration);
        let w = window(schedule(None, Some("P7D"), None));
        assert!(matches!(w.expiration, Expiration::AfterDuration { .. }));
        let w = window(schedule(Some("afterDuration"), Some("four hours"), None));
        assert!(matches!(w.expiration, Expiration::NotSpecified { .. }));
        assert_eq!(window(None).start, None);
    }
}
