//! Third-party clients' requests, in Rust: the `oauth2` crate (5) itself through the browser
//! sign-in, and the exact requests Python's oauthlib and Authlib send where their defaults
//! matter (form encoding with a charset, a public client naming itself in the body, Authlib's
//! hour-long client assertions). `interop_python.rs` runs Authlib and joserfc themselves where
//! Python is installed.

use chrono::Duration;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse as _, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::server::store::ClientAuth;

use crate::authorize::{REDIRECT, SCRIPT, browse_url, location, param, with_script_client};
use crate::common::PASSWORD;
use crate::interop_python::add_client;
use crate::openid::verify_id_token;

#[tokio::test]
async fn the_oauth2_crate_signs_a_person_in_with_the_code_grant_and_pkce() {
    let t = with_script_client().await;
    let client = BasicClient::new(ClientId::new(SCRIPT.into()))
        .set_auth_uri(AuthUrl::new(t.client.url("/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(t.client.token_endpoint()).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("governance".into()))
        .set_pkce_challenge(challenge)
        .url();
    let answer = browse_url(&t, url.as_str(), "bob", PASSWORD, "allow").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let back = location(&answer);
    assert_eq!(
        param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = param(&back, "code").unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the oauth2 crate's code exchange works unchanged");
    let me = t
        .client
        .with_token(tokens.access_token().secret())
        .me()
        .await
        .unwrap();
    assert_eq!(me.username.as_deref(), Some("bob"));
    assert_eq!(
        tokens.scopes().map(|s| s.len()),
        Some(2),
        "openid governance"
    );
}

/// oauthlib's `WebApplicationClient.prepare_request_body`, posted as requests-oauthlib does:
/// a charset on the content type, the public client's id in the body.
#[tokio::test]
async fn oauthlibs_token_request_is_accepted_byte_for_byte() {
    let t = with_script_client().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", SCRIPT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "oauthlib-state"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let url = t.client.url(&format!("/oauth2/authorize?{q}"));
    let answer = browse_url(&t, &url, "alice", PASSWORD, "allow").await;
    let code = param(&location(&answer), "code").unwrap();
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={SCRIPT}&code_verifier={verifier}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let answer = t
        .client
        .http()
        .post(t.client.token_endpoint())
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let tokens: Value = answer.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let jwks = t.client.jwks().await.unwrap();
    let claims = verify_id_token(
        tokens["id_token"].as_str().unwrap(),
        &jwks,
        &t.server.base_url(),
        SCRIPT,
    );
    assert_eq!(claims.nonce, None);
}

/// Authlib's `PrivateKeyJWT`: `iss` = `sub` = the client, `aud` the endpoint called, `iat`,
/// `exp` an hour later, a 36-character `jti`, posted with no `client_id`. The hour is refused
/// with a reason a person can act on; a minute, as the README configures it, is accepted.
#[tokio::test]
async fn authlibs_hour_long_client_assertion_is_refused_with_its_reason() {
    let t = with_script_client().await;
    let key = AgentKey::generate();
    let client_id = add_client(
        &t,
        "audit-api",
        ClientAuth::PrivateKeyJwt {
            public_key: key.public_key(),
        },
    )
    .await;
    let alice = t.sign_in("alice").await.access_token;
    let endpoint = t.client.url("/oauth2/introspect");
    let assertion = |lifetime: Duration, jti: &str| {
        let iat = t.clock_now().timestamp();
        key.sign(&json!({
            "iss": client_id,
            "aud": endpoint,
            "sub": client_id,
            "iat": iat,
            "exp": iat + lifetime.num_seconds(),
            "jti": jti,
        }))
        .unwrap()
    };
    let introspect = |assertion: String| {
        let http = t.client.http().clone();
        let endpoint = endpoint.clone();
        let token = alice.clone();
        async move {
            http.post(endpoint)
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded;charset=UTF-8",
                )
                .form(&[
                    ("token", token.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let refused = introspect(assertion(Duration::hours(1), &"a".repeat(36))).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(
        body["error_description"],
        "the client assertion's exp may be at most 300 seconds ahead"
    );
    let accepted = introspect(assertion(Duration::minutes(1), &"b".repeat(36))).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let seen: Value = accepted.json().await.unwrap();
    assert_eq!(seen["active"], true);
    assert_eq!(seen["username"], "alice");
}
