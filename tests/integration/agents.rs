//! Registering, listing and reading agents; who sees what; idempotent registration; limits.

use reqwest::StatusCode;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::agents::{AgentStatus, RegisterAgent};

use crate::common::{TestServer, code_of, settings};

fn body(key: &AgentKey, name: &str) -> RegisterAgent {
    RegisterAgent {
        public_key: key.public_key(),
        name: name.into(),
        capabilities: vec!["read:crm:*".into(), "list:email".into()],
        entra_object_id: Some("6f1c3b1e-8a4f-4d0e-9b7a-2f3e4d5c6b7a".into()),
        model: Some("claude-opus".into()),
        runtime: Some("langgraph 0.3".into()),
    }
}

#[tokio::test]
async fn register_list_and_read() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let key = AgentKey::generate();
    let agent = alice
        .register_agent(&body(&key, "crm-helper"), None)
        .await
        .unwrap();
    assert_eq!(agent.did, key.did());
    assert!(agent.did.starts_with("did:mesh:") && agent.did.len() == "did:mesh:".len() + 32);
    assert_eq!(agent.status, AgentStatus::Active);
    assert_eq!(agent.capabilities, vec!["list:email", "read:crm:*"]);
    assert_eq!(agent.sponsors[0].username, "alice");
    assert_eq!(agent.delegation_depth, 0);

    let mine = alice.agents(false).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(alice.agent(&agent.did).await.unwrap(), agent);

    // The same key cannot be registered twice.
    let again = alice.register_agent(&body(&key, "dup"), None).await;
    assert_eq!(code_of(again), "agent_exists");
}

#[tokio::test]
async fn sponsors_see_only_their_own_agents() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let bob = t.as_user("bob").await;
    let (_, agent) = t.agent(&alice, "alices-bot", &["read:x"]).await;

    let peek = bob.agent(&agent.did).await;
    let err = peek.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::NOT_FOUND),
        "no existence leak: {err}"
    );
    assert!(bob.agents(false).await.unwrap().is_empty());
    assert_eq!(code_of(bob.agents(true).await), "forbidden");

    // A security lead reads every agent.
    let sam = t.as_user("sam").await;
    assert_eq!(sam.agent(&agent.did).await.unwrap().did, agent.did);
    assert_eq!(sam.agents(true).await.unwrap().len(), 1);
    // An on-call engineer is not a sponsor: cannot register.
    let otto = t.as_user("otto").await;
    let key = AgentKey::generate();
    assert_eq!(
        code_of(otto.register_agent(&body(&key, "x"), None).await),
        "forbidden"
    );

    // An agent cannot read another agent.
    let (key_b, _) = t.agent(&alice, "other", &["read:y"]).await;
    let token = t
        .client
        .client_credentials(&t.assertion(&key_b), None)
        .await
        .unwrap();
    let as_agent = t.client.with_token(token.access_token);
    assert_eq!(
        as_agent.agent(&agent.did).await.unwrap_err().status(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        code_of(
            as_agent
                .register_agent(&body(&AgentKey::generate(), "x"), None)
                .await
        ),
        "forbidden"
    );
}

#[tokio::test]
async fn idempotent_registration() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let key = AgentKey::generate();
    let first = alice
        .register_agent(&body(&key, "once"), Some("reg-1"))
        .await
        .unwrap();
    let replay = alice
        .register_agent(&body(&key, "once"), Some("reg-1"))
        .await
        .unwrap();
    assert_eq!(first, replay);
    let other = alice
        .register_agent(&body(&AgentKey::generate(), "twice"), Some("reg-1"))
        .await;
    let err = other.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert_eq!(err.code(), Some("idempotency_key_reused"));
    assert_eq!(alice.agents(false).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_per_sponsor_limit_holds() {
    let mut s = settings();
    s.limits.max_agents_per_sponsor = 2;
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    t.agent(&alice, "one", &[]).await;
    t.agent(&alice, "two", &[]).await;
    let third = alice
        .register_agent(&body(&AgentKey::generate(), "three"), None)
        .await;
    assert_eq!(code_of(third), "agent_limit_reached");
    // Bob's quota is his own.
    let bob = t.as_user("bob").await;
    t.agent(&bob, "bobs", &[]).await;
}
