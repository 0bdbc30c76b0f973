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
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"governance\", error=\"invalid_token\""
    );
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
    // RFC 7662 §2.3 and RFC 6749 §5.2: the caller is the client that failed to authenticate.
    assert_eq!(code_of(anonymous), "invalid_client");
    let bob = t.as_user("bob").await;
    let seen = bob.introspect(&token).await.unwrap();
    assert!(seen.active);
    assert_eq!(seen.username.as_deref(), Some("alice"));
    assert!(!bob.introspect("garbage").await.unwrap().active);
}

/// RFC 6750 §3.1: no token, no error code in the challenge; a bad one, `invalid_token`; a
/// token whose scope is too narrow, 403 and `insufficient_scope` with the scope it needs.
#[tokio::test]
async fn challenges_say_what_rfc_6750_says() {
    let t = TestServer::start().await;
    let anonymous = t
        .client
        .raw(reqwest::Method::GET, "/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"governance\""
    );
    let narrow = sponsor_console::client::ApiClient::new(&t.server.base_url())
        .unwrap()
        .device_authorization(crate::common::CLIENT_ID, Some("openid"))
        .await
        .unwrap();
    let outcome = crate::common::browser(
        &t.client,
        &narrow.user_code,
        "alice",
        crate::common::PASSWORD,
        "approve",
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.body);
    let token = t
        .client
        .poll_device(crate::common::CLIENT_ID, &narrow.device_code)
        .await
        .unwrap()
        .access_token;
    let scoped = t
        .client
        .raw(reqwest::Method::GET, "/v1/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(scoped.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        scoped.headers()["www-authenticate"],
        "Bearer realm=\"governance\", error=\"insufficient_scope\", scope=\"governance\""
    );
}

/// Introspection is an OAuth endpoint: a caller it cannot authenticate gets RFC 6749 §5.2's
/// `{"error": "invalid_client", …}` (what OAuth libraries parse), not `/v1`'s error body.
#[tokio::test]
async fn introspection_refuses_callers_in_oauths_shape() {
    let t = TestServer::start().await;
    for bearer in [None, Some("not-a-token")] {
        let mut call = t
            .client
            .raw(reqwest::Method::POST, "/oauth2/introspect")
            .form(&[("token", "whatever")]);
        if let Some(bearer) = bearer {
            call = call.bearer_auth(bearer);
        }
        let response = call.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{body}");
        assert!(body["error_description"].is_string(), "{body}");
    }
}

/// Every error under `/oauth2` is OAuth's shape (RFC 6749 §5.2: `error`, `error_description`),
/// wrong methods and unknown endpoints included; `/v1` keeps its own. UserInfo's refusals carry
/// RFC 6750 §3's challenge.
#[tokio::test]
async fn every_oauth2_error_is_in_oauths_shape() {
    let t = TestServer::start().await;
    let http = t.client.http().clone();
    let url = |path: &str| t.client.url(path);
    let form = |path: &str, fields: &[(&str, &str)]| http.post(url(path)).form(fields);
    // An agent's token has no openid scope: UserInfo is not for it.
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "reader", &[]).await;
    let agent = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap()
        .access_token;
    let cases = [
        (
            form("/oauth2/token", &[("grant_type", "foo")]),
            400,
            "unsupported_grant_type",
            None,
        ),
        (
            form("/oauth2/token", &[("x", "1")]),
            400,
            "invalid_request",
            None,
        ),
        (
            http.post(url("/oauth2/token")).json(&serde_json::json!({})),
            400,
            "invalid_request",
            None,
        ),
        (
            form("/oauth2/device_authorization", &[("client_id", "nope")]),
            400,
            "invalid_client",
            None,
        ),
        (
            form(
                "/oauth2/token",
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", "sponsor-console"),
                    ("device_code", "zzz"),
                ],
            ),
            400,
            "invalid_grant",
            None,
        ),
        (
            form("/oauth2/revoke", &[("client_id", "sponsor-console")]),
            400,
            "invalid_request",
            None,
        ),
        (
            form("/oauth2/introspect", &[("token", "x")]),
            401,
            "invalid_client",
            None,
        ),
        (http.get(url("/oauth2/token")), 405, "invalid_request", None),
        (
            http.get(url("/oauth2/nothing-here")),
            404,
            "invalid_request",
            None,
        ),
        (
            http.get(url("/oauth2/userinfo")),
            401,
            "invalid_token",
            Some("Bearer realm=\"governance\""),
        ),
        (
            http.get(url("/oauth2/userinfo")).bearer_auth("not-a-token"),
            401,
            "invalid_token",
            Some("Bearer realm=\"governance\", error=\"invalid_token\""),
        ),
        (
            http.get(url("/oauth2/userinfo")).bearer_auth(&agent),
            403,
            "insufficient_scope",
            Some("Bearer realm=\"governance\", error=\"insufficient_scope\", scope=\"openid\""),
        ),
    ];
    for (request, status, error, challenge) in cases {
        let response = request.send().await.unwrap();
        let path = response.url().path().to_owned();
        assert_eq!(response.status().as_u16(), status, "{path}");
        if let Some(expected) = challenge {
            assert_eq!(response.headers()["www-authenticate"], expected, "{path}");
        }
        // A 401 always says how to authenticate (RFC 9110 §15.5.2); otherwise only RFC 6750's
        // insufficient_scope carries a challenge.
        assert_eq!(
            response.headers().contains_key("www-authenticate"),
            status == 401 || challenge.is_some(),
            "{path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{path}: {body}");
        assert!(body["error_description"].is_string(), "{path}: {body}");
    }
    // `/v1` keeps its own shape.
    let v1 = http.get(url("/v1/nothing-here")).send().await.unwrap();
    let body: serde_json::Value = v1.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
