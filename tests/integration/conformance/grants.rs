//! Conformance: grants and the kill switch.

use std::sync::Arc;

use sponsor_console::domain::role::Role;
use sponsor_console::protocol::agents::AgentStatus;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::oauth::SubjectKind;
use sponsor_console::protocol::requests::{Decision, RequestKind, RequestStatus};
use sponsor_console::server::store::{
    AccessTokenRecord, ChildSpec, GrantFilter, Store, SuspendTarget,
};

use super::{agent, at, code, decision, new_request, sponsor, submit};

/// Approves an elevation of `caps` for `did` and returns the grant id.
async fn elevate(s: &dyn Store, id: &str, did: &str, caps: &[&str], approver: &str) -> String {
    submit(s, new_request(id, did, caps, 1), at(0)).await;
    let approver = s
        .sponsor_by_username(approver)
        .await
        .expect("read")
        .expect("present");
    s.decide_request(id, decision(&approver, Decision::Approve, None), at(1))
        .await
        .expect("approved")
        .grant_id
        .expect("a grant")
}

/// Delegates `caps` from `parent` to the existing agent `child`, approved.
async fn delegate(s: &dyn Store, id: &str, parent: &str, child: &str, caps: &[&str]) -> String {
    let mut r = new_request(id, parent, caps, 1);
    r.kind = RequestKind::Delegation;
    r.duration_seconds = 1800;
    r.child = Some(ChildSpec::Existing(child.to_owned()));
    submit(s, r, at(2)).await;
    let alice = s
        .sponsor_by_username("alice")
        .await
        .expect("read")
        .expect("present");
    s.decide_request(id, decision(&alice, Decision::Approve, None), at(3))
        .await
        .expect("approved")
        .grant_id
        .expect("a grant")
}

/// Stores a live token for `subject` carrying `grants`, the way client credentials do.
async fn token(s: &dyn Store, jti: &str, subject: &str, grants: &[String]) {
    let record = AccessTokenRecord {
        jti: jti.into(),
        subject_kind: SubjectKind::Agent,
        subject: subject.into(),
        client_id: subject.into(),
        family_id: None,
        scope: "x".into(),
        issued_at: at(4),
        expires_at: at(900),
        revoked_at: None,
    };
    assert!(
        s.issue_agent_token(&format!("assertion-{jti}"), at(60), &record, grants, at(4))
            .await
            .expect("issued")
    );
}

async fn revoked(s: &dyn Store, jti: &str) -> bool {
    s.access_token(jti)
        .await
        .expect("read")
        .expect("stored")
        .revoked_at
        .is_some()
}

pub async fn grants_list_and_revoke_with_what_was_delegated(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let parent = agent(s, 1, &alice.id, &[]).await;
    let child = agent(s, 2, &alice.id, &[]).await;
    let other = agent(s, 3, &bob.id, &[]).await;
    let g1 = elevate(s, "req_1", &parent, &["write:x"], "alice").await;
    let g2 = delegate(s, "req_2", &parent, &child, &["write:x"]).await;
    let g3 = elevate(s, "req_3", &other, &["write:y"], "bob").await;
    let child_grant = s.grant(&g2, at(5)).await.expect("read").expect("present");
    assert_eq!(child_grant.source_grant_id.as_deref(), Some(g1.as_str()));
    token(s, "t-parent", &parent, std::slice::from_ref(&g1)).await;
    token(s, "t-child", &child, std::slice::from_ref(&g2)).await;
    token(s, "t-other", &other, std::slice::from_ref(&g3)).await;

    let alices = s
        .list_grants(
            &GrantFilter {
                sponsor_id: Some(alice.id.clone()),
                ..GrantFilter::default()
            },
            at(5),
        )
        .await
        .expect("list");
    assert_eq!(alices.len(), 2);
    let childs = s
        .list_grants(
            &GrantFilter {
                agent_did: Some(child.clone()),
                active_only: true,
                ..GrantFilter::default()
            },
            at(5),
        )
        .await
        .expect("list");
    assert_eq!(childs.len(), 1);

    let done = s
        .revoke_grant(&g1, Actor::sponsor(&alice.id), "no longer needed", at(10))
        .await
        .expect("revoked");
    assert_eq!(
        done.grants_revoked,
        [g1.clone(), g2.clone()],
        "with what was delegated"
    );
    assert_eq!(done.tokens_revoked, 2);
    assert!(revoked(s, "t-parent").await && revoked(s, "t-child").await);
    assert!(!revoked(s, "t-other").await, "nothing else");
    let g = s.grant(&g1, at(11)).await.expect("read").expect("present");
    assert!(!g.active);
    assert_eq!(g.revoke_reason.as_deref(), Some("no longer needed"));
    assert_eq!(
        code(s.revoke_grant(&g1, Actor::system(), "again", at(12)).await),
        "already_revoked"
    );
    assert_eq!(
        code(s.revoke_grant(&g3, Actor::system(), "late", at(5000)).await),
        "grant_ended"
    );
    assert_eq!(
        code(
            s.revoke_grant("grt_none", Actor::system(), "x", at(12))
                .await
        ),
        "store:not_found"
    );
    assert!(
        s.list_grants(
            &GrantFilter {
                active_only: true,
                ..GrantFilter::default()
            },
            at(13),
        )
        .await
        .expect("list")
        .iter()
        .all(|g| g.id == g3)
    );
}

pub async fn suspension_reaches_descendants_and_everything_they_hold(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let parent = agent(s, 1, &alice.id, &[]).await;
    let child = agent(s, 2, &alice.id, &[]).await;
    let bystander = agent(s, 3, &alice.id, &[]).await;
    let g1 = elevate(s, "req_1", &parent, &["write:x"], "alice").await;
    let g2 = delegate(s, "req_2", &parent, &child, &["write:x"]).await;
    let g3 = elevate(s, "req_3", &bystander, &["write:z"], "alice").await;
    token(s, "t-parent", &parent, &[]).await;
    token(s, "t-child", &child, std::slice::from_ref(&g2)).await;
    token(s, "t-bystander", &bystander, std::slice::from_ref(&g3)).await;
    submit(s, new_request("req_4", &child, &["send:y"], 1), at(5)).await;
    submit(s, new_request("req_5", &bystander, &["send:y"], 1), at(5)).await;

    let target = SuspendTarget::Agent(parent.clone());
    assert_eq!(
        s.suspension_targets(&target, at(6)).await.expect("reach"),
        [parent.clone(), child.clone()]
    );
    let done = s
        .suspend(target.clone(), "odd traffic", true, Actor::system(), at(6))
        .await
        .expect("suspended");
    assert_eq!(done.agents, [parent.clone(), child.clone()]);
    assert_eq!(done.grants_revoked, [g1, g2]);
    assert_eq!(done.requests_cancelled, ["req_4"]);
    assert_eq!(done.tokens_revoked, 2);
    for did in [&parent, &child] {
        let a = s.agent(did, at(7)).await.expect("read").expect("present");
        assert_eq!(a.status, AgentStatus::Suspended);
        assert!(a.suspension_security);
        assert!(a.trust_score < 300, "trust capped below probationary");
    }
    let by = s
        .agent(&bystander, at(7))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(by.status, AgentStatus::Active, "nothing outside the tree");
    assert!(!revoked(s, "t-bystander").await);
    assert_eq!(
        s.request("req_5")
            .await
            .expect("read")
            .expect("present")
            .status,
        RequestStatus::Pending
    );
    // Again: nothing left to do, and the answer says so.
    let again = s
        .suspend(target.clone(), "again", false, Actor::system(), at(8))
        .await
        .expect("answered");
    assert!(again.agents.is_empty() && again.grants_revoked.is_empty());
    assert_eq!(again.tokens_revoked, 0);
    assert!(
        s.suspension_targets(&target, at(8))
            .await
            .expect("reach")
            .is_empty()
    );
    assert_eq!(
        code(
            s.suspend(
                SuspendTarget::Agent(super::did(99)),
                "x",
                false,
                Actor::system(),
                at(9)
            )
            .await
        ),
        "store:not_found"
    );
}

pub async fn reactivation_and_revocation(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let b = agent(s, 2, &alice.id, &[]).await;
    assert_eq!(
        code(
            s.reactivate(&a, "x", true, 300, Actor::system(), at(1))
                .await
        ),
        "not_suspended"
    );
    s.suspend(
        SuspendTarget::Agent(a.clone()),
        "security",
        true,
        Actor::system(),
        at(2),
    )
    .await
    .expect("suspended");
    assert_eq!(
        code(
            s.reactivate(&a, "x", false, 300, Actor::system(), at(3))
                .await
        ),
        "security_suspension"
    );
    let back = s
        .reactivate(&a, "explained", true, 300, Actor::system(), at(4))
        .await
        .expect("reactivated");
    assert_eq!(back.status, AgentStatus::Active);
    assert!(!back.suspension_security);
    s.suspend(
        SuspendTarget::Agent(b.clone()),
        "routine",
        false,
        Actor::system(),
        at(5),
    )
    .await
    .expect("suspended");
    s.reactivate(&b, "ok", false, 300, Actor::system(), at(6))
        .await
        .expect("a plain suspension is lifted by a sponsor");
    let gone = s
        .revoke_agent(&a, "retired", Actor::system(), at(7))
        .await
        .expect("revoked");
    assert_eq!(gone.agents, std::slice::from_ref(&a));
    assert_eq!(
        code(
            s.reactivate(&a, "x", true, 300, Actor::system(), at(8))
                .await
        ),
        "agent_revoked"
    );
    let again = s
        .revoke_agent(&a, "twice", Actor::system(), at(9))
        .await
        .expect("answered");
    assert!(again.agents.is_empty(), "revoked stays revoked, once");
    assert_eq!(
        code(
            s.reactivate(&super::did(99), "x", true, 300, Actor::system(), at(9))
                .await
        ),
        "store:not_found"
    );
}

pub async fn suspending_a_sponsors_fleet(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let mut mine = vec![
        agent(s, 1, &alice.id, &[]).await,
        agent(s, 2, &alice.id, &[]).await,
    ];
    let theirs = agent(s, 3, &bob.id, &[]).await;
    let target = SuspendTarget::Sponsor(alice.id.clone());
    let mut reach = s.suspension_targets(&target, at(1)).await.expect("reach");
    reach.sort();
    mine.sort();
    assert_eq!(reach, mine);
    let done = s
        .suspend(target, "incident", false, Actor::system(), at(2))
        .await
        .expect("suspended");
    assert_eq!(done.agents.len(), 2);
    let t = s
        .agent(&theirs, at(3))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(t.status, AgentStatus::Active);
    let nobody = s
        .suspend(
            SuspendTarget::Sponsor("no-such-sponsor".into()),
            "x",
            false,
            Actor::system(),
            at(4),
        )
        .await
        .expect("answered");
    assert!(nobody.agents.is_empty());
}

pub async fn grants_that_run_out_are_recorded_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let g = elevate(s, "req_1", &a, &["write:x"], "alice").await;
    assert!(
        s.expire_grants(at(3600)).await.expect("sweep").is_empty(),
        "still live"
    );
    assert_eq!(
        s.expire_grants(at(3601)).await.expect("sweep"),
        std::slice::from_ref(&g)
    );
    assert!(
        s.expire_grants(at(7200)).await.expect("sweep").is_empty(),
        "once"
    );
    let tail = s
        .audit_tail(&sponsor_console::server::store::AuditScope::All, 1)
        .await
        .expect("tail");
    assert_eq!(tail[0].event.action, "grant.expired");
    assert_eq!(tail[0].event.details["grant_id"], g.as_str());
    // A grant revoked early does not also run out.
    let g2 = elevate(s, "req_2", &a, &["write:y"], "alice").await;
    s.revoke_grant(&g2, Actor::system(), "done", at(10))
        .await
        .expect("revoked");
    assert!(s.expire_grants(at(9000)).await.expect("sweep").is_empty());
}
