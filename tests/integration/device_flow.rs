//! RFC 8628 end to end: pending → slow_down → approved → token; deny; expiry; reuse; the
//! verification page's CSRF and rate limits.

use reqwest::StatusCode;
use sponsor_console::domain::user_code;

use crate::common::{CLIENT_ID, PASSWORD, TestServer, browser, code_of};

#[tokio::test]
async fn pending_then_slow_down_then_approved_then_token() {
    let t = TestServer::start().await;
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    assert_eq!(auth.user_code.len(), 9);
    assert_eq!(
        user_code::normalize(&auth.user_code).as_deref(),
        Some(auth.user_code.as_str())
    );
    assert_eq!(
        auth.verification_uri,
        format!("{}/device", t.server.base_url())
    );
    assert_eq!(
        auth.verification_uri_complete,
        format!("{}?user_code={}", auth.verification_uri, auth.user_code)
    );
    assert_eq!((auth.expires_in, auth.interval), (600, 5));

    // First poll: pending.
    let first = t.client.poll_device(CLIENT_ID, &auth.device_code).await;
    assert_eq!(code_of(first), "authorization_pending");
    // Polled again one second later: too fast.
    t.advance(1);
    let fast = t.client.poll_device(CLIENT_ID, &auth.device_code).await;
    assert_eq!(code_of(fast), "slow_down");
    // The interval is now 10 s: 6 s later is still too fast.
    t.advance(6);
    let still_fast = t.client.poll_device(CLIENT_ID, &auth.device_code).await;
    assert_eq!(code_of(still_fast), "slow_down");
    // The human approves; a poll after the (now 15 s) interval gets tokens.
    let outcome = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.body);
    assert!(outcome.body.contains("Device approved"));
    t.advance(15);
    let tokens = t
        .client
        .poll_device(CLIENT_ID, &auth.device_code)
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 600);
    assert!(tokens.refresh_token.is_some());

    let me = t
        .client
        .with_token(&tokens.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.kind, "sponsor");
    assert_eq!(me.username.as_deref(), Some("alice"));
    assert_eq!(me.roles, vec!["sponsor".to_owned()]);

    // Redeemed at most once.
    t.advance(15);
    let again = t.client.poll_device(CLIENT_ID, &auth.device_code).await;
    assert_eq!(code_of(again), "invalid_grant");
}

#[tokio::test]
async fn denied_by_the_human() {
    let t = TestServer::start().await;
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let outcome = browser(&t.client, &auth.user_code, "alice", PASSWORD, "deny").await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert!(outcome.body.contains("denied"));
    t.advance(5);
    let polled = t.client.poll_device(CLIENT_ID, &auth.device_code).await;
    assert_eq!(code_of(polled), "access_denied");
    // A denied code cannot be approved afterwards.
    let late = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.body.contains("not valid or has expired"));
}

#[tokio::test]
async fn expires_without_a_decision() {
    let t = TestServer::start().await;
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    t.advance(601);
    let polled = t.client.poll_device(CLIENT_ID, &auth.device_code).await;
    assert_eq!(code_of(polled), "expired_token");
    let late = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_client_and_unknown_code_are_refused() {
    let t = TestServer::start().await;
    let unknown = t.client.device_authorization("not-a-client", None).await;
    assert_eq!(code_of(unknown), "invalid_client");
    let bad_scope = t
        .client
        .device_authorization(CLIENT_ID, Some("admin:*"))
        .await;
    assert_eq!(code_of(bad_scope), "invalid_scope");
    let bogus = t.client.poll_device(CLIENT_ID, "no-such-device-code").await;
    assert_eq!(code_of(bogus), "invalid_grant");
    // A device code is bound to the client it was issued to.
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let other = t.client.poll_device("another", &auth.device_code).await;
    assert_eq!(code_of(other), "invalid_client");
}

#[tokio::test]
async fn the_verification_page_needs_the_csrf_cookie() {
    let t = TestServer::start().await;
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let forged = t
        .client
        .http()
        .post(t.client.url("/device"))
        .form(&[
            ("csrf", "guessed"),
            ("user_code", auth.user_code.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let page = t
        .client
        .http()
        .get(t.client.url("/device"))
        .send()
        .await
        .unwrap();
    let csp = page
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'"));
    assert_eq!(page.headers().get("cache-control").unwrap(), "no-store");
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_username() {
    let t = TestServer::start().await;
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    for _ in 0..5 {
        let wrong = browser(&t.client, &auth.user_code, "alice", "wrong", "approve").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        assert!(wrong.body.contains("Wrong username or password"));
    }
    // Now even the right password is refused until the window passes.
    let blocked = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    t.advance(901);
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let ok = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn wrong_user_codes_are_rate_limited() {
    let t = TestServer::start().await;
    for _ in 0..10 {
        let wrong = browser(&t.client, "BBBB-BBBB", "alice", PASSWORD, "approve").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    }
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let blocked = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn unknown_usernames_get_the_same_answer_as_wrong_passwords() {
    let t = TestServer::start().await;
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let unknown = browser(&t.client, &auth.user_code, "mallory", PASSWORD, "approve").await;
    let wrong = browser(&t.client, &auth.user_code, "alice", "nope", "approve").await;
    assert_eq!(unknown.status, wrong.status);
    assert!(unknown.body.contains("Wrong username or password"));
}
