//! Deciding a request (DESIGN §3, Decision): who may decide, self-approval, one decision per
//! approver, the window clamped to min(asked, policy), the approved subset, the two-approval
//! rule, and what the request becomes. The store loads the request with its decisions inside
//! its transaction, calls [`decide`], and writes the [`Verdict`].

use chrono::{DateTime, Utc};

use super::capability::{self, Capability};
use super::role::Role;
use super::{Invalid, Refusal};
use crate::protocol::requests::{Decision, Request, RequestStatus};

/// The human deciding, with the facts about them the rules need.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub roles: &'a [Role],
    /// Whether they sponsor the requesting agent.
    pub sponsors_agent: bool,
}

/// What the decider chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub decision: Decision,
    /// Approvals: how long; `None` is the longest allowed.
    pub duration_seconds: Option<i64>,
    /// Approvals: a narrower subset of what was asked; `None` is all of it.
    pub capabilities: Option<Vec<String>>,
    pub justification: String,
}

/// The decider's decision as it is recorded beside the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub decision: Decision,
    pub duration_seconds: Option<i64>,
    pub capabilities: Option<Vec<String>>,
}

/// What the request becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One deny ends it.
    Denied,
    /// An approval recorded; policy needs `required` and there are `approvals` so far.
    Awaiting { approvals: usize, required: u8 },
    /// Approved: every approver agreed to each capability, for the shortest time any chose.
    Approved {
        capabilities: Vec<Capability>,
        duration_seconds: i64,
    },
}

/// The answer of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still pending but past its time to live: it expires now (a deny, fail closed) and the
    /// decision is refused with [`expired`].
    Expire,
    Decided {
        recorded: Recorded,
        outcome: Outcome,
    },
}

/// Whether `decider` may decide `request` at all: its sponsors may, and so may the roles its
/// policy names.
pub fn may_decide(decider: &Decider<'_>, request: &Request) -> Result<(), Refusal> {
    let by_role = request
        .policy
        .approver_roles
        .iter()
        .any(|role| decider.roles.contains(role));
    if decider.sponsors_agent || by_role {
        Ok(())
    } else {
        Err(Refusal::forbidden(
            "forbidden",
            "only the agent's sponsors or the roles policy names may decide this request",
        ))
    }
}

/// The refusal for deciding a request that is no longer pending.
pub fn not_pending(request: &Request) -> Refusal {
    let (code, message) = match request.status {
        RequestStatus::Approved | RequestStatus::Denied => (
            "already_decided",
            format!("this request was already {}", request.status.as_str()),
        ),
        RequestStatus::Expired => ("expired", "this request expired before a decision".into()),
        RequestStatus::Cancelled => (
            "cancelled",
            format!(
                "this request was cancelled ({})",
                request.reason.as_deref().unwrap_or("by the agent")
            ),
        ),
        RequestStatus::Pending => ("pending", "this request is still pending".into()),
    };
    Refusal::conflict(code, message)
}

/// The refusal after a late decision expired the request.
pub fn expired() -> Refusal {
    Refusal::conflict("expired", "this request expired before a decision")
}

/// Whether a pending request is past its time to live at `now`.
pub fn is_due(request: &Request, now: DateTime<Utc>) -> bool {
    request.status == RequestStatus::Pending && request.expires_at <= now
}

/// Decides `request` (with its decisions so far) as `decider` chose, at `now`.
pub fn decide(
    request: &Request,
    decider: &Decider<'_>,
    choice: &Choice,
    now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    may_decide(decider, request)?;
    if choice.justification.trim().is_empty() {
        return Err(Invalid::new(
            "justification_required",
            "every decision needs a justification",
        )
        .into());
    }
    if is_due(request, now) {
        return Ok(Verdict::Expire);
    }
    if request.status != RequestStatus::Pending {
        return Err(not_pending(request));
    }
    if request
        .on_behalf_of
        .as_deref()
        .is_some_and(|who| who == decider.username || who == decider.id)
    {
        return Err(Refusal::forbidden(
            "self_approval",
            "this request was made on your behalf; someone else must decide it",
        ));
    }
    if request
        .approvals
        .iter()
        .any(|a| a.approver_id == decider.id)
    {
        return Err(Refusal::conflict(
            "already_decided_by_you",
            "you already decided this request; it needs a different approver",
        ));
    }
    let recorded = match choice.decision {
        Decision::Deny => Recorded {
            decision: Decision::Deny,
            duration_seconds: None,
            capabilities: None,
        },
        Decision::Approve => {
            let (duration, caps) = approval_window(request, choice)?;
            Recorded {
                decision: Decision::Approve,
                duration_seconds: Some(duration),
                capabilities: Some(caps.into_iter().map(String::from).collect()),
            }
        }
    };
    let outcome = match recorded.decision {
        Decision::Deny => Outcome::Denied,
        Decision::Approve => combine(request, &recorded)?,
    };
    Ok(Verdict::Decided { recorded, outcome })
}

/// The window and subset of one approval, checked against the request and policy.
fn approval_window(request: &Request, choice: &Choice) -> Result<(i64, Vec<Capability>), Invalid> {
    let max = request.policy.grantable_seconds(request.duration_seconds);
    let duration = choice.duration_seconds.unwrap_or(max);
    if duration <= 0 || duration > max {
        return Err(Invalid::new(
            "duration_exceeds_limit",
            format!(
                "approve for 1 to {max} seconds (the smaller of what was asked, {}, and the policy maximum, {})",
                request.duration_seconds, request.policy.max_seconds
            ),
        ));
    }
    let requested = capability::parse_set(&request.capabilities)?;
    let chosen = match &choice.capabilities {
        None => requested.clone(),
        Some(list) => capability::parse_set(list)?,
    };
    if chosen.is_empty() || !capability::is_subset(&chosen, &requested) {
        return Err(Invalid::new(
            "capabilities_not_requested",
            "approve a non-empty subset of the requested capabilities",
        ));
    }
    Ok((duration, chosen))
}

/// Combines this approval with the earlier ones: awaiting more, or approved for what every
/// approver agreed to, for the shortest time any of them chose.
fn combine(request: &Request, this: &Recorded) -> Result<Outcome, Refusal> {
    let mut approvals: Vec<(Vec<String>, i64)> = request
        .approvals
        .iter()
        .filter(|a| a.decision == Decision::Approve)
        .map(|a| {
            (
                a.capabilities.clone().unwrap_or_default(),
                a.duration_seconds.unwrap_or(0),
            )
        })
        .collect();
    approvals.push((
        this.capabilities.clone().unwrap_or_default(),
        this.duration_seconds.unwrap_or(0),
    ));
    let required = request.policy.approvals_required;
    if approvals.len() < usize::from(required) {
        return Ok(Outcome::Awaiting {
            approvals: approvals.len(),
            required,
        });
    }
    let duration_seconds = approvals.iter().map(|a| a.1).min().unwrap_or(0);
    let sets = approvals
        .iter()
        .map(|a| capability::parse_set(&a.0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut capabilities = Vec::new();
    if let Some((first, rest)) = sets.split_first() {
        for c in first {
            if rest
                .iter()
                .all(|set| capability::is_subset(std::slice::from_ref(c), set))
            {
                capabilities.push(c.clone());
            }
        }
    }
    if capabilities.is_empty() {
        return Err(Invalid::new(
            "no_common_capabilities",
            "the approvers agreed on no capability in common",
        )
        .into());
    }
    Ok(Outcome::Approved {
        capabilities,
        duration_seconds,
    })
}

/// Whether `agent_did` may withdraw `request`: only the agent that asked, only while pending.
pub fn may_cancel(request: &Request, agent_did: &str) -> Result<(), Refusal> {
    if request.agent_did != agent_did {
        return Err(Refusal::not_found("request"));
    }
    if request.status != RequestStatus::Pending {
        return Err(not_pending(request));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::policy::{Requirement, Sensitivity};
    use crate::protocol::requests::{Approval, RequestKind};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn request(approvals_required: u8) -> Request {
        Request {
            id: "req_1".into(),
            kind: RequestKind::Elevation,
            agent_did: "did:mesh:a".into(),
            agent_name: "a".into(),
            child_did: None,
            child_name: None,
            capabilities: vec!["write:crm".into(), "read:crm".into()],
            duration_seconds: 7200,
            justification: "j".into(),
            ticket: None,
            context: None,
            on_behalf_of: Some("carol".into()),
            status: RequestStatus::Pending,
            reason: None,
            policy: Requirement {
                sensitivity: Sensitivity::High,
                max_seconds: 3600,
                approvals_required,
                approver_roles: vec![Role::SecurityLead],
            },
            approvals: Vec::new(),
            trust_score: 500,
            created_at: now(),
            expires_at: now() + Duration::hours(1),
            decided_at: None,
            grant_id: None,
        }
    }

    const SPONSOR: Decider<'static> = Decider {
        id: "s1",
        username: "alice",
        roles: &[Role::Sponsor],
        sponsors_agent: true,
    };

    fn approve(seconds: Option<i64>, caps: Option<&[&str]>) -> Choice {
        Choice {
            decision: Decision::Approve,
            duration_seconds: seconds,
            capabilities: caps.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
            justification: "ok".into(),
        }
    }

    fn code(r: Result<Verdict, Refusal>) -> &'static str {
        r.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn sponsors_and_named_roles_decide_nobody_else() {
        let r = request(1);
        assert!(may_decide(&SPONSOR, &r).is_ok());
        let lead = Decider {
            id: "s2",
            username: "sam",
            roles: &[Role::SecurityLead],
            sponsors_agent: false,
        };
        assert!(may_decide(&lead, &r).is_ok());
        let stranger = Decider {
            id: "s3",
            username: "bob",
            roles: &[Role::Sponsor, Role::OnCall],
            sponsors_agent: false,
        };
        assert_eq!(
            code(decide(&r, &stranger, &approve(None, None), now())),
            "forbidden"
        );
    }

    #[test]
    fn the_window_is_clamped_to_the_smaller_of_asked_and_policy() {
        let r = request(1);
        let Ok(Verdict::Decided { recorded, outcome }) =
            decide(&r, &SPONSOR, &approve(None, None), now())
        else {
            unreachable!("approves")
        };
        assert_eq!(recorded.duration_seconds, Some(3600));
        assert!(matches!(
            outcome,
            Outcome::Approved {
                duration_seconds: 3600,
                ..
            }
        ));
        assert_eq!(
            code(decide(&r, &SPONSOR, &approve(Some(3601), None), now())),
            "duration_exceeds_limit"
        );
        assert_eq!(
            code(decide(&r, &SPONSOR, &approve(Some(0), None), now())),
            "duration_exceeds_limit"
        );
        assert_eq!(
            code(decide(
                &r,
                &SPONSOR,
                &approve(None, Some(&["delete:crm"])),
                now()
            )),
            "capabilities_not_requested"
        );
        assert_eq!(
            code(decide(&r, &SPONSOR, &approve(None, Some(&[])), now())),
            "capabilities_not_requested"
        );
    }

    #[test]
    fn refusals_one_by_one() {
        let mut r = request(1);
        let mut blank = approve(None, None);
        blank.justification = "  ".into();
        assert_eq!(
            code(decide(&r, &SPONSOR, &blank, now())),
            "justification_required"
        );
        let carol = Decider {
            username: "carol",
            ..SPONSOR
        };
        assert_eq!(
            code(decide(&r, &carol, &approve(None, None), now())),
            "self_approval"
        );
        r.status = RequestStatus::Approved;
        assert_eq!(
            code(decide(&r, &SPONSOR, &approve(None, None), now())),
            "already_decided"
        );
        r.status = RequestStatus::Cancelled;
        assert_eq!(
            code(decide(&r, &SPONSOR, &approve(None, None), now())),
            "cancelled"
        );
        r.status = RequestStatus::Pending;
        assert_eq!(
            decide(
                &r,
                &SPONSOR,
                &approve(None, None),
                now() + Duration::hours(1)
            ),
            Ok(Verdict::Expire)
        );
    }

    fn approval(id: &str, seconds: i64, caps: &[&str]) -> Approval {
        Approval {
            approver_id: id.into(),
            approver_username: id.into(),
            decision: Decision::Approve,
            duration_seconds: Some(seconds),
            capabilities: Some(caps.iter().map(|s| (*s).to_owned()).collect()),
            justification: "ok".into(),
            at: now(),
        }
    }

    #[test]
    fn two_approvals_take_the_common_subset_for_the_shortest_time() {
        let mut r = request(2);
        let first = decide(&r, &SPONSOR, &approve(Some(1800), None), now());
        assert!(matches!(
            first,
            Ok(Verdict::Decided {
                outcome: Outcome::Awaiting {
                    approvals: 1,
                    required: 2
                },
                ..
            })
        ));
        r.approvals
            .push(approval("s1", 1800, &["write:crm", "read:crm"]));
        assert_eq!(
            code(decide(&r, &SPONSOR, &approve(None, None), now())),
            "already_decided_by_you"
        );
        let second = Decider {
            id: "s2",
            username: "sam",
            roles: &[Role::SecurityLead],
            sponsors_agent: false,
        };
        let Ok(Verdict::Decided { outcome, .. }) =
            decide(&r, &second, &approve(Some(900), Some(&["read:crm"])), now())
        else {
            unreachable!("approves")
        };
        assert_eq!(
            outcome,
            Outcome::Approved {
                capabilities: capability::parse_set(&["read:crm"]).unwrap_or_default(),
                duration_seconds: 900
            }
        );
    }

    #[test]
    fn a_deny_ends_it_at_once() {
        let mut r = request(2);
        r.approvals.push(approval("s1", 1800, &["read:crm"]));
        let deny = Choice {
            decision: Decision::Deny,
            duration_seconds: None,
            capabilities: None,
            justification: "no".into(),
        };
        let lead = Decider {
            id: "s2",
            username: "sam",
            roles: &[Role::SecurityLead],
            sponsors_agent: false,
        };
        assert!(matches!(
            decide(&r, &lead, &deny, now()),
            Ok(Verdict::Decided {
                outcome: Outcome::Denied,
                ..
            })
        ));
    }

    #[test]
    fn only_the_asking_agent_cancels_a_pending_request() {
        let mut r = request(1);
        assert!(may_cancel(&r, "did:mesh:a").is_ok());
        assert_eq!(
            may_cancel(&r, "did:mesh:b").map_err(|e| e.code()),
            Err("not_found")
        );
        r.status = RequestStatus::Denied;
        assert_eq!(
            may_cancel(&r, "did:mesh:a").map_err(|e| e.code()),
            Err("already_decided")
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::policy::{Requirement, Sensitivity};
    use crate::protocol::requests::RequestKind;

    proptest! {
        /// An accepted approval never grants longer than asked or than policy allows, nor
        /// anything that was not asked for.
        #[test]
        fn approvals_stay_within_the_request_and_policy(
            asked in 60i64..100_000,
            policy_max in 60i64..100_000,
            chosen in proptest::option::of(-10i64..120_000),
            narrow in any::<bool>(),
        ) {
            let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
            let request = Request {
                id: "req_1".into(),
                kind: RequestKind::Elevation,
                agent_did: "did:mesh:a".into(),
                agent_name: "a".into(),
                child_did: None,
                child_name: None,
                capabilities: vec!["read:crm:*".into(), "send:email".into()],
                duration_seconds: asked,
                justification: "j".into(),
                ticket: None,
                context: None,
                on_behalf_of: None,
                status: RequestStatus::Pending,
                reason: None,
                policy: Requirement {
                    sensitivity: Sensitivity::Low,
                    max_seconds: policy_max,
                    approvals_required: 1,
                    approver_roles: Vec::new(),
                },
                approvals: Vec::new(),
                trust_score: 500,
                created_at: now,
                expires_at: now + chrono::Duration::hours(1),
                decided_at: None,
                grant_id: None,
            };
            let decider = Decider { id: "s", username: "s", roles: &[], sponsors_agent: true };
            let choice = Choice {
                decision: Decision::Approve,
                duration_seconds: chosen,
                capabilities: narrow.then(|| vec!["read:crm:accounts".to_owned()]),
                justification: "ok".into(),
            };
            if let Ok(Verdict::Decided { outcome: Outcome::Approved { capabilities, duration_seconds }, .. }) =
                decide(&request, &decider, &choice, now)
            {
                prop_assert!(duration_seconds > 0);
                prop_assert!(duration_seconds <= asked.min(policy_max));
                let asked_caps = capability::parse_set(&request.capabilities).unwrap_or_default();
                prop_assert!(capability::is_subset(&capabilities, &asked_caps));
            }
        }
    }
}
