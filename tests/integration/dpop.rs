//! DPoP-bound agent tokens (RFC 9449): issued with `cnf.jkt` for a proof of the agent's own
//! key, used on `/v1` only with a fresh proof for each request, refused as `Bearer`, shown by
//! introspection; policy requiring them for every agent or per capability; `agent-cli` end to
//! end.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::clock::SharedClock;
use sponsor_console::domain::policy::Policy;
use sponsor_console::protocol::oauth::ASSERTION_TYPE_JWT_BEARER;

use crate::agent_cli::agent_cli;
use crate::common::{TestServer, code_of, settings, sign_in, start_real_clock};

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn clock(t: &TestServer) -> SharedClock {
    t.clock.clone()
}

/// The token endpoint called with `proofs` as DPoP headers: status and OAuth error code.
async fn token_with(t: &TestServer, key: &AgentKey, proofs: &[&str]) -> (StatusCode, String) {
    let mut request = t.client.http().post(t.client.token_endpoint()).form(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE_JWT_BEARER),
        ("client_assertion", &t.assertion(key)),
    ]);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

/// `GET /v1/me` with `authorization` and an optional proof: status, `/v1` error code, and the
/// challenge.
async fn me_with(
    t: &TestServer,
    authorization: &str,
    proof: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = t
        .client
        .http()
        .get(t.client.url("/v1/me"))
        .header("Authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, code, challenge)
}

#[tokio::test]
async fn a_bound_token_carries_the_agents_key_and_works_only_with_its_proofs() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "bound-bot", &["read:crm:*"]).await;
    let (bot, tokens) = t.client.dpop_agent(&key, clock(&t), None).await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    let jkt = key.thumbprint().unwrap();
    assert_eq!(claims_of(&tokens.access_token)["cnf"]["jkt"], jkt.as_str());

    // The library signs a proof for each call.
    assert_eq!(bot.me().await.unwrap().sub, agent.did);
    assert_eq!(bot.agent(&agent.did).await.unwrap().did, agent.did);
    let own = bot.introspect(&tokens.access_token).await.unwrap();
    assert!(own.active);
    assert_eq!(own.token_type.as_deref(), Some("DPoP"));
    assert_eq!(own.cnf.map(|c| c.jkt), Some(jkt.clone()));
    // A sponsor introspecting it sees the binding too.
    let seen = alice.introspect(&tokens.access_token).await.unwrap();
    assert_eq!(
        (seen.token_type.as_deref(), seen.cnf.map(|c| c.jkt)),
        (Some("DPoP"), Some(jkt))
    );

    // The same token as a bearer token, or under DPoP without a proof, is refused.
    let token = &tokens.access_token;
    assert_eq!(
        code_of(t.client.with_token(token).me().await),
        "invalid_token"
    );
    let (status, code, challenge) = me_with(&t, &format!("Bearer {token}"), None).await;
    assert_eq!(
        (status, code.as_str(), challenge.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "DPoP algs=\"EdDSA\", error=\"invalid_token\""
        )
    );
    let (status, code, challenge) = me_with(&t, &format!("DPoP {token}"), None).await;
    assert_eq!(
        (status, code.as_str(), challenge.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "invalid_dpop_proof",
            "DPoP algs=\"EdDSA\", error=\"invalid_dpop_proof\""
        )
    );
    // A bearer token the agent got without a proof keeps working as Bearer, and only so.
    let plain = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    assert_eq!(plain.token_type, "Bearer");
    assert!(claims_of(&plain.access_token).get("cnf").is_none());
    assert!(t.client.with_token(&plain.access_token).me().await.is_ok());
    let (status, code, _) = me_with(&t, &format!("DPoP {}", plain.access_token), None).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

#[tokio::test]
async fn the_token_endpoint_binds_only_to_the_agents_registered_key() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &["read:crm:*"]).await;
    let endpoint = t.client.token_endpoint();
    let now = t.clock_now();
    let proof = |k: &AgentKey| k.dpop_proof("POST", &endpoint, None, now).unwrap();
    // The agent's own key: bound.
    assert_eq!(
        token_with(&t, &key, &[&proof(&key)]).await,
        (StatusCode::OK, String::new())
    );
    let refused = (StatusCode::BAD_REQUEST, "invalid_dpop_proof".to_owned());
    // Another key's proof, however valid, binds nothing.
    assert_eq!(
        token_with(&t, &key, &[&proof(&AgentKey::generate())]).await,
        refused
    );
    // Two DPoP headers, garbage, the proof for another URL or method, a stale one, a replay.
    assert_eq!(
        token_with(&t, &key, &[&proof(&key), &proof(&key)]).await,
        refused
    );
    assert_eq!(token_with(&t, &key, &["not-a-jwt"]).await, refused);
    let elsewhere = key
        .dpop_proof("POST", &t.client.url("/oauth2/introspect"), None, now)
        .unwrap();
    assert_eq!(token_with(&t, &key, &[&elsewhere]).await, refused);
    let get = key.dpop_proof("GET", &endpoint, None, now).unwrap();
    assert_eq!(token_with(&t, &key, &[&get]).await, refused);
    let stale = key
        .dpop_proof("POST", &endpoint, None, now - Duration::seconds(61))
        .unwrap();
    assert_eq!(token_with(&t, &key, &[&stale]).await, refused);
    let once = proof(&key);
    assert_eq!(token_with(&t, &key, &[&once]).await.0, StatusCode::OK);
    assert_eq!(token_with(&t, &key, &[&once]).await, refused);
}

#[tokio::test]
async fn v1_refuses_each_bad_proof_of_a_bound_token() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &["read:crm:*"]).await;
    let (_, tokens) = t.client.dpop_agent(&key, clock(&t), None).await.unwrap();
    let token = tokens.access_token.as_str();
    let auth = format!("DPoP {token}");
    let url = t.client.url("/v1/me");
    let now = t.clock_now();
    let good = key.dpop_proof("GET", &url, Some(token), now).unwrap();
    let (status, _, _) = me_with(&t, &auth, Some(&good)).await;
    assert_eq!(status, StatusCode::OK);
    let cases = [
        ("replayed", good.clone()),
        (
            "wrong method",
            key.dpop_proof("POST", &url, Some(token), now).unwrap(),
        ),
        (
            "wrong URL",
            key.dpop_proof("GET", &t.client.url("/v1/grants"), Some(token), now)
                .unwrap(),
        ),
        (
            "another host",
            key.dpop_proof("GET", "http://elsewhere.example/v1/me", Some(token), now)
                .unwrap(),
        ),
        (
            "ath of another token",
            key.dpop_proof("GET", &url, Some("another.token.here"), now)
                .unwrap(),
        ),
        ("no ath", key.dpop_proof("GET", &url, None, now).unwrap()),
        (
            "too old",
            key.dpop_proof("GET", &url, Some(token), now - Duration::seconds(61))
                .unwrap(),
        ),
        (
            "from the future",
            key.dpop_proof("GET", &url, Some(token), now + Duration::seconds(6))
                .unwrap(),
        ),
        (
            "another key",
            AgentKey::generate()
                .dpop_proof("GET", &url, Some(token), now)
                .unwrap(),
        ),
    ];
    for (name, proof) in cases {
        let (status, code, challenge) = me_with(&t, &auth, Some(&proof)).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
            "{name}"
        );
        assert!(challenge.contains("error=\"invalid_dpop_proof\""), "{name}");
    }
    // Within the window, a fresh proof still works.
    let fresh = key.dpop_proof("GET", &url, Some(token), now).unwrap();
    assert_eq!(me_with(&t, &auth, Some(&fresh)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn policy_may_require_bound_tokens_for_every_agent() {
    let mut s = settings();
    let mut policy = Policy::shipped().unwrap();
    policy.dpop.required = true;
    s.policy = Some(policy);
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "bot", &["list:tickets"]).await;
    let plain = t.client.client_credentials(&t.assertion(&key), None).await;
    let err = plain.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(StatusCode::BAD_REQUEST), Some("invalid_dpop_proof"))
    );
    assert!(err.to_string().contains("[dpop] required"), "{err}");
    let (bot, _) = t.client.dpop_agent(&key, clock(&t), None).await.unwrap();
    assert_eq!(bot.me().await.unwrap().sub, agent.did);
}

#[tokio::test]
async fn policy_may_require_bound_tokens_per_capability() {
    let mut s = settings();
    let mut policy = Policy::shipped().unwrap();
    for rule in &mut policy.capabilities {
        if rule.pattern.as_str() == "read:*" {
            rule.dpop = true;
        }
    }
    s.policy = Some(policy);
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    let (key, _) = t
        .agent(&alice, "bot", &["read:crm:accounts", "list:tickets"])
        .await;
    let plain = |scope: Option<&'static str>| {
        let assertion = t.assertion(&key);
        let client = t.client.clone();
        async move { client.client_credentials(&assertion, scope).await }
    };
    let err = plain(None).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_dpop_proof"));
    assert!(err.to_string().contains("read:crm:accounts"), "{err}");
    // A token that would not carry the capability may be a bearer token.
    let narrow = plain(Some("list:tickets")).await.unwrap();
    assert_eq!(narrow.token_type, "Bearer");
    let (_, bound) = t.client.dpop_agent(&key, clock(&t), None).await.unwrap();
    assert_eq!(
        (bound.token_type.as_str(), bound.scope.as_deref()),
        ("DPoP", Some("list:tickets read:crm:accounts"))
    );
}

#[tokio::test]
async fn discovery_names_the_proof_algorithm() {
    let t = TestServer::start().await;
    let discovery = t.client.discovery().await.unwrap();
    assert_eq!(discovery.dpop_signing_alg_values_supported, vec!["EdDSA"]);
}

/// The real `agent-cli` under a policy requiring DPoP: `token` binds without being asked,
/// `use` and `introspect` sign their proofs, and `proof` makes one for a call by another tool.
#[tokio::test]
async fn agent_cli_signs_proofs_end_to_end() {
    let mut s = settings();
    let mut policy = Policy::shipped().unwrap();
    policy.dpop.required = true;
    s.policy = Some(policy);
    let (server, dir) = start_real_clock(s).await;
    let base = server.base_url();
    let client = sponsor_console::client::ApiClient::new(&base).unwrap();
    let sponsor_token = sign_in(&client, "alice").await.access_token;
    let key = dir.path().join("bot.pem");
    let key = key.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = agent_cli(&base, &sponsor_token, &dir.path().join("state"));
        cmd.args(args);
        cmd
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(run(&["keygen", "--out", key]).output().await.unwrap());
    ok(run(&[
        "register",
        "--key",
        key,
        "--name",
        "cli-bot",
        "--capability",
        "read:invoices",
    ])
    .output()
    .await
    .unwrap());
    let tokens: serde_json::Value =
        serde_json::from_str(&ok(run(&["token", "--key", key]).output().await.unwrap())).unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let jkt = AgentKey::load(std::path::Path::new(key))
        .unwrap()
        .thumbprint()
        .unwrap();
    assert_eq!(claims_of(&token)["cnf"]["jkt"], jkt.as_str());

    let shown = ok(run(&["use", "--key", key]).output().await.unwrap());
    assert!(shown.contains("carries read:invoices"), "{shown}");
    let seen: serde_json::Value =
        serde_json::from_str(&ok(run(&["introspect", "--key", key, &token])
            .output()
            .await
            .unwrap()))
        .unwrap();
    assert_eq!(
        (&seen["active"], &seen["token_type"], &seen["cnf"]["jkt"]),
        (
            &serde_json::json!(true),
            &serde_json::json!("DPoP"),
            &serde_json::json!(jkt)
        )
    );

    // Another tool (here reqwest) calls /v1 with the printed token and a proof from `proof`.
    let me = format!("{base}/v1/me");
    let proof = ok(run(&["proof", "--key", key, "--token", &token, &me])
        .output()
        .await
        .unwrap());
    let call = || {
        client
            .raw(Method::GET, "/v1/me")
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof.trim())
    };
    assert_eq!(call().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        call().send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a proof is good for one request"
    );
}

/// The fleet simulator under a policy requiring DPoP: refused a bearer token, its agents ask
/// for bound ones and sign their proofs, and every submission goes through.
#[tokio::test]
async fn the_fleet_binds_its_tokens_when_policy_requires() {
    use sponsor_console::demo::fleet::{Fleet, FleetConfig};
    let mut s = settings();
    let mut policy = Policy::shipped().unwrap();
    policy.dpop.required = true;
    s.policy = Some(policy);
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    let fleet = std::sync::Arc::new(
        Fleet::register(&alice, 3, 7, t.clock.clone())
            .await
            .unwrap(),
    );
    let stats = fleet
        .run(&FleetConfig {
            agents: 3,
            rate: 1000.0,
            delegation_share: 0.0,
            seed: 7,
            count: Some(6),
            duration: None,
            concurrency: 2,
        })
        .await;
    assert_eq!(stats.errors, 0, "{:?}", stats.last_error);
    assert_eq!(stats.submitted, 6);
}
