//! Conformance: the audit chain.

use std::sync::Arc;

use sponsor_console::domain::audit::{ChainVerifier, GENESIS_HASH};
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::audit::{Actor, ActorKind, AuditAction, action};
use sponsor_console::server::store::{AuditScope, NewAuditEvent, Store};

use super::{agent, at, sponsor};

pub async fn the_chain_links_pages_and_scopes(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert_eq!(s.audit_head().await.expect("head"), 0);
    let mut changes = s.changes();
    changes.borrow_and_update();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    assert!(
        changes.has_changed().expect("open"),
        "a commit wakes readers"
    );
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    agent(s, 2, &bob.id, &[]).await;
    let seq = s
        .append_audit(
            NewAuditEvent::new(
                Actor::agent(a.clone()),
                a.clone(),
                AuditAction::RequestCancelled(action::Cancelled {
                    request_id: "req_1".into(),
                    reason: "test".into(),
                }),
            ),
            at(5),
        )
        .await
        .expect("appended");
    assert_eq!(seq, 5);
    assert_eq!(s.audit_head().await.expect("head"), 5);

    let all = s.audit_page(&AuditScope::All, 0, 100).await.expect("page");
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].event.prev_hash, GENESIS_HASH);
    let mut verifier = ChainVerifier::default();
    for e in &all {
        verifier.push(e).expect("the chain verifies");
    }
    let last = &all[4];
    assert_eq!(last.event.actor.kind, ActorKind::Agent);
    assert_eq!(last.event.at, at(5));
    assert!(matches!(
        last.action().expect("typed"),
        AuditAction::RequestCancelled(_)
    ));
    let page = s.audit_page(&AuditScope::All, 2, 2).await.expect("page");
    assert_eq!(page.iter().map(|e| e.event.seq).collect::<Vec<_>>(), [3, 4]);
    let tail = s.audit_tail(&AuditScope::All, 2).await.expect("tail");
    assert_eq!(
        tail.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
        [4, 5],
        "the newest, oldest first"
    );
    // A sponsor sees what they did and what concerns their agents, not bob's.
    let scoped = s
        .audit_page(&AuditScope::Sponsor(alice.id.clone()), 0, 100)
        .await
        .expect("page");
    let subjects: Vec<&str> = scoped.iter().map(|e| e.event.subject.as_str()).collect();
    assert_eq!(subjects, [alice.id.as_str(), a.as_str(), a.as_str()]);
    let scoped_tail = s
        .audit_tail(&AuditScope::Sponsor(bob.id.clone()), 10)
        .await
        .expect("tail");
    assert_eq!(scoped_tail.len(), 2);
}

pub async fn a_fresh_store_is_ready_for_writes(store: Arc<dyn Store>) {
    store.ready(at(0)).await.expect("ready");
    store.ready(at(1)).await.expect("ready again");
    assert_eq!(
        store.audit_head().await.expect("head"),
        0,
        "a probe is not an event"
    );
}

/// The tables agree with the chain after a story (the state check finds nothing), and the
/// revocation index's starting point holds what the story revoked.
pub async fn the_tables_agree_with_the_chain_and_revocations_are_read_back(store: Arc<dyn Store>) {
    use sponsor_console::domain::record::Replay;
    use sponsor_console::protocol::agents::AgentStatus;
    use sponsor_console::protocol::requests::Decision;
    use sponsor_console::server::store::SuspendTarget;

    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &["read:x"]).await;
    let b = agent(s, 2, &alice.id, &[]).await;
    super::submit(s, super::new_request("req_1", &a, &["write:x"], 1), at(1)).await;
    s.decide_request(
        "req_1",
        super::decision(&alice, Decision::Approve, None),
        at(2),
    )
    .await
    .expect("approved");
    s.suspend(
        SuspendTarget::Agent(a.clone()),
        "alert",
        false,
        Actor::system(),
        at(3),
    )
    .await
    .expect("suspended");

    let (head, tables) = s.state_snapshot().await.expect("snapshot");
    assert_eq!(head, s.audit_head().await.expect("head"));
    let mut replay = Replay::default();
    for event in s.audit_page(&AuditScope::All, 0, 1000).await.expect("page") {
        replay.apply(&event);
    }
    let (differences, note) = replay.compare(&tables);
    assert!(differences.is_empty(), "{differences:?}");
    assert_eq!(note, None);
    assert_eq!(tables.agents[&a].status, AgentStatus::Suspended);
    assert_eq!(tables.agents[&b].status, AgentStatus::Active);
    assert!(
        tables.grants.values().all(|g| g.revoked),
        "the grant went with it"
    );

    let revocations = s.revocation_snapshot(at(4)).await.expect("snapshot");
    assert_eq!(revocations.head, head);
    assert_eq!(
        revocations.inactive,
        vec![(a.clone(), AgentStatus::Suspended)]
    );
    assert!(
        revocations
            .sponsors
            .iter()
            .any(|(id, roles)| *id == alice.id && roles == &["sponsor".to_owned()])
    );
}
