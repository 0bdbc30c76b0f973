//! Delegation: a parent agent gives a child a subset of what it holds, approved by a human;
//! the four refusals at submission; the chain is recorded.

use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::agents::AgentStatus;
use sponsor_console::protocol::requests::{DelegationBody, NewChild, RequestKind, RequestStatus};

use crate::common::{TestServer, approve, code_of, deny, elevation};

fn to_new(key: &AgentKey, name: &str, caps: &[&str], seconds: i64) -> DelegationBody {
    DelegationBody {
        child_did: None,
        new_child: Some(NewChild {
            public_key: key.public_key(),
            name: name.into(),
            model: Some("small-model".into()),
            runtime: Some("worker".into()),
        }),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        duration_seconds: seconds,
        justification: "split the crawl across workers".into(),
        ticket: None,
        context: Some("planner step 3 of 7".into()),
    }
}

fn to_existing(did: &str, caps: &[&str], seconds: i64) -> DelegationBody {
    DelegationBody {
        child_did: Some(did.into()),
        new_child: None,
        ..to_new(&AgentKey::generate(), "x", caps, seconds)
    }
}

/// Delegates `caps` to a new child and has `sponsor` approve; returns the child's key.
async fn delegate(
    t: &TestServer,
    sponsor: &ApiClient,
    parent: &AgentKey,
    caps: &[&str],
) -> AgentKey {
    let child = AgentKey::generate();
    let bot = t.as_agent(parent).await;
    let asked = bot
        .request_delegation(&to_new(&child, "worker", caps, 1800), None)
        .await
        .unwrap();
    let done = sponsor
        .decide(&asked.id, &approve(None, None))
        .await
        .unwrap();
    assert_eq!(done.status, RequestStatus::Approved, "{done:?}");
    child
}

#[tokio::test]
async fn a_parent_delegates_a_subset_to_a_new_child() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (parent_key, parent) = t
        .agent(&alice, "planner", &["read:crm:*", "read:web:*"])
        .await;
    let child_key = AgentKey::generate();
    let bot = t.as_agent(&parent_key).await;
    let asked = bot
        .request_delegation(
            &to_new(&child_key, "crawler", &["read:web:docs"], 1800),
            None,
        )
        .await
        .unwrap();
    assert_eq!(asked.kind, RequestKind::Delegation);
    assert_eq!(asked.child_did.as_deref(), Some(child_key.did().as_str()));
    assert_eq!(asked.child_name.as_deref(), Some("crawler"));
    // The child exists already, sponsored like its parent, holding nothing yet.
    let child = alice.agent(&child_key.did()).await.unwrap();
    assert!(child.capabilities.is_empty());
    assert_eq!(child.sponsors[0].username, "alice");
    assert_eq!(child.status, AgentStatus::Proposed);
    assert_eq!(child.parent_did.as_deref(), Some(parent.did.as_str()));

    alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    let child = alice.agent(&child_key.did()).await.unwrap();
    assert_eq!(child.parent_did.as_deref(), Some(parent.did.as_str()));
    assert_eq!(child.delegation_depth, 1);
    let token = t
        .client
        .client_credentials(&t.assertion(&child_key), None)
        .await
        .unwrap();
    assert_eq!(token.scope.as_deref(), Some("read:web:docs"));
    assert_eq!(token.expires_in, 900);
}

#[tokio::test]
async fn the_four_refusals() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (root_key, _) = t.agent(&alice, "root", &["read:crm:*"]).await;
    let root = t.as_agent(&root_key).await;

    // 1. Not a subset: wildcards never broaden.
    let broader = to_new(&AgentKey::generate(), "c", &["read:*"], 600);
    assert_eq!(
        code_of(root.request_delegation(&broader, None).await),
        "delegation_not_subset"
    );
    let other = to_new(&AgentKey::generate(), "c", &["write:crm:x"], 600);
    assert_eq!(
        code_of(root.request_delegation(&other, None).await),
        "delegation_not_subset"
    );

    // 2. Too deep: root → d1 → d2 → d3 is the limit (3); d3 cannot delegate further.
    let d1 = delegate(&t, &alice, &root_key, &["read:crm:*"]).await;
    let d2 = delegate(&t, &alice, &d1, &["read:crm:*"]).await;
    let d3 = delegate(&t, &alice, &d2, &["read:crm:*"]).await;
    assert_eq!(alice.agent(&d3.did()).await.unwrap().delegation_depth, 3);
    let deep = t.as_agent(&d3).await;
    let too_deep = to_new(&AgentKey::generate(), "d4", &["read:crm:x"], 600);
    assert_eq!(
        code_of(deep.request_delegation(&too_deep, None).await),
        "delegation_too_deep"
    );

    // 3. Trust cap: an existing child trusted more than its parent.
    let (low_key, _) = t.agent(&alice, "low", &["read:crm:*"]).await;
    let low = t.as_agent(&low_key).await;
    let asked = low
        .request_elevation(&elevation(&["write:crm:x"], 600), None)
        .await
        .unwrap();
    alice.decide(&asked.id, &deny()).await.unwrap(); // trust 500 → 475
    let (_, high) = t.agent(&alice, "high", &[]).await; // 500
    let capped = to_existing(&high.did, &["read:crm:x"], 600);
    assert_eq!(
        code_of(low.request_delegation(&capped, None).await),
        "delegation_trust_exceeds_parent"
    );

    // 4. Lifetime: no delegated capability outlives the parent's source of it.
    let asked = root
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    alice
        .decide(&asked.id, &approve(Some(1800), None))
        .await
        .unwrap();
    let root = t.as_agent(&root_key).await;
    let outlives = to_new(&AgentKey::generate(), "c", &["write:crm:x"], 3600);
    assert_eq!(
        code_of(root.request_delegation(&outlives, None).await),
        "delegation_outlives_source"
    );
    let fits = to_new(&AgentKey::generate(), "c", &["write:crm:x"], 1200);
    assert_eq!(
        root.request_delegation(&fits, None).await.unwrap().status,
        RequestStatus::Pending
    );

    // And malformed asks: no child, both children, itself.
    let mut neither = to_new(&AgentKey::generate(), "c", &["read:crm:x"], 600);
    neither.new_child = None;
    assert_eq!(
        code_of(root.request_delegation(&neither, None).await),
        "invalid_child"
    );
    let itself = to_existing(&root_key.did(), &["read:crm:x"], 600);
    assert_eq!(
        code_of(root.request_delegation(&itself, None).await),
        "invalid_child"
    );
}

#[tokio::test]
async fn a_delegated_grant_ends_with_its_source() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (root_key, _) = t.agent(&alice, "root", &[]).await;
    let root = t.as_agent(&root_key).await;
    let asked = root
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    alice
        .decide(&asked.id, &approve(Some(3600), None))
        .await
        .unwrap();
    let child = delegate(&t, &alice, &root_key, &["write:crm:x"]).await;
    let grants = alice.grants(&Default::default()).await.unwrap();
    assert_eq!(grants.len(), 2);
    let parent_grant = grants
        .iter()
        .find(|g| g.agent_did == root_key.did())
        .unwrap();
    let child_grant = grants.iter().find(|g| g.agent_did == child.did()).unwrap();
    assert_eq!(
        child_grant.source_grant_id.as_deref(),
        Some(parent_grant.id.as_str())
    );
    // Revoking the parent's grant revokes the child's with it.
    let done = alice.revoke_grant(&parent_grant.id, "done").await.unwrap();
    assert_eq!(done.grants_revoked.len(), 2);
    assert!(alice.grants(&Default::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_new_child_counts_against_the_sponsors_agent_limit() {
    let mut s = crate::common::settings();
    s.limits.max_agents_per_sponsor = 2;
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    let (parent_key, _) = t.agent(&alice, "planner", &["read:web:*"]).await;
    let bot = t.as_agent(&parent_key).await;
    let first = bot
        .request_delegation(
            &to_new(&AgentKey::generate(), "w1", &["read:web:a"], 600),
            None,
        )
        .await;
    assert!(first.is_ok(), "{first:?}");
    let second = bot
        .request_delegation(
            &to_new(&AgentKey::generate(), "w2", &["read:web:b"], 600),
            None,
        )
        .await;
    assert_eq!(code_of(second), "agent_limit_reached");
    assert_eq!(
        alice.agents(false).await.unwrap().len(),
        2,
        "nothing half-written"
    );
}

/// What a proposed child is, read by its sponsor.
async fn status_of(sponsor: &ApiClient, key: &AgentKey) -> (AgentStatus, Option<String>) {
    let child = sponsor.agent(&key.did()).await.unwrap();
    (child.status, child.parent_did)
}

#[tokio::test]
async fn a_proposed_child_is_nobody_until_approved_and_retired_unless_approved() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (parent_key, parent) = t.agent(&alice, "planner", &["read:web:*"]).await;
    let bot = t.as_agent(&parent_key).await;
    let propose = |key: &AgentKey| to_new(key, "crawler", &["read:web:docs"], 1800);

    // Proposed: linked to its parent from the start, and no token, so no request either.
    let child = AgentKey::generate();
    let asked = bot
        .request_delegation(&propose(&child), None)
        .await
        .unwrap();
    let (status, parent_did) = status_of(&alice, &child).await;
    assert_eq!(status, AgentStatus::Proposed);
    assert_eq!(parent_did.as_deref(), Some(parent.did.as_str()));
    let refused = t
        .client
        .client_credentials(&t.assertion(&child), None)
        .await;
    assert_eq!(code_of(refused), "invalid_client");
    // Approval makes it an agent.
    alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    assert_eq!(status_of(&alice, &child).await.0, AgentStatus::Active);
    t.client
        .client_credentials(&t.assertion(&child), None)
        .await
        .expect("an approved child gets a token");

    // Denied, cancelled, expired: each retires the child it proposed, for good.
    let denied = AgentKey::generate();
    let asked = bot
        .request_delegation(&propose(&denied), None)
        .await
        .unwrap();
    alice.decide(&asked.id, &deny()).await.unwrap();
    let cancelled = AgentKey::generate();
    let asked = bot
        .request_delegation(&propose(&cancelled), None)
        .await
        .unwrap();
    bot.cancel_request(&asked.id, "planner changed its mind")
        .await
        .unwrap();
    let expired = AgentKey::generate();
    bot.request_delegation(&propose(&expired), None)
        .await
        .unwrap();
    t.advance(3601);
    t.sweep().await;
    // An hour on, everyone signs in again.
    let alice = t.as_user("alice").await;
    let otto = t.as_user("otto").await;
    for key in [&denied, &cancelled, &expired] {
        assert_eq!(status_of(&alice, key).await.0, AgentStatus::Revoked);
        let refused = t.client.client_credentials(&t.assertion(key), None).await;
        assert_eq!(code_of(refused), "invalid_client");
    }

    // The parent's kill switch reaches a child it only proposed.
    let bot = t.as_agent(&parent_key).await;
    let orphan = AgentKey::generate();
    let asked = bot
        .request_delegation(&propose(&orphan), None)
        .await
        .unwrap();
    let done = otto
        .suspend(&parent.did, "planner misbehaved", false)
        .await
        .unwrap();
    assert!(done.requests_cancelled.contains(&asked.id), "{done:?}");
    assert_eq!(status_of(&alice, &orphan).await.0, AgentStatus::Revoked);
    // Reactivating the parent does not bring it back.
    alice.reactivate(&parent.did, "false alarm").await.unwrap();
    assert_eq!(status_of(&alice, &orphan).await.0, AgentStatus::Revoked);
    let sam = t.as_user("sam").await; // a security lead reads the whole chain
    let events = sam.audit_export().await.unwrap();
    let retired = events
        .iter()
        .filter(|e| e.event.subject == orphan.did() && e.event.action == "agent.revoked")
        .count();
    assert_eq!(retired, 1, "its retirement is on the record, once");
}

#[tokio::test]
async fn one_parent_no_cycle_and_the_depth_limit_hold_at_approval() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let otto = t.as_user("otto").await;
    let caps = &["read:crm:*"];
    let (x_key, x) = t.agent(&alice, "x", caps).await;
    let (y_key, _) = t.agent(&alice, "y", caps).await;
    let (_, c) = t.agent(&alice, "c", caps).await;
    let (x_bot, y_bot) = (t.as_agent(&x_key).await, t.as_agent(&y_key).await);
    let give = |did: &str| to_existing(did, &["read:crm:accounts"], 600);

    // Two parents ask for the same child; both pass at submission. Only the first approval
    // holds, and suspending that parent still reaches the child.
    let by_x = x_bot.request_delegation(&give(&c.did), None).await.unwrap();
    let by_y = y_bot.request_delegation(&give(&c.did), None).await.unwrap();
    alice.decide(&by_x.id, &approve(None, None)).await.unwrap();
    assert_eq!(
        code_of(alice.decide(&by_y.id, &approve(None, None)).await),
        "child_has_other_parent"
    );
    assert_eq!(
        alice.get_request(&by_y.id).await.unwrap().status,
        RequestStatus::Pending,
        "the refused approval changed nothing"
    );
    let done = otto.suspend(&x.did, "incident", false).await.unwrap();
    assert!(done.agents.contains(&c.did), "{done:?}");

    // Two roots each ask for the other; both pass at submission. The second would close a loop.
    let (a_key, a) = t.agent(&alice, "a", caps).await;
    let (b_key, b) = t.agent(&alice, "b", caps).await;
    let (a_bot, b_bot) = (t.as_agent(&a_key).await, t.as_agent(&b_key).await);
    let a_to_b = a_bot.request_delegation(&give(&b.did), None).await.unwrap();
    let b_to_a = b_bot.request_delegation(&give(&a.did), None).await.unwrap();
    alice
        .decide(&a_to_b.id, &approve(None, None))
        .await
        .unwrap();
    assert_eq!(
        code_of(alice.decide(&b_to_a.id, &approve(None, None)).await),
        "delegation_cycle"
    );
    assert!(alice.agent(&a.did).await.unwrap().parent_did.is_none());

    // root → d1 → d2 is depth 2; adopting a tree that is itself one level deep would put its
    // leaf at 4, past the limit of 3, though its root alone would fit.
    let (root_key, _) = t.agent(&alice, "root", caps).await;
    let d1 = delegate(&t, &alice, &root_key, caps).await;
    let d2 = delegate(&t, &alice, &d1, caps).await;
    let (top_key, top) = t.agent(&alice, "top", caps).await;
    let leaf = delegate(&t, &alice, &top_key, caps).await;
    let d2_bot = t.as_agent(&d2).await;
    // (top's approved delegation raised its trust; d2 earns as much, so trust is no obstacle.)
    let earned = d2_bot
        .request_elevation(&elevation(&["read:docs"], 600), None)
        .await
        .unwrap();
    alice
        .decide(&earned.id, &approve(None, None))
        .await
        .unwrap();
    let adopt = d2_bot
        .request_delegation(&give(&top.did), None)
        .await
        .unwrap();
    assert_eq!(
        code_of(alice.decide(&adopt.id, &approve(None, None)).await),
        "delegation_too_deep"
    );
    assert_eq!(alice.agent(&leaf.did()).await.unwrap().delegation_depth, 1);
    // Adopted one level higher, the subtree fits and its depths move with it.
    let d1_bot = t.as_agent(&d1).await;
    let adopt = d1_bot
        .request_delegation(&give(&top.did), None)
        .await
        .unwrap();
    alice.decide(&adopt.id, &approve(None, None)).await.unwrap();
    assert_eq!(alice.agent(&top.did).await.unwrap().delegation_depth, 2);
    assert_eq!(alice.agent(&leaf.did()).await.unwrap().delegation_depth, 3);
}
