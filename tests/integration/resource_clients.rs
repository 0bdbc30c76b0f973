//! Resource servers as confidential clients of introspection, registered with
//! `governance-server clients add`: the Rust `oauth2` crate's introspection call works
//! unchanged with client_secret_basic (its default), a client assertion works for
//! private_key_jwt (used once), and a wrong, unknown or removed client is refused in RFC 6749's
//! shape with a `Basic` challenge. The secret is shown once and only its hash is stored.

use std::path::Path;
use std::process::{Output, Stdio};

use oauth2::basic::BasicClient;
use oauth2::{AccessToken, ClientId, ClientSecret, IntrospectionUrl, TokenIntrospectionResponse};
use reqwest::StatusCode;
use sponsor_console::client::agent_key::AgentKey;

use crate::common::TestServer;

async fn clients_cli(db: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_governance-server"))
        .args(["--database", db.to_str().unwrap(), "clients"])
        .args(args)
        .env_remove("GOVERNANCE_CONFIG")
        .env("XDG_CONFIG_HOME", db.parent().unwrap().join("no-config"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

/// `client_id …` and `client_secret …` from `clients add`.
fn printed(out: &Output, field: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field} ")).map(str::to_owned))
}

#[tokio::test]
async fn the_oauth2_crate_introspects_as_a_registered_resource_server() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "ledger-bot", &["read:ledger"]).await;
    let token = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap()
        .access_token;

    let added = clients_cli(&t.db, &["add", "ledger-api"]).await;
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let id = printed(&added, "client_id").expect("the client id is printed");
    let secret = printed(&added, "client_secret").expect("the secret is printed once");
    assert!(id.starts_with("rs_"));
    // Only the hash is stored. (Read through SQLite: opening the live database file any
    // other way would drop the server's POSIX locks on it.)
    let stored = t
        .server
        .state
        .store
        .resource_client(&id)
        .await
        .unwrap()
        .unwrap();
    let sponsor_console::server::store::ClientAuth::SecretBasic { secret_sha256 } = stored.auth
    else {
        panic!("a secret client")
    };
    use sha2::Digest;
    assert_eq!(
        secret_sha256,
        hex::encode(sha2::Sha256::digest(secret.as_bytes()))
    );
    let listed = clients_cli(&t.db, &["list"]).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("ledger-api\tclient_secret_basic"));

    let introspection = format!("{}/oauth2/introspect", t.client.base());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rs = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_introspection_url(IntrospectionUrl::new(introspection.clone()).unwrap());
    let answer = rs
        .introspect(&AccessToken::new(token.clone()))
        .request_async(&http)
        .await
        .expect("the oauth2 crate's introspection works unchanged");
    assert!(answer.active());
    assert_eq!(answer.sub(), Some(agent.did.as_str()));
    assert_eq!(
        answer.client_id().map(|c| c.as_str()),
        Some(agent.did.as_str())
    );
    let unknown = rs
        .introspect(&AccessToken::new("not-a-token".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert!(!unknown.active());

    // A wrong secret: RFC 6749 §5.2's shape, a Basic challenge, and the crate says why.
    let wrong = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(format!("{secret}x")))
        .set_introspection_url(IntrospectionUrl::new(introspection.clone()).unwrap());
    let refused = wrong
        .introspect(&AccessToken::new(token.clone()))
        .request_async(&http)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, oauth2::RequestTokenError::ServerResponse(e) if e.error().as_ref() == "invalid_client"),
        "{refused:?}"
    );
    let raw = http
        .post(&introspection)
        .basic_auth(&id, Some("wrong"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        raw.headers()["www-authenticate"],
        "Basic realm=\"governance\""
    );
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    // Removed: the credential stops working at once.
    let removed = clients_cli(&t.db, &["remove", "ledger-api"]).await;
    assert_eq!(removed.status.code(), Some(0));
    let after = rs
        .introspect(&AccessToken::new(token))
        .request_async(&http)
        .await;
    assert!(after.is_err(), "a removed client is refused");
    let again = clients_cli(&t.db, &["remove", "ledger-api"]).await;
    assert_ne!(again.status.code(), Some(0));
}

#[tokio::test]
async fn a_private_key_jwt_resource_server_signs_each_call_once() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (agent_key, _) = t.agent(&alice, "ledger-bot", &[]).await;
    let token = t
        .client
        .client_credentials(&t.assertion(&agent_key), None)
        .await
        .unwrap()
        .access_token;
    let rs_key = AgentKey::generate();
    let public = rs_key.public_key();
    let added = clients_cli(
        &t.db,
        &["add", "audit-api", &format!("--public-key={public}")],
    )
    .await;
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let id = printed(&added, "client_id").unwrap();
    assert_eq!(
        printed(&added, "client_secret"),
        None,
        "no secret for a key"
    );
    let bad_key = clients_cli(&t.db, &["add", "other", "--public-key", "abc"]).await;
    assert_ne!(bad_key.status.code(), Some(0));

    let introspection = format!("{}/oauth2/introspect", t.client.base());
    let assertion = rs_key
        .sign(&serde_json::json!({
            "iss": id, "sub": id, "aud": introspection,
            "exp": t.clock_now().timestamp() + 60, "iat": t.clock_now().timestamp(),
            "jti": "rs-call-1",
        }))
        .unwrap();
    let call = || {
        reqwest::Client::new().post(&introspection).form(&[
            ("token", token.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
    };
    let first = call().send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["active"], true);
    let replay = call().send().await.unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "a jti is used once"
    );
}
