//! The kill switch: suspension mid-grant, cascade to delegated children, suspending all of a
//! sponsor's agents, reactivation rules, permanent revocation.

use reqwest::StatusCode;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::agents::AgentStatus;
use sponsor_console::protocol::requests::{
    DelegationBody, NewChild, RequestStatus, SuspendAllBody,
};

use crate::common::{TestServer, approve, code_of, elevation};

#[tokio::test]
async fn suspension_mid_grant_ends_everything_at_once() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "rogue", &["read:crm:*"]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    let pending = bot
        .request_elevation(&elevation(&["send:email"], 3600), None)
        .await
        .unwrap();
    // A token issued a second before the suspension.
    let token = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    t.advance(1);

    let otto = t.as_user("otto").await; // on-call may suspend any agent
    let done = otto
        .suspend(&agent.did, "exfiltration alert #88", true)
        .await
        .unwrap();
    assert_eq!(done.agents, vec![agent.did.clone()]);
    assert_eq!(done.grants_revoked.len(), 1);
    assert_eq!(done.requests_cancelled, vec![pending.id.clone()]);
    assert_eq!(
        done.tokens_revoked, 2,
        "the agent's own token and the one a second ago"
    );

    let sam = t.as_user("sam").await;
    assert!(!sam.introspect(&token.access_token).await.unwrap().active);
    let refused = t.client.client_credentials(&t.assertion(&key), None).await;
    assert_eq!(code_of(refused), "invalid_client");
    let seen = alice.agent(&agent.did).await.unwrap();
    assert_eq!(seen.status, AgentStatus::Suspended);
    assert_eq!(
        seen.status_reason.as_deref(),
        Some("exfiltration alert #88")
    );
    assert!(seen.suspension_security);
    assert!(seen.trust_score <= 299);
    assert_eq!(
        alice.get_request(&pending.id).await.unwrap().status,
        RequestStatus::Cancelled
    );
    // Suspending again reports that nothing changed: never "killed" when nothing was.
    let again = otto.suspend(&agent.did, "again", false).await.unwrap();
    assert!(
        again.agents.is_empty() && again.grants_revoked.is_empty() && again.tokens_revoked == 0
    );
    // A reason is required.
    assert_eq!(
        code_of(otto.suspend(&agent.did, " ", false).await),
        "reason_required"
    );
    // Someone else's sponsor cannot suspend it (and cannot tell it exists).
    let bob = t.as_user("bob").await;
    assert_eq!(
        bob.suspend(&agent.did, "x", false)
            .await
            .unwrap_err()
            .status(),
        Some(StatusCode::NOT_FOUND)
    );
    assert!(sam.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn suspension_cascades_to_delegated_children() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (parent_key, parent) = t.agent(&alice, "planner", &["read:web:*"]).await;
    let child_key = AgentKey::generate();
    let bot = t.as_agent(&parent_key).await;
    let asked = bot
        .request_delegation(
            &DelegationBody {
                child_did: None,
                new_child: Some(NewChild {
                    public_key: child_key.public_key(),
                    name: "crawler".into(),
                    model: None,
                    runtime: None,
                }),
                capabilities: vec!["read:web:docs".into()],
                duration_seconds: 1800,
                justification: "parallel crawl".into(),
                ticket: None,
                context: None,
            },
            None,
        )
        .await
        .unwrap();
    alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    let child_token = t
        .client
        .client_credentials(&t.assertion(&child_key), None)
        .await
        .unwrap();

    let done = alice
        .suspend(&parent.did, "planner misbehaving", false)
        .await
        .unwrap();
    let mut expected = vec![parent.did.clone(), child_key.did()];
    expected.sort();
    let mut got = done.agents.clone();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(done.grants_revoked.len(), 1, "the child's delegated grant");
    let sam = t.as_user("sam").await;
    assert!(
        !sam.introspect(&child_token.access_token)
            .await
            .unwrap()
            .active
    );
    assert_eq!(
        alice.agent(&child_key.did()).await.unwrap().status,
        AgentStatus::Suspended
    );

    // Reactivation is explicit and per agent: the child stays suspended.
    let back = alice
        .reactivate(&parent.did, "investigated, false alarm")
        .await
        .unwrap();
    assert_eq!(back.status, AgentStatus::Active);
    assert_eq!(
        alice.agent(&child_key.did()).await.unwrap().status,
        AgentStatus::Suspended
    );
}

#[tokio::test]
async fn reactivation_rules_and_revocation() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let otto = t.as_user("otto").await;
    let sam = t.as_user("sam").await;
    let (_, agent) = t.agent(&alice, "bot", &[]).await;

    // A security suspension is lifted only by a security lead.
    otto.suspend(&agent.did, "credential leak", true)
        .await
        .unwrap();
    let err = alice
        .reactivate(&agent.did, "looks fine to me")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(StatusCode::FORBIDDEN), Some("security_suspension"))
    );
    assert_eq!(
        sam.reactivate(&agent.did, "keys rotated")
            .await
            .unwrap()
            .status,
        AgentStatus::Active
    );
    assert_eq!(
        code_of(alice.reactivate(&agent.did, "again").await),
        "not_suspended"
    );

    // An ordinary suspension: the sponsor lifts it.
    alice
        .suspend(&agent.did, "pause over the weekend", false)
        .await
        .unwrap();
    assert_eq!(
        alice.reactivate(&agent.did, "monday").await.unwrap().status,
        AgentStatus::Active
    );

    // Revocation is permanent.
    let done = alice.revoke_agent(&agent.did, "retired").await.unwrap();
    assert_eq!(done.agents, vec![agent.did.clone()]);
    assert_eq!(
        alice.agent(&agent.did).await.unwrap().status,
        AgentStatus::Revoked
    );
    assert_eq!(
        code_of(sam.reactivate(&agent.did, "undo").await),
        "agent_revoked"
    );
}

#[tokio::test]
async fn suspend_all_of_a_sponsor_with_the_count_typed() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let bob = t.as_user("bob").await;
    for i in 0..3 {
        t.agent(&alice, &format!("a{i}"), &[]).await;
    }
    let (_, bobs) = t.agent(&bob, "b", &[]).await;
    let wrong = alice
        .suspend_all(&SuspendAllBody {
            reason: "incident 42".into(),
            security: false,
            sponsor_id: None,
            expected_count: Some(2),
        })
        .await;
    assert_eq!(code_of(wrong), "count_mismatch");
    assert!(
        alice
            .agents(false)
            .await
            .unwrap()
            .iter()
            .all(|a| a.status == AgentStatus::Active)
    );
    let done = alice
        .suspend_all(&SuspendAllBody {
            reason: "incident 42".into(),
            security: false,
            sponsor_id: None,
            expected_count: Some(3),
        })
        .await
        .unwrap();
    assert_eq!(done.agents.len(), 3);
    assert_eq!(
        bob.agent(&bobs.did).await.unwrap().status,
        AgentStatus::Active,
        "bob's agents untouched"
    );
    // Only on-call (or leads) may stop another sponsor's agents.
    let me = bob.me().await.unwrap();
    let body = SuspendAllBody {
        reason: "x".into(),
        security: false,
        sponsor_id: Some(me.sub.clone()),
        expected_count: None,
    };
    assert_eq!(code_of(alice.suspend_all(&body).await), "forbidden");
    let otto = t.as_user("otto").await;
    assert_eq!(
        otto.suspend_all(&body).await.unwrap().agents,
        vec![bobs.did]
    );
}

/// A submission racing a suspension never leaves a pending request on a suspended agent: the
/// status is read inside the submission's own write transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_wins_every_race_with_a_submission() {
    use futures::StreamExt;

    let mut s = crate::common::settings();
    let mut policy = sponsor_console::domain::policy::Policy::shipped().expect("policy");
    policy.requests.fatigue_limit = 1_000_000;
    s.policy = Some(policy);
    s.limits.max_agents_per_sponsor = 100_000;
    let t = std::sync::Arc::new(TestServer::start_with(s).await);
    let alice = t.as_user("alice").await;
    let otto = t.as_user("otto").await;
    const TRIALS: usize = 1_000;
    let outcomes: Vec<(bool, bool)> = futures::stream::iter(0..TRIALS)
        .map(|i| {
            let (t, alice, otto) = (t.clone(), alice.clone(), otto.clone());
            async move {
                let (key, agent) = t.agent(&alice, &format!("racer-{i}"), &[]).await;
                let bot = t.as_agent(&key).await;
                let body = elevation(&["write:crm"], 600);
                let (submitted, suspended) = tokio::join!(
                    bot.request_elevation(&body, None),
                    otto.suspend(&agent.did, "race", false),
                );
                assert!(suspended.is_ok(), "trial {i}: {suspended:?}");
                if let Ok(request) = &submitted {
                    // Stored before the suspension committed: the suspension cancelled it.
                    let now = alice.get_request(&request.id).await.expect("read");
                    assert_eq!(now.status, RequestStatus::Cancelled, "trial {i}");
                    let refused = alice.decide(&request.id, &approve(None, None)).await;
                    assert_eq!(code_of(refused), "cancelled", "trial {i}");
                }
                let pending = alice
                    .requests(&crate::common::query(&format!(
                        "status=pending&agent={}",
                        agent.did
                    )))
                    .await
                    .expect("list");
                (submitted.is_ok(), pending.is_empty())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let left_pending = outcomes.iter().filter(|(_, empty)| !empty).count();
    let submitted_first = outcomes.iter().filter(|(ok, _)| *ok).count();
    assert_eq!(
        left_pending, 0,
        "{TRIALS} trials; {submitted_first} submissions won the race"
    );
    eprintln!(
        "submit/suspend race: {TRIALS} trials, {submitted_first} submissions stored first (each \
         cancelled by the suspension), {} refused; 0 pending requests left on a suspended agent",
        TRIALS - submitted_first
    );
}
