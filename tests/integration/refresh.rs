//! Refresh tokens rotate on every use; presenting a used one revokes the whole sign-in.

use crate::common::{CLIENT_ID, TestServer, code_of};

#[tokio::test]
async fn rotation_and_reuse_detection() {
    let t = TestServer::start().await;
    let first = t.sign_in("alice").await;
    let r1 = first.refresh_token.clone().unwrap();

    t.advance(60);
    let second = t.client.refresh(CLIENT_ID, &r1).await.unwrap();
    let r2 = second.refresh_token.clone().unwrap();
    assert_ne!(r1, r2, "a refresh token is rotated on every use");
    assert_ne!(first.access_token, second.access_token);
    let alice = t.client.with_token(&second.access_token);
    assert_eq!(alice.me().await.unwrap().username.as_deref(), Some("alice"));
    let active = alice.introspect(&second.access_token).await.unwrap();
    assert!(active.active);

    // Someone replays the old refresh token: refused, and the whole family is revoked.
    t.advance(1);
    let replay = t.client.refresh(CLIENT_ID, &r1).await;
    assert_eq!(code_of(replay), "invalid_grant");
    let after = t.client.refresh(CLIENT_ID, &r2).await;
    assert_eq!(
        code_of(after),
        "invalid_grant",
        "the current token died with its family"
    );
    // Access tokens of the family read inactive on introspection.
    let sam = t.as_user("sam").await;
    assert!(!sam.introspect(&second.access_token).await.unwrap().active);
    assert!(!sam.introspect(&first.access_token).await.unwrap().active);

    // A refresh token is bound to its client.
    let other = t.sign_in("bob").await;
    let wrong_client = t
        .client
        .refresh("another-client", other.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(code_of(wrong_client), "invalid_client");
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let t = TestServer::start().await;
    let tokens = t.sign_in("alice").await;
    t.advance(43_201);
    let late = t
        .client
        .refresh(CLIENT_ID, tokens.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(code_of(late), "invalid_grant");
}

#[tokio::test]
async fn revocation_ends_the_sign_in() {
    let t = TestServer::start().await;
    let tokens = t.sign_in("alice").await;
    let refresh = tokens.refresh_token.clone().unwrap();
    t.client
        .revoke(CLIENT_ID, &refresh, Some("refresh_token"))
        .await
        .unwrap();
    assert_eq!(
        code_of(t.client.refresh(CLIENT_ID, &refresh).await),
        "invalid_grant"
    );
    let sam = t.as_user("sam").await;
    assert!(!sam.introspect(&tokens.access_token).await.unwrap().active);
    // Revoking an access token directly, and an unknown token, both answer 200.
    let bob = t.sign_in("bob").await;
    t.client
        .revoke(CLIENT_ID, &bob.access_token, None)
        .await
        .unwrap();
    assert!(!sam.introspect(&bob.access_token).await.unwrap().active);
    t.client
        .revoke(CLIENT_ID, "nothing-we-issued", None)
        .await
        .unwrap();
}
