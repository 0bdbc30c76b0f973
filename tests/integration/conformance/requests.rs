//! Conformance: requests and decisions.

use std::sync::Arc;

use sponsor_console::domain::role::Role;
use sponsor_console::protocol::agents::AgentStatus;
use sponsor_console::protocol::requests::{Decision, RequestKind, RequestStatus};
use sponsor_console::server::store::{
    ActiveGrant, ChildSpec, Idempotency, NewChild, NewRequest, RequestFilter, Store, Submitted,
};

use super::{agent, at, code, decision, new_request, sponsor, submit, trust_rules};

pub async fn submissions_list_and_page_soonest_first(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let b = agent(s, 2, &bob.id, &[]).await;
    for (i, expires) in [(1, 900), (2, 300), (3, 600)] {
        let mut r = new_request(&format!("req_{i:032}"), &a, &["write:x"], 1);
        r.expires_at = at(expires);
        submit(s, r, at(i)).await;
    }
    submit(
        s,
        new_request(&format!("req_{:032}", 9), &b, &["write:x"], 1),
        at(4),
    )
    .await;
    let read = s
        .request(&format!("req_{:032}", 1))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read.status, RequestStatus::Pending);
    assert_eq!(read.agent_name, "agent-1");
    assert_eq!(read.policy.approvals_required, 1);
    assert!(s.request("req_missing").await.expect("read").is_none());

    let pending = |sponsor_id: Option<String>, limit, after| RequestFilter {
        sponsor_id,
        agent_did: None,
        status: Some(RequestStatus::Pending),
        limit,
        after,
    };
    let ids = |list: Vec<sponsor_console::protocol::requests::Request>| {
        list.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let mine = s
        .list_requests(&pending(Some(alice.id.clone()), 10, None))
        .await
        .expect("list");
    assert_eq!(
        ids(mine),
        [2, 3, 1].map(|i| format!("req_{i:032}")),
        "soonest to expire first"
    );
    // The count ignores the page: a sponsor's, and everyone's.
    let count = |f: RequestFilter| async move { s.count_requests(&f).await.expect("count") };
    assert_eq!(count(pending(Some(alice.id.clone()), 1, None)).await, 3);
    assert_eq!(count(pending(None, 1, None)).await, 4);
    let first = s
        .list_requests(&pending(None, 2, None))
        .await
        .expect("list");
    let last = first.last().expect("a page").clone();
    let rest = s
        .list_requests(&pending(None, 10, Some((last.expires_at, last.id.clone()))))
        .await
        .expect("list");
    assert_eq!(first.len() + rest.len(), 4, "pages neither skip nor repeat");
    assert!(rest.iter().all(|r| first.iter().all(|f| f.id != r.id)));
    let by_agent = s
        .list_requests(&RequestFilter {
            agent_did: Some(b.clone()),
            limit: 10,
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(by_agent), [format!("req_{:032}", 9)]);
    let none = s
        .list_requests(&RequestFilter {
            status: Some(RequestStatus::Approved),
            limit: 10,
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert!(none.is_empty());
}

pub async fn submissions_replay_an_idempotency_key(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let key = |hash: &str| {
        Some(Idempotency {
            principal: a.clone(),
            key: "retry-1".into(),
            request_hash: hash.into(),
        })
    };
    let first = s
        .submit_request(new_request("req_1", &a, &["write:x"], 1), key("h"), at(0))
        .await
        .expect("created");
    assert!(matches!(first, Submitted::Created(_)));
    let again = s
        .submit_request(new_request("req_2", &a, &["write:x"], 1), key("h"), at(1))
        .await
        .expect("replayed");
    let Submitted::Replayed(stored) = again else {
        unreachable!("the same key and body replay")
    };
    let body: serde_json::Value = serde_json::from_str(&stored.body).expect("json");
    assert_eq!(body["id"], "req_1");
    assert_eq!(
        code(
            s.submit_request(
                new_request("req_3", &a, &["write:x"], 1),
                key("other"),
                at(2)
            )
            .await
        ),
        "idempotency_key_reused"
    );
    let all = s
        .list_requests(&RequestFilter {
            limit: 10,
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "stored once");
}

pub async fn approval_creates_a_grant_and_moves_trust(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &["read:x"]).await;
    submit(
        s,
        new_request("req_1", &a, &["write:x", "send:y"], 1),
        at(0),
    )
    .await;
    let mut input = decision(&alice, Decision::Approve, Some(1800));
    input.choice.capabilities = Some(vec!["write:x".into()]);
    let approved = s
        .decide_request("req_1", input, at(10))
        .await
        .expect("approved");
    assert_eq!(approved.status, RequestStatus::Approved);
    assert_eq!(approved.decided_at, Some(at(10)));
    assert_eq!(approved.approvals.len(), 1);
    assert_eq!(approved.approvals[0].duration_seconds, Some(1800));
    let grant_id = approved.grant_id.expect("a grant");
    let grants = s.active_grants(&a, at(11)).await.expect("grants");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].id, grant_id);
    assert_eq!(grants[0].capabilities, ["write:x"], "narrowed as approved");
    assert_eq!(grants[0].not_before, at(10), "the clock starts at approval");
    assert_eq!(grants[0].not_after, at(1810));
    assert!(
        s.active_grants(&a, at(1810))
            .await
            .expect("grants")
            .is_empty()
    );
    // What the token endpoint reads, in one go: the credential and the same grants.
    let subject = s
        .token_subject(&a, at(11))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(subject.credential.did, a);
    assert_eq!(subject.credential.capabilities, ["read:x"]);
    assert_eq!(subject.credential.status, AgentStatus::Active);
    assert_eq!(
        subject.grants,
        [ActiveGrant {
            id: grant_id.clone(),
            capabilities: vec!["write:x".into()],
            not_after: at(1810),
        }]
    );
    let later = s.token_subject(&a, at(1810)).await.expect("read");
    assert!(later.expect("present").grants.is_empty());
    assert!(
        s.token_subject("did:mesh:00000000000000000000000000000000", at(11))
            .await
            .expect("read")
            .is_none()
    );
    let agent = s.agent(&a, at(11)).await.expect("read").expect("present");
    assert_eq!(agent.trust_score, 500 + trust_rules().approved);
    let history = s.trust_history(&a, 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reason, "request_approved");
}

pub async fn decisions_follow_the_rules(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor, Role::OnCall]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let mut behalf = new_request("req_1", &a, &["write:x"], 1);
    behalf.on_behalf_of = Some("alice".into());
    submit(s, behalf, at(0)).await;
    let head = s.audit_head().await.expect("head");
    assert_eq!(
        code(
            s.decide_request("req_1", decision(&bob, Decision::Approve, None), at(1))
                .await
        ),
        "forbidden",
        "neither a sponsor of the agent nor a role policy names"
    );
    assert_eq!(
        code(
            s.decide_request("req_1", decision(&alice, Decision::Approve, None), at(1))
                .await
        ),
        "self_approval"
    );
    assert_eq!(
        s.audit_head().await.expect("head"),
        head,
        "refusals write nothing"
    );
    submit(s, new_request("req_2", &a, &["write:x"], 1), at(0)).await;
    assert_eq!(
        code(
            s.decide_request(
                "req_2",
                decision(&alice, Decision::Approve, Some(3601)),
                at(1)
            )
            .await
        ),
        "duration_exceeds_limit"
    );
    let mut blank = decision(&alice, Decision::Deny, None);
    blank.choice.justification = " ".into();
    assert_eq!(
        code(s.decide_request("req_2", blank, at(1)).await),
        "justification_required"
    );
    let denied = s
        .decide_request("req_2", decision(&alice, Decision::Deny, None), at(2))
        .await
        .expect("denied");
    assert_eq!(denied.status, RequestStatus::Denied);
    assert_eq!(
        code(
            s.decide_request("req_2", decision(&alice, Decision::Approve, None), at(3))
                .await
        ),
        "already_decided"
    );
    assert_eq!(
        code(
            s.decide_request("req_9", decision(&alice, Decision::Deny, None), at(3))
                .await
        ),
        "store:not_found"
    );
    // Deciding after the TTL expires the request (a deny) and says so.
    submit(s, new_request("req_3", &a, &["write:x"], 1), at(0)).await;
    assert_eq!(
        code(
            s.decide_request("req_3", decision(&alice, Decision::Approve, None), at(3600))
                .await
        ),
        "expired"
    );
    let expired = s.request("req_3").await.expect("read").expect("present");
    assert_eq!(expired.status, RequestStatus::Expired);
    let agent = s.agent(&a, at(3600)).await.expect("read").expect("present");
    assert_eq!(
        agent.trust_score,
        500 + trust_rules().denied + trust_rules().expired
    );
}

pub async fn two_approvals_then_a_grant(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let sam = sponsor(s, "sam", &[Role::SecurityLead]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    submit(s, new_request("req_1", &a, &["delete:x"], 2), at(0)).await;
    let first = s
        .decide_request(
            "req_1",
            decision(&alice, Decision::Approve, Some(1800)),
            at(1),
        )
        .await
        .expect("recorded");
    assert_eq!(first.status, RequestStatus::Pending);
    assert!(first.grant_id.is_none());
    assert_eq!(
        code(
            s.decide_request("req_1", decision(&alice, Decision::Approve, None), at(2))
                .await
        ),
        "already_decided_by_you"
    );
    let second = s
        .decide_request("req_1", decision(&sam, Decision::Approve, Some(900)), at(3))
        .await
        .expect("approved");
    assert_eq!(second.status, RequestStatus::Approved);
    let grant = s
        .grant(second.grant_id.as_deref().expect("a grant"), at(4))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(grant.not_after, at(903), "the shorter of the two windows");
    let actions: Vec<String> = s
        .audit_tail(&sponsor_console::server::store::AuditScope::All, 2)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(actions, ["request.approval_recorded", "request.approved"]);
}

pub async fn concurrent_decisions_on_one_request_one_wins(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let sam = sponsor(s, "sam", &[Role::SecurityLead]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    for round in 0..10 {
        let id = format!("req_{round}");
        // Rounds far enough apart that approval fatigue never counts earlier ones.
        let t = round * 1000;
        let mut r = new_request(&id, &a, &["write:x"], 1);
        r.expires_at = at(t + 3600);
        submit(s, r, at(t)).await;
        let (x, y) = tokio::join!(
            store.decide_request(&id, decision(&alice, Decision::Approve, None), at(t + 1)),
            store.decide_request(&id, decision(&sam, Decision::Deny, None), at(t + 1)),
        );
        let wins = [x.is_ok(), y.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: exactly one decision lands");
        let loser = if x.is_ok() { code(y) } else { code(x) };
        assert_eq!(loser, "already_decided", "round {round}");
        let r = s.request(&id).await.expect("read").expect("present");
        assert_eq!(r.approvals.len(), 1, "round {round}: one decision recorded");
    }
}

pub async fn cancel_expire_and_fatigue(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let b = agent(s, 2, &alice.id, &[]).await;
    submit(s, new_request("req_1", &a, &["write:x"], 1), at(0)).await;
    assert_eq!(
        code(s.cancel_request("req_1", &b, "not mine", at(1)).await),
        "not_found"
    );
    let cancelled = s
        .cancel_request("req_1", &a, "done", at(1))
        .await
        .expect("cancelled");
    assert_eq!(cancelled.status, RequestStatus::Cancelled);
    assert_eq!(cancelled.reason.as_deref(), Some("done"));
    assert_eq!(
        code(s.cancel_request("req_1", &a, "again", at(2)).await),
        "cancelled"
    );

    let mut due = new_request("req_2", &b, &["write:x"], 1);
    due.expires_at = at(100);
    submit(s, due, at(0)).await;
    assert!(
        s.expire_requests(at(99), -5)
            .await
            .expect("sweep")
            .is_empty()
    );
    assert_eq!(
        s.expire_requests(at(100), -5).await.expect("sweep"),
        ["req_2"]
    );
    assert!(
        s.expire_requests(at(101), -5)
            .await
            .expect("sweep")
            .is_empty()
    );
    let r = s.request("req_2").await.expect("read").expect("present");
    assert_eq!(r.status, RequestStatus::Expired);

    // The sixth request within the window is denied at once.
    for i in 3..=8 {
        submit(
            s,
            new_request(&format!("req_{i}"), &a, &["write:x"], 1),
            at(1000 + i),
        )
        .await;
    }
    let sixth = s.request("req_8").await.expect("read").expect("present");
    assert_eq!(sixth.status, RequestStatus::Denied);
    assert_eq!(sixth.reason.as_deref(), Some("approval_fatigue"));
    let fifth = s.request("req_7").await.expect("read").expect("present");
    assert_eq!(fifth.status, RequestStatus::Pending);
}

pub async fn delegation_registers_the_child_and_grants_it(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let parent = agent(s, 1, &alice.id, &["read:ledger", "write:ledger"]).await;
    let child_did = super::did(2);
    let mut request = new_request("req_1", &parent, &["read:ledger"], 1);
    request.kind = RequestKind::Delegation;
    request.duration_seconds = 1200;
    request.child = Some(ChildSpec::New(NewChild {
        did: child_did.clone(),
        name: "helper".into(),
        public_key: "key-2".into(),
        model: None,
        runtime: None,
        trust_score: 400,
        max_agents_per_sponsor: 100,
    }));
    let submitted = submit(s, request, at(0)).await;
    assert_eq!(submitted.child_did.as_deref(), Some(child_did.as_str()));
    let child = s
        .agent(&child_did, at(0))
        .await
        .expect("read")
        .expect("registered");
    assert!(child.capabilities.is_empty());
    assert_eq!(child.trust_score, 400);
    assert!(s.is_sponsor_of(&alice.id, &child_did).await.expect("read"));
    assert_eq!(child.status, AgentStatus::Proposed, "nobody until approved");
    assert_eq!(
        child.parent_did.as_deref(),
        Some(parent.as_str()),
        "linked from the start"
    );
    assert_eq!(child.delegation_depth, 1);
    s.decide_request("req_1", decision(&alice, Decision::Approve, None), at(10))
        .await
        .expect("approved");
    let child = s
        .agent(&child_did, at(11))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(
        child.status,
        AgentStatus::Active,
        "the approval activates it"
    );
    assert_eq!(child.parent_did.as_deref(), Some(parent.as_str()));
    assert_eq!(child.delegation_depth, 1);
    let grants = s.active_grants(&child_did, at(11)).await.expect("grants");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].capabilities, ["read:ledger"]);
    assert_eq!(grants[0].not_after, at(1210));
    assert!(
        grants[0].source_grant_id.is_none(),
        "from the parent's standing set"
    );

    // A second delegation to the same child ends when the child is suspended.
    let mut again = new_request("req_2", &parent, &["write:ledger"], 1);
    again.kind = RequestKind::Delegation;
    again.child = Some(ChildSpec::Existing(child_did.clone()));
    submit(s, again, at(20)).await;
    s.suspend(
        sponsor_console::server::store::SuspendTarget::Agent(child_did.clone()),
        "check",
        false,
        sponsor_console::protocol::audit::Actor::system(),
        at(21),
    )
    .await
    .expect("suspended");
    let r = s.request("req_2").await.expect("read").expect("present");
    assert_eq!(
        r.status,
        RequestStatus::Cancelled,
        "delegating to a suspended child ends"
    );
    let child = s
        .agent(&child_did, at(22))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(child.status, AgentStatus::Suspended);
    // A new child whose key is already registered.
    let mut dup = new_request("req_3", &parent, &["read:ledger"], 1);
    dup.kind = RequestKind::Delegation;
    dup.child = Some(ChildSpec::New(NewChild {
        did: child_did.clone(),
        name: "twin".into(),
        public_key: "key-2".into(),
        model: None,
        runtime: None,
        trust_score: 400,
        max_agents_per_sponsor: 100,
    }));
    assert_eq!(
        code(s.submit_request(dup, None, at(30)).await),
        "store:duplicate"
    );
}

/// A delegation request for a new child, from `parent`, with the child's number.
fn proposing(id: &str, parent: &str, child: u32) -> NewRequest {
    let mut request = new_request(id, parent, &["read:ledger"], 1);
    request.kind = RequestKind::Delegation;
    request.child = Some(ChildSpec::New(NewChild {
        did: super::did(child),
        name: format!("helper {child}"),
        public_key: format!("key-{child}"),
        model: None,
        runtime: None,
        trust_score: 400,
        max_agents_per_sponsor: 100,
    }));
    request
}

pub async fn a_proposed_child_is_retired_unless_approved(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let parent = agent(s, 1, &alice.id, &["read:ledger"]).await;
    submit(s, proposing("req_1", &parent, 2), at(0)).await;
    submit(s, proposing("req_2", &parent, 3), at(0)).await;
    let mut due = proposing("req_3", &parent, 4);
    due.expires_at = at(100);
    submit(s, due, at(0)).await;
    submit(s, proposing("req_4", &parent, 5), at(0)).await;
    for n in 2..=5 {
        let child = s.agent(&super::did(n), at(1)).await.expect("read");
        assert_eq!(child.expect("proposed").status, AgentStatus::Proposed);
    }

    s.decide_request("req_1", decision(&alice, Decision::Deny, None), at(10))
        .await
        .expect("denied");
    s.cancel_request("req_2", &parent, "not needed", at(10))
        .await
        .expect("cancelled");
    assert_eq!(
        s.expire_requests(at(100), -5).await.expect("sweep"),
        ["req_3"]
    );
    s.decide_request("req_4", decision(&alice, Decision::Approve, None), at(10))
        .await
        .expect("approved");
    let status = |n| async move {
        let child = s.agent(&super::did(n), at(200)).await.expect("read");
        child.expect("still on record").status
    };
    assert_eq!(status(2).await, AgentStatus::Revoked, "denied");
    assert_eq!(status(3).await, AgentStatus::Revoked, "cancelled");
    assert_eq!(status(4).await, AgentStatus::Revoked, "expired");
    assert_eq!(status(5).await, AgentStatus::Active, "approved");
}
