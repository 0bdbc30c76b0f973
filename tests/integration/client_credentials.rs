//! Agents sign in with `private_key_jwt` (RFC 7523): the right key, a wrong key, a replayed
//! assertion, an expired one, one too long-lived, one for another audience.

use chrono::Duration;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::oauth::ClientAssertionClaims;

use crate::common::{TestServer, code_of};

fn claims(t: &TestServer, key: &AgentKey, exp_in: i64) -> ClientAssertionClaims {
    ClientAssertionClaims {
        iss: key.did(),
        sub: key.did(),
        aud: t.client.token_endpoint(),
        exp: (t.clock_now() + Duration::seconds(exp_in)).timestamp(),
        iat: Some(t.clock_now().timestamp()),
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test]
async fn the_registered_key_gets_a_token_with_the_agents_capabilities() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t
        .agent(&alice, "billing-bot", &["read:invoices", "list:crm:*"])
        .await;
    let tokens = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    assert_eq!(
        tokens.expires_in, 900,
        "agent tokens live 15 minutes by default"
    );
    assert_eq!(tokens.scope.as_deref(), Some("list:crm:* read:invoices"));
    assert!(tokens.refresh_token.is_none());

    let agent_client = t.client.with_token(&tokens.access_token);
    let me = agent_client.me().await.unwrap();
    assert_eq!(
        (me.kind.as_str(), me.sub.as_str()),
        ("agent", agent.did.as_str())
    );
    // An agent reads itself, introspects its own token, and nothing of its sponsor's.
    assert_eq!(agent_client.agent(&agent.did).await.unwrap().did, agent.did);
    let own = agent_client.introspect(&tokens.access_token).await.unwrap();
    assert!(own.active);
    assert_eq!(own.scope.as_deref(), Some("list:crm:* read:invoices"));
    assert_eq!(own.sub.as_deref(), Some(agent.did.as_str()));
    assert_eq!(code_of(agent_client.agents(false).await), "forbidden");

    // Asking for less than it holds narrows the token; asking for more is refused.
    let narrow = t
        .client
        .client_credentials(&t.assertion(&key), Some("list:crm:accounts"))
        .await
        .unwrap();
    assert_eq!(narrow.scope.as_deref(), Some("list:crm:accounts"));
    let wider = t
        .client
        .client_credentials(&t.assertion(&key), Some("delete:crm:accounts"))
        .await;
    assert_eq!(code_of(wider), "invalid_scope");

    // The token expires after 15 minutes on the server's clock.
    t.advance(901);
    assert_eq!(code_of(agent_client.me().await), "invalid_token");
}

#[tokio::test]
async fn a_wrong_key_is_refused() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "a", &["read:x"]).await;
    let impostor = AgentKey::generate();
    // Claims naming the registered agent, signed with another key.
    let forged = impostor.sign(&claims(&t, &key, 60)).unwrap();
    assert_eq!(
        code_of(t.client.client_credentials(&forged, None).await),
        "invalid_client"
    );
    // A key nobody registered.
    let unknown = t.assertion(&impostor);
    assert_eq!(
        code_of(t.client.client_credentials(&unknown, None).await),
        "invalid_client"
    );
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "a", &["read:x"]).await;
    let assertion = t.assertion(&key);
    t.client.client_credentials(&assertion, None).await.unwrap();
    t.advance(1);
    let replay = t.client.client_credentials(&assertion, None).await;
    assert_eq!(code_of(replay), "invalid_client");
}

#[tokio::test]
async fn expired_and_overlong_assertions_are_refused() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "a", &["read:x"]).await;
    let assertion = t.assertion(&key);
    t.advance(61);
    assert_eq!(
        code_of(t.client.client_credentials(&assertion, None).await),
        "invalid_client"
    );
    // `exp` more than 5 minutes ahead.
    let overlong = key.sign(&claims(&t, &key, 301)).unwrap();
    assert_eq!(
        code_of(t.client.client_credentials(&overlong, None).await),
        "invalid_client"
    );
    // Exactly 5 minutes is allowed.
    let limit = key.sign(&claims(&t, &key, 300)).unwrap();
    assert!(t.client.client_credentials(&limit, None).await.is_ok());
}

#[tokio::test]
async fn assertions_for_another_audience_or_subject_are_refused() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "a", &["read:x"]).await;
    let (other, _) = t.agent(&alice, "b", &["read:x"]).await;
    let mut wrong_aud = claims(&t, &key, 60);
    wrong_aud.aud = "https://elsewhere.example/token".into();
    let token = key.sign(&wrong_aud).unwrap();
    assert_eq!(
        code_of(t.client.client_credentials(&token, None).await),
        "invalid_client"
    );
    // iss naming another agent than sub.
    let mut mixed = claims(&t, &key, 60);
    mixed.iss = other.did();
    let token = key.sign(&mixed).unwrap();
    assert_eq!(
        code_of(t.client.client_credentials(&token, None).await),
        "invalid_client"
    );
    // Not a JWT at all.
    assert_eq!(
        code_of(t.client.client_credentials("garbage", None).await),
        "invalid_client"
    );
}
