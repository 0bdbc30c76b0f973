//! OpenID Connect ID tokens: a sign-in asking for `openid` gets an RS256 ID token (Core §2)
//! that verifies with the JWKS's RSA key, which rotates with the Ed25519 keys; the RSA key
//! signs nothing that acts as an access token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use sponsor_console::protocol::oauth::{IdTokenClaims, JwkSet, TokenResponse};
use sponsor_console::server::rotate_keys;

use crate::common::{CLIENT_ID, PASSWORD, TestServer, browser};

/// Verifies an ID token as a relying party would: RS256 only, the `kid` from the JWKS, issuer,
/// audience and expiry; returns the claims.
pub fn verify_id_token(
    id_token: &str,
    jwks: &JwkSet,
    issuer: &str,
    client_id: &str,
) -> IdTokenClaims {
    let header = jsonwebtoken::decode_header(id_token).expect("a JWS");
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("a kid");
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .expect("the kid is published");
    assert_eq!((jwk.kty.as_str(), jwk.alg.as_str()), ("RSA", "RS256"));
    let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).expect("an RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    // The server's clock is a test clock; times are checked against it below.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
        .expect("the ID token verifies")
        .claims
}

async fn device_sign_in(t: &TestServer, scope: &str) -> TokenResponse {
    let auth = t
        .client
        .device_authorization(CLIENT_ID, Some(scope))
        .await
        .expect("device authorization");
    t.advance(7);
    let outcome = browser(&t.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.body);
    t.advance(5);
    t.client
        .poll_device(CLIENT_ID, &auth.device_code)
        .await
        .expect("tokens")
}

#[tokio::test]
async fn an_openid_sign_in_gets_an_rs256_id_token_that_verifies_from_the_jwks() {
    let t = TestServer::start().await;
    let tokens = device_sign_in(&t, "openid profile governance").await;
    let id_token = tokens.id_token.as_deref().expect("an ID token");
    let jwks = t.client.jwks().await.unwrap();
    let issuer = t.server.base_url();
    let claims = verify_id_token(id_token, &jwks, &issuer, CLIENT_ID);
    let me = t
        .client
        .with_token(&tokens.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(claims.sub, me.sub);
    assert_eq!(claims.iss, issuer);
    assert_eq!(claims.aud, CLIENT_ID);
    assert_eq!(claims.name, "alice (test)");
    assert_eq!(claims.preferred_username, "alice");
    let now = t.clock_now().timestamp();
    assert_eq!(claims.iat, now);
    assert!(claims.exp > now);
    // auth_time is when the person approved in the browser, before the poll.
    assert_eq!(claims.auth_time, now - 5);
    assert_eq!(claims.nonce, None);
    let digest = Sha256::digest(tokens.access_token.as_bytes());
    assert_eq!(claims.at_hash, URL_SAFE_NO_PAD.encode(&digest[..16]));

    // The ID token is no access token: /v1 and userinfo refuse it.
    let refused = t.client.with_token(id_token).me().await;
    assert!(refused.is_err(), "{refused:?}");
    let userinfo = t
        .client
        .http()
        .get(t.client.url("/oauth2/userinfo"))
        .bearer_auth(id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_sign_in_without_openid_gets_no_id_token() {
    let t = TestServer::start().await;
    let tokens = device_sign_in(&t, "governance offline_access").await;
    assert_eq!(tokens.id_token, None);
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn the_rsa_key_rotates_with_the_others_and_stays_published_for_its_tokens() {
    let t = TestServer::start().await;
    let rsa_kids = |jwks: &JwkSet| -> Vec<String> {
        jwks.keys
            .iter()
            .filter(|k| k.kty == "RSA")
            .map(|k| k.kid.clone())
            .collect()
    };
    let before = t.client.jwks().await.unwrap();
    assert_eq!(rsa_kids(&before).len(), 1, "{before:?}");
    assert_eq!(before.keys[0].kty, "OKP", "Ed25519 keys come first");
    let old = device_sign_in(&t, "openid governance").await;

    let state = &t.server.state;
    rotate_keys(state.store.as_ref(), &state.settings, t.clock_now())
        .await
        .unwrap();
    state
        .keys
        .reload(state.store.as_ref(), t.clock_now())
        .await
        .unwrap();
    let during = t.client.jwks().await.unwrap();
    let kids = rsa_kids(&during);
    assert_eq!(kids.len(), 2, "old and new RSA keys: {during:?}");
    let new = device_sign_in(&t, "openid governance").await;
    let issuer = t.server.base_url();
    for tokens in [&old, &new] {
        verify_id_token(
            tokens.id_token.as_deref().unwrap(),
            &during,
            &issuer,
            CLIENT_ID,
        );
    }
    let kid_of = |t: &TokenResponse| {
        jsonwebtoken::decode_header(t.id_token.as_deref().unwrap())
            .unwrap()
            .kid
            .unwrap()
    };
    assert_ne!(kid_of(&old), kid_of(&new), "new ID tokens use the new key");
    assert!(!rsa_kids(&before).contains(&kid_of(&new)));

    // Once the old key's tokens have expired, only the new keys are published.
    t.advance(901);
    state
        .keys
        .reload(state.store.as_ref(), t.clock_now())
        .await
        .unwrap();
    let after = t.client.jwks().await.unwrap();
    assert_eq!(rsa_kids(&after), vec![kid_of(&new)]);
    assert_eq!(
        after.keys.len(),
        2,
        "one Ed25519 and one RSA key: {after:?}"
    );
}
