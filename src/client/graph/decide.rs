//! Deciding an approval (entra-graph.md §2.4, §3.2, §4): the step (roles, beta) or stage
//! (groups and access packages, v1.0) assigned to me and in progress, PATCHed with
//! `reviewResult` and a justification; approvers cannot change the window. Outcomes are typed:
//! done only on a 2xx; decided by someone else on a 409, or on a 400 when the stage is then
//! found decided; not an approver on a 403. Approving one's own request is refused before
//! Graph is asked, and a decision Graph acknowledged is recorded in the governance server's
//! audit chain.

use serde::{Deserialize, Serialize};

use super::approvals::EntraApprovals;
use super::model::{Approval, Stage};
use super::{Answer, ApiVersion, GraphError, segment};
use crate::client::{ApiClient, ClientError};
use crate::domain::entra::{EntraApproval, EntraSource, may_approve};
use crate::domain::{Invalid, Refusal, text};
use crate::protocol::entra::{EntraDecisionBody, EntraDecisionRecorded};
pub use crate::protocol::requests::Decision;

/// What came of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Graph acknowledged it (2xx).
    Done {
        stage_id: String,
        /// Graph's `request-id` of the PATCH.
        request_id: Option<String>,
        client_request_id: String,
    },
    /// Another approver decided first (409, or a 400 with the stage found decided).
    DecidedElsewhere {
        /// Who did, when Graph says.
        by: Option<String>,
        /// `Approved` or `Denied`, when Graph says.
        result: Option<String>,
        request_id: Option<String>,
    },
    /// I decided it already (from here or elsewhere).
    AlreadyDecided {
        result: Option<String>,
        request_id: Option<String>,
    },
    /// Not mine to decide: Graph answered 403, or no step is assigned to me.
    NotApprover { request_id: Option<String> },
    /// My step waits for an earlier one (a multi-stage access package).
    NotYourTurn { request_id: Option<String> },
    /// Approvers' 24 hours are over.
    Expired { request_id: Option<String> },
    /// Graph no longer has the request or its approval (404).
    Gone { request_id: Option<String> },
}

impl DecisionOutcome {
    pub fn is_done(&self) -> bool {
        matches!(self, DecisionOutcome::Done { .. })
    }

    /// Graph's request-id of the call the outcome rests on.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            DecisionOutcome::Done { request_id, .. }
            | DecisionOutcome::DecidedElsewhere { request_id, .. }
            | DecisionOutcome::AlreadyDecided { request_id, .. }
            | DecisionOutcome::NotApprover { request_id }
            | DecisionOutcome::NotYourTurn { request_id }
            | DecisionOutcome::Expired { request_id }
            | DecisionOutcome::Gone { request_id } => request_id.as_deref(),
        }
    }

    /// What the person reads.
    pub fn describe(&self) -> String {
        let ids = |r: Option<&str>| r.map(|r| format!(" (request-id {r})")).unwrap_or_default();
        match self {
            DecisionOutcome::Done { .. } => format!("done{}", ids(self.request_id())),
            DecisionOutcome::DecidedElsewhere { by, result, .. } => format!(
                "decided by someone else{}{}{}",
                by.as_deref().map(|b| format!(": {b}")).unwrap_or_default(),
                result
                    .as_deref()
                    .map(|r| format!(" ({})", r.to_ascii_lowercase()))
                    .unwrap_or_default(),
                ids(self.request_id())
            ),
            DecisionOutcome::AlreadyDecided { result, .. } => format!(
                "you decided this already{}{}",
                result
                    .as_deref()
                    .map(|r| format!(" ({})", r.to_ascii_lowercase()))
                    .unwrap_or_default(),
                ids(self.request_id())
            ),
            DecisionOutcome::NotApprover { .. } => {
                format!("you are not an approver of this{}", ids(self.request_id()))
            }
            DecisionOutcome::NotYourTurn { .. } => format!(
                "your approval stage has not started; an earlier approver decides first{}",
                ids(self.request_id())
            ),
            DecisionOutcome::Expired { .. } => format!(
                "the approval expired (approvers have 24 hours){}",
                ids(self.request_id())
            ),
            DecisionOutcome::Gone { .. } => format!(
                "Entra no longer has this request or its approval{}",
                ids(self.request_id())
            ),
        }
    }
}

/// Why a decision was not even tried, or failed on the way.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// Refused here before Graph was asked: one's own request, no justification.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// Graph failed (its request-id in the text); the decision is not known to be made.
    #[error("{0}")]
    Graph(#[from] GraphError),
}

impl From<Invalid> for DecideError {
    fn from(e: Invalid) -> Self {
        Self::Refused(e.into())
    }
}

/// The PATCH body: the decision and why, nothing else (the window is not the approver's).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    review_result: &'static str,
    justification: &'a str,
}

fn review_result(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "Approve",
        Decision::Deny => "Deny",
    }
}

/// A decision needs a justification: present, at most 4 KiB, no control characters.
pub fn check_justification(justification: &str) -> Result<(), Invalid> {
    if justification.trim().is_empty() {
        return Err(Invalid::new(
            "justification_required",
            "a justification is required",
        ));
    }
    text::free_text("justification", justification)
}

/// Who decided a stage, by name when Graph gives one.
fn reviewer(stage: &Stage) -> Option<String> {
    stage
        .reviewers()
        .into_iter()
        .find_map(|i| i.display_name.or(i.id))
}

/// A decided stage: by me, or by someone else.
fn decided(stage: &Stage, me: &str, request_id: Option<String>) -> DecisionOutcome {
    let by_me = stage.reviewers().iter().any(|r| {
        r.id.as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(me))
    });
    if by_me {
        DecisionOutcome::AlreadyDecided {
            result: stage.review_result.clone(),
            request_id,
        }
    } else {
        DecisionOutcome::DecidedElsewhere {
            by: reviewer(stage),
            result: stage.review_result.clone(),
            request_id,
        }
    }
}

/// What a stage that is not mine to decide now says about the approval.
fn settled(stages: &[Stage], me: &str, request_id: Option<String>) -> DecisionOutcome {
    let mine: Vec<&Stage> = stages.iter().filter(|s| s.assigned_to_me()).collect();
    let denied = |s: &&Stage| {
        s.completed()
            && s.review_result
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("Denied"))
    };
    if let Some(done) = stages.iter().find(denied) {
        return decided(done, me, request_id);
    }
    if let Some(done) = mine.iter().find(|s| s.completed()) {
        return decided(done, me, request_id);
    }
    if mine.iter().any(|s| s.expired()) || stages.iter().any(Stage::expired) {
        return DecisionOutcome::Expired { request_id };
    }
    if !mine.is_empty() {
        return DecisionOutcome::NotYourTurn { request_id };
    }
    DecisionOutcome::NotApprover { request_id }
}

impl EntraApprovals {
    /// Where one step or stage is decided.
    fn stage_url(
        &self,
        source: EntraSource,
        approval_id: &str,
        stage_id: &str,
    ) -> Result<url::Url, GraphError> {
        let (version, base, word) = match source {
            EntraSource::DirectoryRole => (
                ApiVersion::Beta,
                "roleManagement/directory/roleAssignmentApprovals",
                "steps",
            ),
            EntraSource::PimGroup => (
                ApiVersion::V1,
                "identityGovernance/privilegedAccess/group/assignmentApprovals",
                "stages",
            ),
            EntraSource::AccessPackage => (
                ApiVersion::V1,
                "identityGovernance/entitlementManagement/accessPackageAssignmentApprovals",
                "stages",
            ),
        };
        self.graph().url(
            version,
            &format!(
                "{base}/{}/{word}/{}",
                segment(approval_id)?,
                segment(stage_id)?
            ),
            &[],
        )
    }

    /// The approval as it stands, or the outcome its absence means.
    async fn read_approval(
        &self,
        approval: &EntraApproval,
    ) -> Result<Result<Answer<Approval>, DecisionOutcome>, GraphError> {
        match self.approval(approval.source, &approval.approval_id).await {
            Ok(a) => Ok(Ok(a)),
            Err(e) => {
                let request_id = e.request_id().map(str::to_owned);
                match e.status() {
                    Some(403) => Ok(Err(DecisionOutcome::NotApprover { request_id })),
                    Some(404) => Ok(Err(DecisionOutcome::Gone { request_id })),
                    _ => Err(e),
                }
            }
        }
    }

    /// Approves or denies `approval` with `justification`: the step or stage assigned to me
    /// and in progress, read fresh, then PATCHed. Done only when Graph answers 2xx.
    pub async fn decide(
        &self,
        approval: &EntraApproval,
        decision: Decision,
        justification: &str,
    ) -> Result<DecisionOutcome, DecideError> {
        check_justification(justification)?;
        if decision == Decision::Approve {
            may_approve(approval, self.me())?;
        }
        let current = match self.read_approval(approval).await? {
            Ok(a) => a,
            Err(outcome) => return Ok(outcome),
        };
        let Some(stage) = current
            .value
            .stages
            .iter()
            .find(|s| s.assigned_to_me() && s.in_progress())
        else {
            return Ok(settled(
                &current.value.stages,
                self.me(),
                current.ids.request_id,
            ));
        };
        let url = self.stage_url(approval.source, &approval.approval_id, &stage.id)?;
        let body = Review {
            review_result: review_result(decision),
            justification,
        };
        let failed = match self.graph().patch(url, &body).await {
            Ok(ack) => {
                tracing::info!(
                    source = approval.source.as_str(),
                    id = %approval.id,
                    decision = decision.as_str(),
                    request_id = ack.ids.request_id.as_deref().unwrap_or(""),
                    "Entra decision acknowledged"
                );
                return Ok(DecisionOutcome::Done {
                    stage_id: stage.id.clone(),
                    request_id: ack.ids.request_id,
                    client_request_id: ack.ids.client_request_id,
                });
            }
            Err(e) => e,
        };
        let request_id = failed.request_id().map(str::to_owned);
        match failed.status() {
            Some(403) => Ok(DecisionOutcome::NotApprover { request_id }),
            Some(404) => Ok(DecisionOutcome::Gone { request_id }),
            // Decided meanwhile: 409 as documented, or a 400 some approval APIs send. A 400
            // counts only when the approval, read again, shows the stage settled.
            Some(status @ (400 | 409)) => {
                let again = match self.read_approval(approval).await {
                    Ok(Ok(a)) => a.value.stages,
                    _ if status == 409 => Vec::new(),
                    _ => return Err(failed.into()),
                };
                let settled_stage = again
                    .iter()
                    .find(|s| s.id.eq_ignore_ascii_case(&stage.id))
                    .filter(|s| s.completed() || s.expired());
                match settled_stage {
                    Some(s) if s.expired() => Ok(DecisionOutcome::Expired { request_id }),
                    Some(s) => Ok(decided(s, self.me(), request_id)),
                    None if status == 409 => Ok(DecisionOutcome::DecidedElsewhere {
                        by: None,
                        result: None,
                        request_id,
                    }),
                    None => Err(failed.into()),
                }
            }
            _ => Err(failed.into()),
        }
    }
}

/// The audit record of a decision Graph acknowledged.
pub fn audit_body(
    approval: &EntraApproval,
    decision: Decision,
    justification: &str,
    done: &DecisionOutcome,
    tenant_id: Option<&str>,
) -> Option<EntraDecisionBody> {
    let DecisionOutcome::Done {
        stage_id,
        request_id,
        client_request_id,
    } = done
    else {
        return None;
    };
    Some(EntraDecisionBody {
        source: approval.source,
        request_id: approval.id.clone(),
        stage_id: stage_id.clone(),
        decision,
        justification: justification.to_owned(),
        graph_request_id: request_id.clone(),
        client_request_id: client_request_id.clone(),
        tenant_id: tenant_id.map(str::to_owned),
        target_id: approval.target.id.clone(),
        target_name: approval.target.display_name.clone(),
        requester_id: approval.requester.id.clone(),
        requester_upn: approval.requester.username.clone(),
    })
}

/// A decision and, when Graph acknowledged it, its record in the audit chain.
#[derive(Debug)]
pub struct Decided {
    pub outcome: DecisionOutcome,
    /// `None` when there was nothing to record (not done); the error when recording failed
    /// (the decision stands in Entra all the same).
    pub recorded: Option<Result<EntraDecisionRecorded, ClientError>>,
}

/// Decides `approval` in Entra and, when Graph acknowledged it, records it with the
/// governance server `api` (signed in as the same person).
pub async fn decide_and_record(
    approvals: &EntraApprovals,
    api: &ApiClient,
    approval: &EntraApproval,
    decision: Decision,
    justification: &str,
    tenant_id: Option<&str>,
) -> Result<Decided, DecideError> {
    let outcome = approvals.decide(approval, decision, justification).await?;
    let recorded = match audit_body(approval, decision, justification, &outcome, tenant_id) {
        Some(body) => Some(api.record_entra_decision(&body).await),
        None => None,
    };
    Ok(Decided { outcome, recorded })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(id: &str, mine: bool, status: &str, result: &str) -> Stage {
        serde_json::from_value(serde_json::json!({
            "id": id, "assignedToMe": mine, "status": status, "reviewResult": result,
            "reviewedBy": [{"id": "x", "displayName": "Alex Wilber"}],
        }))
        .unwrap()
    }

    #[test]
    fn what_a_stage_that_is_not_mine_now_means() {
        let rid = || Some("r".to_owned());
        assert!(matches!(
            settled(&[stage("a", true, "Completed", "Approved")], "me", rid()),
            DecisionOutcome::DecidedElsewhere { by: Some(b), .. } if b == "Alex Wilber"
        ));
        assert!(matches!(
            settled(
                &[
                    stage("a", false, "Completed", "Denied"),
                    stage("b", true, "Initializing", "NotReviewed")
                ],
                "me",
                rid()
            ),
            DecisionOutcome::DecidedElsewhere { .. }
        ));
        assert!(matches!(
            settled(
                &[
                    stage("a", false, "InProgress", "NotReviewed"),
                    stage("b", true, "Initializing", "NotReviewed")
                ],
                "me",
                rid()
            ),
            DecisionOutcome::NotYourTurn { .. }
        ));
        assert!(matches!(
            settled(&[stage("a", true, "Expired", "NotReviewed")], "me", rid()),
            DecisionOutcome::Expired { .. }
        ));
        assert!(matches!(
            settled(
                &[stage("a", false, "InProgress", "NotReviewed")],
                "me",
                rid()
            ),
            DecisionOutcome::NotApprover { .. }
        ));
        assert!(matches!(
            settled(&[stage("a", true, "Completed", "Approved")], "X", rid()),
            DecisionOutcome::AlreadyDecided { .. }
        ));
        assert!(check_justification("  ").is_err());
        assert!(check_justification("CHG-1\u{1b}[2J").is_err());
        assert!(check_justification("CHG-4711 checked with the team").is_ok());
        let text = DecisionOutcome::NotApprover { request_id: rid() }.describe();
        assert_eq!(text, "you are not an approver of this (request-id r)");
    }
}
