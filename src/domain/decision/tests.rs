//! Tests of the decision rules, one refusal at a time, and a property test.

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
        code(decide(
            &r,
            AgentStatus::Active,
            &stranger,
            &approve(None, None),
            now()
        )),
        "forbidden"
    );
}

#[test]
fn the_window_is_clamped_to_the_smaller_of_asked_and_policy() {
    let r = request(1);
    let Ok(Verdict::Decided { recorded, outcome }) = decide(
        &r,
        AgentStatus::Active,
        &SPONSOR,
        &approve(None, None),
        now(),
    ) else {
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
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(Some(3601), None),
            now()
        )),
        "duration_exceeds_limit"
    );
    assert_eq!(
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(Some(0), None),
            now()
        )),
        "duration_exceeds_limit"
    );
    assert_eq!(
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(None, Some(&["delete:crm"])),
            now()
        )),
        "capabilities_not_requested"
    );
    assert_eq!(
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(None, Some(&[])),
            now()
        )),
        "capabilities_not_requested"
    );
}

#[test]
fn refusals_one_by_one() {
    let mut r = request(1);
    let mut blank = approve(None, None);
    blank.justification = "  ".into();
    assert_eq!(
        code(decide(&r, AgentStatus::Active, &SPONSOR, &blank, now())),
        "justification_required"
    );
    let carol = Decider {
        username: "carol",
        ..SPONSOR
    };
    assert_eq!(
        code(decide(
            &r,
            AgentStatus::Active,
            &carol,
            &approve(None, None),
            now()
        )),
        "self_approval"
    );
    r.status = RequestStatus::Approved;
    assert_eq!(
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(None, None),
            now()
        )),
        "already_decided"
    );
    r.status = RequestStatus::Cancelled;
    assert_eq!(
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(None, None),
            now()
        )),
        "cancelled"
    );
    r.status = RequestStatus::Pending;
    assert_eq!(
        decide(
            &r,
            AgentStatus::Active,
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
    let first = decide(
        &r,
        AgentStatus::Active,
        &SPONSOR,
        &approve(Some(1800), None),
        now(),
    );
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
        code(decide(
            &r,
            AgentStatus::Active,
            &SPONSOR,
            &approve(None, None),
            now()
        )),
        "already_decided_by_you"
    );
    let second = Decider {
        id: "s2",
        username: "sam",
        roles: &[Role::SecurityLead],
        sponsors_agent: false,
    };
    let Ok(Verdict::Decided { outcome, .. }) = decide(
        &r,
        AgentStatus::Active,
        &second,
        &approve(Some(900), Some(&["read:crm"])),
        now(),
    ) else {
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
        decide(&r, AgentStatus::Active, &lead, &deny, now()),
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

mod properties {
    use proptest::prelude::*;

    use super::super::*;
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
                decide(&request, AgentStatus::Active, &decider, &choice, now)
            {
                prop_assert!(duration_seconds > 0);
                prop_assert!(duration_seconds <= asked.min(policy_max));
                let asked_caps = capability::parse_set(&request.capabilities).unwrap_or_default();
                prop_assert!(capability::is_subset(&capabilities, &asked_caps));
            }
        }
    }
}

#[test]
fn a_suspended_agents_request_is_not_decided() {
    let r = request(1);
    for status in [AgentStatus::Suspended, AgentStatus::Revoked] {
        assert_eq!(
            code(decide(&r, status, &SPONSOR, &approve(None, None), now())),
            "agent_inactive"
        );
    }
}
