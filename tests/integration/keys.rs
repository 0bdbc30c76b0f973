//! Discovery, the JWKS, and key rotation keeping the previous key published.

use sponsor_console::server::rotate_keys;

use crate::common::TestServer;

#[tokio::test]
async fn discovery_describes_this_server() {
    let t = TestServer::start().await;
    let d = t.client.discovery().await.unwrap();
    let base = t.server.base_url();
    assert_eq!(d.issuer, base);
    assert_eq!(d.token_endpoint, format!("{base}/oauth2/token"));
    assert_eq!(
        d.device_authorization_endpoint,
        format!("{base}/oauth2/device_authorization")
    );
    assert!(
        d.grant_types_supported
            .iter()
            .any(|g| g.ends_with("device_code"))
    );
    assert_eq!(
        d.token_endpoint_auth_signing_alg_values_supported,
        vec!["EdDSA"]
    );
    // One Ed25519 key (access tokens, assertions, checkpoints), then one RSA key (ID tokens).
    let jwks = t.client.jwks().await.unwrap();
    assert_eq!(jwks.keys.len(), 2);
    let k = &jwks.keys[0];
    assert_eq!(
        (k.kty.as_str(), k.crv.as_str(), k.alg.as_str()),
        ("OKP", "Ed25519", "EdDSA")
    );
    assert!(!k.kid.is_empty());
    let r = &jwks.keys[1];
    assert_eq!((r.kty.as_str(), r.alg.as_str()), ("RSA", "RS256"));
    assert!(r.crv.is_empty() && r.x.is_empty() && !r.n.is_empty() && r.e == "AQAB");
}

/// RFC 8414 §2: an endpoint that lists a JWT-based client authentication method must list
/// the signing algorithms it accepts, and never `none`. Checked on the document as served,
/// at both well-known addresses, so a field that goes missing fails here.
#[tokio::test]
async fn jwt_client_authentication_names_its_algorithms() {
    let t = TestServer::start().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: serde_json::Value = t
            .client
            .raw(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for endpoint in [
            "token_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
        ] {
            let methods = doc[format!("{endpoint}_auth_methods_supported")]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: {endpoint}_auth_methods_supported"));
            let jwt = methods
                .iter()
                .any(|m| m == "private_key_jwt" || m == "client_secret_jwt");
            if !jwt {
                continue;
            }
            let algs = doc[format!("{endpoint}_auth_signing_alg_values_supported")]
                .as_array()
                .unwrap_or_else(|| {
                    panic!("{path}: {endpoint}_auth_signing_alg_values_supported is missing")
                });
            assert!(!algs.is_empty(), "{path}: {endpoint}");
            assert!(!algs.iter().any(|a| a == "none"), "{path}: {endpoint}");
        }
    }
}

#[tokio::test]
async fn rotation_keeps_the_old_key_until_its_tokens_expire() {
    let t = TestServer::start().await;
    let old_token = t.sign_in("alice").await.access_token;
    let old_kid = t.client.jwks().await.unwrap().keys[0].kid.clone();

    let state = &t.server.state;
    let new_kid = rotate_keys(state.store.as_ref(), &state.settings, t.clock_now())
        .await
        .unwrap();
    state
        .keys
        .reload(state.store.as_ref(), t.clock_now())
        .await
        .unwrap();

    let kids: Vec<String> = t
        .client
        .jwks()
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert_eq!(state.keys.current_kid().as_deref(), Some(new_kid.as_str()));
    // Tokens signed before the rotation still work; new ones carry the new kid.
    assert!(t.client.with_token(&old_token).me().await.is_ok());
    let new_token = t.sign_in("bob").await.access_token;
    let header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));

    // Once every token the old key signed has expired, it is no longer published.
    t.advance(901);
    state
        .keys
        .reload(state.store.as_ref(), t.clock_now())
        .await
        .unwrap();
    let kids: Vec<String> = t
        .client
        .jwks()
        .await
        .unwrap()
        .keys
        .into_iter()
        .filter(|k| k.kty == "OKP")
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec![new_kid]);
    assert!(t.client.with_token(&old_token).me().await.is_err());
}
