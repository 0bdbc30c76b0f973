//! Authlib 1.9 and joserfc 1.8 themselves against the server (`assets/interop/authlib_client.py`,
//! pinned in `assets/requirements-interop.txt`): Authlib's metadata validators on the discovery
//! document, its OAuth2Session through the authorization code grant with PKCE, joserfc verifying
//! the ID token, UserInfo, introspection with client_secret_basic, and private_key_jwt refused
//! with Authlib's hour-long default and accepted as the README configures it. Runs where a
//! Python with Authlib is found (`INTEROP_PYTHON`, which `.ci/run` sets up, else `python3`);
//! where `.ci/run` set it up the test fails rather than skips.

use std::process::Stdio;

use chrono::Utc;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::server::store::{ClientAuth, ResourceClient};
use sponsor_console::server::tokens::{new_secret, secret_hash};

use crate::authorize::with_script_client;
use crate::common::{PASSWORD, TestServer, settings};

fn python() -> String {
    std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".into())
}

async fn has_authlib() -> bool {
    tokio::process::Command::new(python())
        .args(["-c", "import authlib, joserfc, requests"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Registers a resource client as `governance-server clients add` does; its `client_id`.
pub async fn add_client(t: &TestServer, name: &str, auth: ClientAuth) -> String {
    let client_id = format!("rs_{}", &secret_hash(name)[..32]);
    t.server
        .state
        .store
        .add_resource_client(
            &ResourceClient {
                client_id: client_id.clone(),
                name: name.into(),
                auth,
                created_at: Utc::now(),
            },
            Actor::system(),
            t.clock_now(),
        )
        .await
        .unwrap();
    client_id
}

#[tokio::test]
async fn authlib_and_joserfc_work_unchanged_where_the_readme_says() {
    if !has_authlib().await {
        assert!(
            std::env::var_os("INTEROP_PYTHON").is_none(),
            "INTEROP_PYTHON is set but has no Authlib"
        );
        eprintln!("skipped: no Python with Authlib (see assets/requirements-interop.txt)");
        return;
    }
    // A deployment's document: the issuer behind TLS.
    let mut s = settings();
    s.server.issuer = "https://governance.example".into();
    let tls = TestServer::start_with(s).await;
    let document = tls
        .client
        .http()
        .get(format!(
            "http://{}/.well-known/openid-configuration",
            tls.server.addr
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata.json");
    std::fs::write(&metadata, document).unwrap();

    // The server the flows run against, on the real clock (Authlib reads the system time).
    let t = with_script_client().await;
    t.clock.set(Utc::now());
    let secret = new_secret();
    let basic = add_client(
        &t,
        "ledger-api",
        ClientAuth::SecretBasic {
            secret_sha256: secret_hash(&secret),
        },
    )
    .await;
    let key = AgentKey::generate();
    let jwt = add_client(
        &t,
        "audit-api",
        ClientAuth::PrivateKeyJwt {
            public_key: key.public_key(),
        },
    )
    .await;
    let pem = dir.path().join("audit-api.pem");
    std::fs::write(&pem, key.to_pem().unwrap().as_bytes()).unwrap();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/interop/authlib_client.py"
    );
    let out = tokio::process::Command::new(python())
        .args(["-W", "ignore", script])
        .arg(&metadata)
        .arg(t.server.base_url())
        .args([
            "alice",
            PASSWORD,
            "reporting-script",
            "http://127.0.0.1:8765/callback",
        ])
        .args([basic.as_str(), secret.as_str(), jwt.as_str()])
        .arg(&pem)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for step in [
        "metadata: ok",
        "authorization_code: ok Bearer",
        "id_token: ok alice",
        "userinfo: ok alice",
        "introspection_basic: ok alice",
        "private_key_jwt_default_refused: ok the client assertion's exp may be at most 300 seconds ahead",
        "private_key_jwt_short: ok",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(step)),
            "{step}\n{stdout}\n{stderr}"
        );
    }
}
