//! Every `/v1` call checks signature, algorithm, issuer, audience, expiry and not-before.
//! Forged tokens are refused with 401 and `WWW-Authenticate`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use sponsor_console::protocol::oauth::AccessClaims;
use sponsor_console::server::tokens::KeyRing;

use crate::common::{TestServer, code_of};

/// The claims of a genuine sponsor token, to tamper with.
async fn genuine(t: &TestServer) -> AccessClaims {
    let token = t.sign_in("alice").await.access_token;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn keys(t: &TestServer) -> &KeyRing {
    &t.server.state.keys
}

async fn refused(t: &TestServer, token: &str) {
    let response = t
        .client
        .raw(reqwest::Method::GET, "/v1/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token}");
    assert!(response.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_token");
}

#[tokio::test]
async fn a_genuine_token_is_accepted() {
    let t = TestServer::start().await;
    let claims = genuine(&t).await;
    let token = keys(&t).sign(&claims).unwrap();
    assert_eq!(
        t.client.with_token(token).me().await.unwrap().sub,
        claims.sub
    );
}

#[tokio::test]
async fn wrong_issuer() {
    let t = TestServer::start().await;
    let mut claims = genuine(&t).await;
    claims.iss = "https://evil.example".into();
    refused(&t, &keys(&t).sign(&claims).unwrap()).await;
}

#[tokio::test]
async fn wrong_audience() {
    let t = TestServer::start().await;
    let mut claims = genuine(&t).await;
    claims.aud = "another-api".into();
    refused(&t, &keys(&t).sign(&claims).unwrap()).await;
}

#[tokio::test]
async fn expired_and_not_yet_valid() {
    let t = TestServer::start().await;
    let claims = genuine(&t).await;
    let token = keys(&t).sign(&claims).unwrap();
    t.advance(600);
    refused(&t, &token).await;

    let mut future = genuine(&t).await;
    future.nbf += 120;
    refused(&t, &keys(&t).sign(&future).unwrap()).await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let t = TestServer::start().await;
    let claims = genuine(&t).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    refused(&t, &format!("{header}.{payload}.")).await;
    refused(&t, &format!("{header}.{payload}")).await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let t = TestServer::start().await;
    let claims = genuine(&t).await;
    let jwk = t.client.jwks().await.unwrap().keys.remove(0);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(jwk.kid.clone());
    for secret in [
        jwk.x.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(&jwk.x).unwrap(),
    ] {
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        refused(&t, &token).await;
    }
}

#[tokio::test]
async fn tampered_payload_and_unknown_kid_are_refused() {
    let t = TestServer::start().await;
    let claims = genuine(&t).await;
    let token = keys(&t).sign(&claims).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut elevated = claims.clone();
    elevated.roles = vec!["admin".into()];
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&elevated).unwrap());
    refused(&t, &parts.join(".")).await;

    // Signed by a key the server does not publish.
    let stranger = sponsor_console::client::agent_key::AgentKey::generate();
    let mut forged = stranger.sign(&claims).unwrap();
    refused(&t, &forged).await;
    forged.clear();
    refused(&t, "not.a.jwt").await;
    let missing = t
        .client
        .raw(reqwest::Method::GET, "/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn introspection_needs_an_authenticated_caller() {
    let t = TestServer::start().await;
    let token = t.sign_in("alice").await.access_token;
    let anonymous = t.client.introspect(&token).await;
    assert_eq!(code_of(anonymous), "invalid_token");
    let bob = t.as_user("bob").await;
    let seen = bob.introspect(&token).await.unwrap();
    assert!(seen.active);
    assert_eq!(seen.username.as_deref(), Some("alice"));
    assert!(!bob.introspect("garbage").await.unwrap().active);
}
