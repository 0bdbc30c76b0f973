//! Requests waiting for approval (PIM role activations, PIM for Groups, access-package
//! assignments), their approval stages, and the rule that decides one stage. Pure: `now` is
//! passed in, nothing here knows HTTP.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestKind {
    /// A directory role (`unifiedRoleAssignmentScheduleRequest`).
    Role,
    /// Membership or ownership of a PIM group (`privilegedAccessGroupAssignmentScheduleRequest`).
    Group,
    /// An access package (`accessPackageAssignmentRequest`).
    AccessPackage,
}

/// A stage's (or step's) `reviewResult` as Graph writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReviewResult {
    NotReviewed,
    Approved,
    Denied,
}

impl ReviewResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotReviewed => "NotReviewed",
            Self::Approved => "Approved",
            Self::Denied => "Denied",
        }
    }
}

/// A stage's `status`. Later stages of a multi-stage approval wait as `Initializing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StageStatus {
    Initializing,
    InProgress,
    Completed,
    Expired,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::InProgress => "InProgress",
            Self::Completed => "Completed",
            Self::Expired => "Expired",
        }
    }
}

/// One approval stage: who may decide it and what they decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub id: String,
    pub approvers: Vec<String>,
    pub review_result: ReviewResult,
    pub status: StageStatus,
    pub justification: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

/// Where a request stands. Rendered per kind (`status` for PIM, `state` and `status` for
/// access packages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RequestStatus {
    PendingApproval,
    Provisioned,
    ScheduleCreated,
    Denied,
    Canceled,
    Failed,
}

impl RequestStatus {
    /// The PIM `status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "PendingApproval",
            Self::Provisioned => "Provisioned",
            Self::ScheduleCreated => "ScheduleCreated",
            Self::Denied => "Denied",
            Self::Canceled => "Canceled",
            Self::Failed => "Failed",
        }
    }

    /// The access-package `state` and `status` values.
    pub fn package_state(self) -> (&'static str, &'static str) {
        match self {
            Self::PendingApproval => ("pendingApproval", "PendingApproval"),
            Self::Provisioned => ("delivered", "Delivered"),
            Self::ScheduleCreated => ("scheduled", "Scheduled"),
            Self::Denied => ("denied", "Denied"),
            Self::Canceled => ("canceled", "Canceled"),
            Self::Failed => ("deliveryFailed", "DeliveryFailed"),
        }
    }
}

/// A request and its approval (the approval id is the request id, as in Graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimRequest {
    pub id: String,
    pub kind: RequestKind,
    /// Who the request is for (and who made it).
    pub principal_id: String,
    /// The role definition, group or access package.
    pub target_id: String,
    pub directory_scope_id: String,
    /// `member` or `owner` (groups).
    pub access_id: String,
    pub action: String,
    pub justification: String,
    pub ticket_number: Option<String>,
    pub ticket_system: Option<String>,
    pub start: Option<DateTime<Utc>>,
    /// ISO 8601 duration (`PT4H`) for `afterDuration` requests.
    pub duration: Option<String>,
    /// End for `afterDateTime` requests.
    pub end: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    pub status: RequestStatus,
    pub stages: Vec<Stage>,
}

/// How long approvers have (PIM: 24 hours, not configurable).
pub const APPROVAL_WINDOW_HOURS: i64 = 24;

impl PimRequest {
    pub fn is_pending(&self) -> bool {
        self.status == RequestStatus::PendingApproval
    }

    /// Whether `user` approves any stage of this request.
    pub fn is_approver(&self, user: &str) -> bool {
        self.stages
            .iter()
            .any(|s| s.approvers.iter().any(|a| a.eq_ignore_ascii_case(user)))
    }

    /// Applies the approval window: a pending request older than 24 hours expires, its open
    /// stage `Expired` and the request `expired_status` (undocumented in Graph: configurable).
    pub fn settle(&mut self, now: DateTime<Utc>, expired_status: RequestStatus) {
        if self.is_pending() && now >= self.created + Duration::hours(APPROVAL_WINDOW_HOURS) {
            for stage in &mut self.stages {
                if stage.status == StageStatus::InProgress {
                    stage.status = StageStatus::Expired;
                }
            }
            self.status = expired_status;
            self.completed = Some(now);
        }
    }
}

/// Why a decision was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no such approval stage")]
    StageNotFound,
    #[error("approvers cannot approve their own requests")]
    OwnRequest,
    #[error("the caller is not an approver of this stage")]
    NotApprover,
    #[error("this stage has already been decided")]
    AlreadyDecided,
    #[error("this stage is not in progress")]
    NotInProgress,
    #[error("the approval has expired")]
    Expired,
}

/// Decides one stage as `caller`: the first approver to decide resolves it; approving the
/// last stage grants the request (scheduled when its start is in the future), denying any
/// stage denies it.
pub fn decide(
    request: &mut PimRequest,
    stage_id: &str,
    caller: &str,
    approve: bool,
    justification: &str,
    now: DateTime<Utc>,
) -> Result<(), DecideError> {
    let at = request
        .stages
        .iter()
        .position(|s| s.id.eq_ignore_ascii_case(stage_id))
        .ok_or(DecideError::StageNotFound)?;
    if request.principal_id.eq_ignore_ascii_case(caller) {
        return Err(DecideError::OwnRequest);
    }
    if !request.stages[at]
        .approvers
        .iter()
        .any(|a| a.eq_ignore_ascii_case(caller))
    {
        return Err(DecideError::NotApprover);
    }
    match request.stages[at].status {
        StageStatus::Completed => return Err(DecideError::AlreadyDecided),
        StageStatus::Expired => return Err(DecideError::Expired),
        StageStatus::Initializing => return Err(DecideError::NotInProgress),
        StageStatus::InProgress if !request.is_pending() => {
            return Err(DecideError::AlreadyDecided);
        }
        StageStatus::InProgress => {}
    }
    let stage = &mut request.stages[at];
    stage.status = StageStatus::Completed;
    stage.review_result = if approve {
        ReviewResult::Approved
    } else {
        ReviewResult::Denied
    };
    stage.justification = justification.to_owned();
    stage.reviewed_by = Some(caller.to_owned());
    stage.reviewed_at = Some(now);
    if !approve {
        request.status = RequestStatus::Denied;
        request.completed = Some(now);
    } else if let Some(next) = request.stages.get_mut(at + 1) {
        next.status = StageStatus::InProgress;
    } else {
        request.status = match request.start {
            Some(start) if start > now => RequestStatus::ScheduleCreated,
            _ => RequestStatus::Provisioned,
        };
        request.completed = Some(now);
    }
    Ok(())
}

/// A request to put in the emulator. Approvers default to the target's policy in the
/// directory (the role's, group's or package's approvers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSeed {
    pub kind: RequestKind,
    pub principal_id: String,
    pub target_id: String,
    pub stages: Option<Vec<Vec<String>>>,
    pub id: Option<String>,
    pub action: String,
    pub access_id: String,
    pub justification: String,
    pub ticket: Option<(String, String)>,
    pub start: Option<DateTime<Utc>>,
    pub duration: Option<String>,
    pub end: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
}

impl RequestSeed {
    fn new(kind: RequestKind, principal: &str, target: &str) -> Self {
        Self {
            kind,
            principal_id: principal.to_owned(),
            target_id: target.to_owned(),
            stages: None,
            id: None,
            action: match kind {
                RequestKind::AccessPackage => "userAdd".into(),
                _ => "selfActivate".into(),
            },
            access_id: "member".into(),
            justification: "Needed for the change window".into(),
            ticket: None,
            start: None,
            duration: Some("PT4H".into()),
            end: None,
            created: None,
        }
    }

    /// `principal` asks to activate the directory role `role_definition_id`.
    pub fn role(principal: &str, role_definition_id: &str) -> Self {
        Self::new(RequestKind::Role, principal, role_definition_id)
    }

    /// `principal` asks for membership of the PIM group `group_id`.
    pub fn group(principal: &str, group_id: &str) -> Self {
        Self::new(RequestKind::Group, principal, group_id)
    }

    /// `requestor` asks for the access package `package_id`.
    pub fn access_package(requestor: &str, package_id: &str) -> Self {
        Self::new(RequestKind::AccessPackage, requestor, package_id)
    }

    /// One stage with these approvers.
    pub fn approvers(mut self, approvers: &[&str]) -> Self {
        self.stages = Some(vec![approvers.iter().map(|a| (*a).to_owned()).collect()]);
        self
    }

    /// Several stages, decided in order.
    pub fn stages(mut self, stages: &[&[&str]]) -> Self {
        self.stages = Some(
            stages
                .iter()
                .map(|s| s.iter().map(|a| (*a).to_owned()).collect())
                .collect(),
        );
        self
    }

    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    pub fn justification(mut self, text: &str) -> Self {
        self.justification = text.to_owned();
        self
    }

    pub fn ticket(mut self, number: &str, system: &str) -> Self {
        self.ticket = Some((number.to_owned(), system.to_owned()));
        self
    }

    /// An `afterDuration` window (ISO 8601, e.g. `PT5H30M`).
    pub fn duration(mut self, iso: &str) -> Self {
        self.duration = Some(iso.to_owned());
        self.end = None;
        self
    }

    /// An `afterDateTime` window ending at `end`.
    pub fn until(mut self, end: DateTime<Utc>) -> Self {
        self.end = Some(end);
        self.duration = None;
        self
    }

    pub fn starting(mut self, start: DateTime<Utc>) -> Self {
        self.start = Some(start);
        self
    }

    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created = Some(at);
        self
    }

    pub fn action(mut self, action: &str) -> Self {
        self.action = action.to_owned();
        self
    }

    /// `member` (the default) or `owner`, for groups.
    pub fn access(mut self, access_id: &str) -> Self {
        self.access_id = access_id.to_owned();
        self
    }

    /// The request this seed makes, with `stages` as the approvers (already resolved).
    pub fn build(self, stages: Vec<Vec<String>>, now: DateTime<Utc>) -> PimRequest {
        let status = if stages.is_empty() {
            RequestStatus::Provisioned
        } else {
            RequestStatus::PendingApproval
        };
        let stages = stages
            .into_iter()
            .enumerate()
            .map(|(i, approvers)| Stage {
                id: uuid::Uuid::new_v4().to_string(),
                approvers,
                review_result: ReviewResult::NotReviewed,
                status: if i == 0 {
                    StageStatus::InProgress
                } else {
                    StageStatus::Initializing
                },
                justification: String::new(),
                reviewed_by: None,
                reviewed_at: None,
            })
            .collect();
        let created = self.created.unwrap_or(now);
        let (ticket_number, ticket_system) = match self.ticket {
            Some((n, s)) => (Some(n), Some(s)),
            None => (None, None),
        };
        PimRequest {
            id: self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            kind: self.kind,
            principal_id: self.principal_id,
            target_id: self.target_id,
            directory_scope_id: "/".into(),
            access_id: self.access_id,
            action: self.action,
            justification: self.justification,
            ticket_number,
            ticket_system,
            start: self.start,
            duration: self.duration,
            end: self.end,
            created,
            completed: (status != RequestStatus::PendingApproval).then_some(created),
            status,
            stages,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap()
    }

    fn two_stages() -> PimRequest {
        RequestSeed::access_package("megan", "pkg")
            .stages(&[&["adele"], &["alex"]])
            .build(vec![vec!["adele".into()], vec!["alex".into()]], now())
    }

    #[test]
    fn stages_are_decided_in_order_and_the_last_approval_grants() {
        let mut r = two_stages();
        let (first, second) = (r.stages[0].id.clone(), r.stages[1].id.clone());
        assert_eq!(
            decide(&mut r, &second, "alex", true, "ok", now()),
            Err(DecideError::NotInProgress)
        );
        decide(&mut r, &first, "adele", true, "ok", now()).unwrap();
        assert!(r.is_pending());
        assert_eq!(r.stages[1].status, StageStatus::InProgress);
        decide(&mut r, &second, "alex", true, "fine", now()).unwrap();
        assert_eq!(r.status, RequestStatus::Provisioned);
        assert_eq!(
            decide(&mut r, &second, "alex", false, "again", now()),
            Err(DecideError::AlreadyDecided)
        );
    }

    #[test]
    fn one_deny_ends_it_and_outsiders_and_requesters_are_refused() {
        let mut r = two_stages();
        let first = r.stages[0].id.clone();
        assert_eq!(
            decide(&mut r, &first, "megan", true, "me", now()),
            Err(DecideError::OwnRequest)
        );
        assert_eq!(
            decide(&mut r, &first, "lee", true, "x", now()),
            Err(DecideError::NotApprover)
        );
        assert_eq!(
            decide(&mut r, "nope", "adele", true, "x", now()),
            Err(DecideError::StageNotFound)
        );
        decide(&mut r, &first, "adele", false, "no", now()).unwrap();
        assert_eq!(r.status, RequestStatus::Denied);
        assert_eq!(r.stages[0].review_result, ReviewResult::Denied);
    }

    #[test]
    fn a_day_old_request_expires_and_a_future_start_is_scheduled() {
        let mut r = two_stages();
        r.settle(now() + Duration::hours(23), RequestStatus::Canceled);
        assert!(r.is_pending());
        r.settle(now() + Duration::hours(24), RequestStatus::Canceled);
        assert_eq!(r.status, RequestStatus::Canceled);
        let first = r.stages[0].id.clone();
        assert_eq!(
            decide(&mut r, &first, "adele", true, "late", now()),
            Err(DecideError::Expired)
        );
        let mut later = RequestSeed::role("megan", "role")
            .starting(now() + Duration::hours(2))
            .build(vec![vec!["adele".into()]], now());
        let step = later.stages[0].id.clone();
        decide(&mut later, &step, "adele", true, "ok", now()).unwrap();
        assert_eq!(later.status, RequestStatus::ScheduleCreated);
    }
}
