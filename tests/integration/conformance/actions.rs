//! Conformance: action requests (AGT approvals) arrive once, redeliver, are decided once by
//! who may, expire, and list and page soonest first.

use std::sync::Arc;

use sponsor_console::domain::agt::ActionRequest;
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::actions::ActionStatus;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::requests::Decision;
use sponsor_console::server::store::{
    ActionDecisionInput, ActionFilter, Arrival, AuditScope, NewAction, SponsorRecord, Store,
    StoreError, SuspendTarget,
};

use super::{agent, at, sponsor};

fn request(n: u32, agent_id: &str, expires_in: i64) -> ActionRequest {
    ActionRequest {
        approval_request_id: format!("ar_{n:032x}"),
        policy_decision_id: format!("pd_{n:032x}"),
        action_digest: format!("sha256:{:064x}", n),
        input_digest: format!("sha256:{:064x}", n + 1_000_000),
        agent_id: agent_id.into(),
        subject_id: Some("user:bob@contoso.example".into()),
        operation: "tool.invoke".into(),
        target_resource: Some("ledger://contoso/accounts/ACME-0042 é 漢".into()),
        policy_version: "2026.11.23".into(),
        approval_chain_id: "sponsor-approval".into(),
        approval_chain_version: "1".into(),
        expires_at_text: at(expires_in).to_rfc3339(),
        expires_at: at(expires_in),
    }
}

fn through_integration(request: ActionRequest, agent_did: Option<String>) -> NewAction {
    NewAction {
        request,
        agent_did,
        integration: Some("ledger".into()),
        integration_sponsor: Some("alice".into()),
        actor: Actor::system(),
    }
}

fn decision(by: &SponsorRecord, decision: Decision, policy_roles: &[Role]) -> ActionDecisionInput {
    ActionDecisionInput {
        approver_id: by.id.clone(),
        approver_roles: by.roles.clone(),
        policy_roles: policy_roles.to_vec(),
        decision,
        justification: format!("{} checked it", by.username),
    }
}

fn code(e: StoreError) -> &'static str {
    match e {
        StoreError::Refused(r) => r.code(),
        other => unreachable!("a refusal, not {other:?}"),
    }
}

async fn actions_in_chain(s: &dyn Store) -> Vec<String> {
    s.audit_page(&AuditScope::All, 0, 1000)
        .await
        .expect("chain")
        .into_iter()
        .map(|e| e.event.action)
        .filter(|a| a.starts_with("action."))
        .collect()
}

/// A request is stored once with `action.submitted`; the same body again is a redelivery
/// (recorded), another body under the same id is refused and writes nothing, and so is an
/// integration whose sponsor does not exist or an agent that is not active.
pub async fn actions_arrive_once_and_redeliver(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let first = request(1, "*", 300);
    let Arrival::Created(stored) = s
        .receive_action(through_integration(first.clone(), None), at(0))
        .await
        .expect("stored")
    else {
        unreachable!("a new id is created")
    };
    assert_eq!(stored.status, ActionStatus::Pending);
    assert_eq!(stored.id, first.approval_request_id);
    assert_eq!(stored.integration.as_deref(), Some("ledger"));
    assert_eq!(stored.agent_did, None);
    assert_eq!(stored.target_resource, first.target_resource);
    assert_eq!((stored.created_at, stored.expires_at), (at(0), at(300)));
    assert_eq!(
        s.action(&stored.id).await.expect("read"),
        Some(stored.clone())
    );
    let again = s
        .receive_action(through_integration(first.clone(), None), at(1))
        .await
        .expect("redelivered");
    assert!(matches!(again, Arrival::Redelivered(a) if a == stored));

    let head = s.audit_head().await.expect("head");
    let mut other = first.clone();
    other.input_digest = format!("sha256:{:064x}", 42);
    let refused = s
        .receive_action(through_integration(other, None), at(2))
        .await;
    assert_eq!(code(refused.unwrap_err()), "approval_request_id_reused");
    let mut orphan = through_integration(request(2, "*", 300), None);
    orphan.integration_sponsor = Some("nobody".into());
    assert_eq!(
        code(s.receive_action(orphan, at(2)).await.unwrap_err()),
        "integration_sponsor_unknown"
    );
    let did = agent(s, 3, &alice.id, &[]).await;
    let held = through_integration(request(4, &did, 300), Some(did.clone()));
    s.receive_action(held, at(2)).await.expect("stored");
    s.suspend(
        SuspendTarget::Agent(did.clone()),
        "incident",
        false,
        Actor::sponsor(alice.id.clone()),
        at(2),
    )
    .await
    .expect("suspended");
    let head_after_suspend = s.audit_head().await.expect("head");
    assert!(head_after_suspend > head);
    let inactive = through_integration(request(3, &did, 300), Some(did.clone()));
    assert_eq!(
        code(s.receive_action(inactive, at(3)).await.unwrap_err()),
        "agent_inactive"
    );
    assert_eq!(s.audit_head().await.expect("head"), head_after_suspend);
    // The take-down denied the agent's pending action, as no one.
    let denied = s
        .action(&request(4, "", 0).approval_request_id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(denied.status, ActionStatus::Denied);
    assert_eq!(denied.approver_id, None);
    assert_eq!(
        denied.justification.as_deref(),
        Some("the agent was taken down: incident")
    );
    assert_eq!(
        actions_in_chain(s).await,
        [
            "action.submitted",
            "action.redelivered",
            "action.submitted",
            "action.denied"
        ]
    );
    assert!(
        s.action(&request(2, "*", 0).approval_request_id)
            .await
            .expect("read")
            .is_none()
    );
}

/// Only the agent's sponsors, the integration's sponsor and the roles policy names decide;
/// the first decision stands; a decision at or after the expiry expires the request.
pub async fn actions_are_decided_once_by_who_may(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let sam = sponsor(s, "sam", &[Role::SecurityLead]).await;
    let did = agent(s, 1, &bob.id, &[]).await;
    // Bob sponsors the agent; alice answers for the integration it came through.
    s.receive_action(
        through_integration(request(1, &did, 300), Some(did.clone())),
        at(0),
    )
    .await
    .expect("stored");
    s.receive_action(through_integration(request(2, "*", 300), None), at(0))
        .await
        .expect("stored");
    s.receive_action(through_integration(request(3, "*", 300), None), at(0))
        .await
        .expect("stored");
    let [one, two, three] = [1, 2, 3].map(|n| request(n, "", 0).approval_request_id);

    let forbidden = s
        .decide_action(&two, decision(&bob, Decision::Approve, &[]), at(1))
        .await;
    assert_eq!(code(forbidden.unwrap_err()), "forbidden");
    let approved = s
        .decide_action(&one, decision(&bob, Decision::Approve, &[]), at(1))
        .await
        .expect("bob sponsors the agent");
    assert_eq!(approved.status, ActionStatus::Approved);
    assert_eq!(approved.approver_id.as_deref(), Some(bob.id.as_str()));
    assert_eq!(approved.approver_username.as_deref(), Some("bob"));
    assert_eq!(approved.justification.as_deref(), Some("bob checked it"));
    assert_eq!(approved.decided_at, Some(at(1)));
    assert_eq!(approved.agent_name.as_deref(), Some("agent-1"));
    let twice = s
        .decide_action(&one, decision(&alice, Decision::Deny, &[]), at(2))
        .await;
    assert_eq!(code(twice.unwrap_err()), "already_decided");
    let by_role = s
        .decide_action(
            &two,
            decision(&sam, Decision::Deny, &[Role::SecurityLead]),
            at(2),
        )
        .await
        .expect("policy names sam's role");
    assert_eq!(by_role.status, ActionStatus::Denied);

    let late = s
        .decide_action(&three, decision(&alice, Decision::Approve, &[]), at(300))
        .await;
    assert_eq!(code(late.unwrap_err()), "expired");
    let expired = s.action(&three).await.expect("read").expect("present");
    assert_eq!(expired.status, ActionStatus::Expired);
    assert_eq!(
        actions_in_chain(s).await,
        [
            "action.submitted",
            "action.submitted",
            "action.submitted",
            "action.approved",
            "action.denied",
            "action.expired",
        ]
    );
    // A refused decision wrote nothing: the approved action is as it was.
    assert_eq!(s.action(&one).await.expect("read"), Some(approved));
}

/// Pending actions list soonest to expire first, page by page, counted; a sponsor sees the
/// actions of their agents and their integrations; the sweep expires what is due, once.
pub async fn actions_list_page_and_expire(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let did = agent(s, 1, &bob.id, &[]).await;
    for n in 1..=5u32 {
        s.receive_action(
            through_integration(request(n, "*", 600 - i64::from(n)), None),
            at(0),
        )
        .await
        .expect("stored");
    }
    s.receive_action(
        through_integration(request(6, &did, 50), Some(did.clone())),
        at(0),
    )
    .await
    .expect("stored");
    let pending = |sponsor_id: Option<&str>, limit, after| ActionFilter {
        sponsor_id: sponsor_id.map(str::to_owned),
        status: Some(ActionStatus::Pending),
        limit,
        after,
    };
    let first = s.list_actions(&pending(None, 4, None)).await.expect("page");
    let ids = |list: &[sponsor_console::protocol::actions::Action]| {
        list.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
    };
    let id = |n: u32| request(n, "", 0).approval_request_id;
    assert_eq!(ids(&first), [id(6), id(5), id(4), id(3)]);
    let last = first.last().expect("a last row");
    let rest = s
        .list_actions(&pending(None, 4, Some((last.expires_at, last.id.clone()))))
        .await
        .expect("page");
    assert_eq!(ids(&rest), [id(2), id(1)]);
    assert_eq!(
        s.count_actions(&pending(None, 1, None))
            .await
            .expect("count"),
        6
    );
    // Bob sponsors agent 1; alice answers for the integration of every one of them.
    let bobs = s
        .list_actions(&pending(Some(&bob.id), 100, None))
        .await
        .expect("bob's");
    assert_eq!(ids(&bobs), [id(6)]);
    assert_eq!(
        s.count_actions(&pending(Some(&alice.id), 1, None))
            .await
            .expect("count"),
        6
    );
    assert!(s.sponsors_action(&bob.id, &bobs[0]).await.expect("read"));
    assert!(!s.sponsors_action(&bob.id, &first[1]).await.expect("read"));

    assert_eq!(
        s.expire_actions(at(49)).await.expect("sweep"),
        Vec::<String>::new()
    );
    assert_eq!(s.expire_actions(at(50)).await.expect("sweep"), [id(6)]);
    assert_eq!(
        s.expire_actions(at(60)).await.expect("sweep"),
        Vec::<String>::new()
    );
    let held = s.expire_action(&id(1), at(100)).await.expect("read");
    assert_eq!(held.status, ActionStatus::Pending, "not due yet");
    let due = s.expire_action(&id(1), at(599)).await.expect("expired");
    assert_eq!(due.status, ActionStatus::Expired);
    assert_eq!(
        s.count_actions(&pending(None, 1, None))
            .await
            .expect("count"),
        4
    );
    let expired = s
        .list_actions(&ActionFilter {
            status: Some(ActionStatus::Expired),
            limit: 10,
            ..ActionFilter::default()
        })
        .await
        .expect("expired");
    assert_eq!(expired.len(), 2);
}
