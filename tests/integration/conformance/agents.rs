//! Conformance: sponsors and agents.

use std::sync::Arc;

use sponsor_console::domain::role::Role;
use sponsor_console::protocol::agents::AgentStatus;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::server::store::{
    AuditScope, ExternalSponsor, Idempotency, Registered, SponsorUpsert, Store,
};

use super::{agent, code, new_agent, sponsor, t0};

pub async fn sponsors_are_created_then_updated(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    assert!(alice.active);
    assert_eq!(alice.roles, vec![Role::Sponsor]);
    let again = s
        .upsert_sponsor(
            &SponsorUpsert {
                username: "alice".into(),
                display_name: "Alice".into(),
                roles: vec![Role::Sponsor, Role::OnCall],
                password_hash: "other".into(),
                source: "cli".into(),
            },
            Actor::system(),
            t0(),
        )
        .await
        .expect("updated");
    assert_eq!(again.id, alice.id, "an update keeps the id");
    let by_name = s
        .sponsor_by_username("alice")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(by_name.roles, vec![Role::Sponsor, Role::OnCall]);
    assert_eq!(by_name.display_name, "Alice");
    assert_eq!(by_name.password_hash, "other");
    let by_id = s
        .sponsor_by_id(&alice.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(by_id.username, "alice");
    assert!(
        s.sponsor_by_username("nobody")
            .await
            .expect("read")
            .is_none()
    );
    assert!(s.sponsor_by_id("nobody").await.expect("read").is_none());
    sponsor(s, "bob", &[Role::Sponsor]).await;
    let names: Vec<String> = s
        .list_sponsors()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let actions: Vec<String> = s
        .audit_tail(&AuditScope::All, 10)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        ["sponsor.added", "sponsor.updated", "sponsor.added"]
    );
}

pub async fn registration_reads_back_everywhere(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let bob = sponsor(s, "bob", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &["read:x", "write:y"]).await;
    let b = agent(s, 2, &bob.id, &[]).await;
    let read = s.agent(&a, t0()).await.expect("read").expect("present");
    assert_eq!(read.name, "agent-1");
    assert_eq!(read.capabilities, ["read:x", "write:y"]);
    assert_eq!(read.status, AgentStatus::Active);
    assert_eq!(read.trust_score, 500);
    assert_eq!(read.sponsors.len(), 1);
    assert_eq!(read.sponsors[0].username, "alice");
    assert_eq!(read.model.as_deref(), Some("model"));
    assert!(
        s.agent("did:mesh:none", t0())
            .await
            .expect("read")
            .is_none()
    );
    let credential = s
        .agent_credential(&a)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(credential.public_key, "key-1");
    assert_eq!(credential.status, AgentStatus::Active);
    let mine: Vec<String> = s
        .agents_of_sponsor(&alice.id, t0())
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.did)
        .collect();
    assert_eq!(mine, std::slice::from_ref(&a));
    assert_eq!(s.all_agents(t0()).await.expect("list").len(), 2);
    assert!(s.is_sponsor_of(&alice.id, &a).await.expect("read"));
    assert!(!s.is_sponsor_of(&alice.id, &b).await.expect("read"));
    // Trust decays from the clock when idle: 2 points an hour.
    let later = s
        .agent(&a, t0() + chrono::Duration::hours(10))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(later.trust_score, 480);
    assert!(s.trust_history(&a, 10).await.expect("history").is_empty());
}

pub async fn registration_refuses_duplicates_and_the_limit(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    agent(s, 1, &alice.id, &[]).await;
    let head = s.audit_head().await.expect("head");
    let again = s
        .register_agent(new_agent(1, &alice.id, &[]), None, t0())
        .await;
    assert_eq!(code(again), "store:duplicate");
    let mut limited = new_agent(2, &alice.id, &[]);
    limited.max_agents_per_sponsor = 1;
    assert_eq!(
        code(s.register_agent(limited, None, t0()).await),
        "agent_limit_reached"
    );
    assert_eq!(
        s.audit_head().await.expect("head"),
        head,
        "a refusal writes nothing"
    );
    assert_eq!(s.all_agents(t0()).await.expect("list").len(), 1);
}

pub async fn registration_replays_an_idempotency_key(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let key = |hash: &str| {
        Some(Idempotency {
            principal: alice.id.clone(),
            key: "k-1".into(),
            request_hash: hash.into(),
        })
    };
    let first = s
        .register_agent(new_agent(1, &alice.id, &[]), key("h1"), t0())
        .await
        .expect("created");
    let Registered::Created(created) = first else {
        unreachable!("the first use creates")
    };
    let replay = s
        .register_agent(new_agent(1, &alice.id, &[]), key("h1"), t0())
        .await
        .expect("replayed");
    let Registered::Replayed(stored) = replay else {
        unreachable!("the second use replays")
    };
    assert_eq!(stored.status, 201);
    let body: serde_json::Value = serde_json::from_str(&stored.body).expect("json");
    assert_eq!(body["did"], created.did.as_str());
    let other = s
        .register_agent(new_agent(2, &alice.id, &[]), key("h2"), t0())
        .await;
    assert_eq!(code(other), "idempotency_key_reused");
    assert_eq!(s.all_agents(t0()).await.expect("list").len(), 1);
}

pub async fn external_sponsors_are_made_once_and_follow_newer_statements(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let id = "entra:tid:oid";
    let stated = |roles: Vec<Role>, seconds: i64| ExternalSponsor {
        id: id.into(),
        display_name: "Adele Vance".into(),
        roles,
        source: "entra".into(),
        stated_at: t0() + chrono::Duration::seconds(seconds),
    };
    let head = s.audit_head().await.expect("head");
    assert!(
        s.sync_external_sponsor(&stated(vec![Role::Sponsor], 0), t0())
            .await
            .expect("made")
    );
    let made = s.sponsor_by_id(id).await.expect("read").expect("present");
    assert_eq!(
        (made.username.as_str(), made.roles.clone()),
        (id, vec![Role::Sponsor])
    );
    assert!(
        made.password_hash.is_empty(),
        "no password: it signs in at its issuer"
    );
    // The same again, or an older statement, changes nothing and writes nothing.
    assert!(
        !s.sync_external_sponsor(&stated(vec![Role::Sponsor], 10), t0())
            .await
            .expect("same")
    );
    assert!(
        !s.sync_external_sponsor(&stated(vec![Role::OnCall], -10), t0())
            .await
            .expect("older")
    );
    assert_eq!(
        s.audit_head().await.expect("head"),
        head + 1,
        "one sponsor.added"
    );
    // A newer statement moves the roles, with its event.
    let newer = stated(vec![Role::Sponsor, Role::OnCall], 20);
    assert!(s.sync_external_sponsor(&newer, t0()).await.expect("newer"));
    let moved = s.sponsor_by_id(id).await.expect("read").expect("present");
    assert_eq!(moved.roles, vec![Role::Sponsor, Role::OnCall]);
    assert!(
        !s.sync_external_sponsor(&stated(vec![Role::Sponsor], 15), t0())
            .await
            .expect("stale")
    );
    let events = s
        .audit_page(&AuditScope::All, head, 10)
        .await
        .expect("events");
    let actions: Vec<&str> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, vec!["sponsor.added", "sponsor.updated"]);
    assert!(events.iter().all(|e| e.event.subject == id));
}
