//! The AGT approval webhook over real HTTP, spoken as AGT's `VersionedWebhookApproval` speaks
//! it (urllib's headers, the fixtures' exact bytes): held until a sponsor decides through the
//! console's client, answered with a signed assertion the Rust JWT stack verifies; deny,
//! expiry, redelivery, another body under a known id, bad credentials and bad bodies.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sponsor_console::client::ApiClient;
use sponsor_console::protocol::actions::{
    ASSERTION_TYP, ActionDecisionBody, ActionQuery, ActionStatus, ApproverAssertion, WebhookAnswer,
};
use sponsor_console::protocol::requests::Decision;
use sponsor_console::settings::{AgtIntegration, ServerSettings};

use crate::common::{TestServer, settings};

pub const DID_BODY: &str = include_str!("../fixtures/agt/approval_request_did.json");
pub const DEFAULTS_BODY: &str = include_str!("../fixtures/agt/approval_request_defaults.json");
const NON_ASCII_BODY: &str = include_str!("../fixtures/agt/approval_request_non_ascii.json");

/// A server with the integration `ledger`, answered for by alice; returns its credential.
pub fn with_integration() -> (ServerSettings, String) {
    let credential = sponsor_console::settings::new_credential();
    let mut settings = settings();
    settings.agt.integrations.push(AgtIntegration {
        name: "ledger".into(),
        sponsor: "alice".into(),
        credential_sha256: hex::encode(Sha256::digest(credential.as_bytes())),
    });
    (settings, credential)
}

/// POSTs `body` as urllib does (its headers, `Connection: close`), with `token` as bearer.
pub async fn deliver(base: &str, token: Option<&str>, body: &[u8]) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut post = http
        .post(format!("{base}/v1/agt/approvals"))
        .header("Accept-Encoding", "identity")
        .header("User-Agent", "Python-urllib/3.11")
        .header("Content-Type", "application/json")
        .header("Connection", "close")
        .body(body.to_vec());
    if let Some(token) = token {
        post = post.header("Authorization", format!("Bearer {token}"));
    }
    post.send().await.expect("the webhook answers")
}

/// A delivery left running: the call the server holds.
pub fn hold(base: &str, token: &str, body: &[u8]) -> tokio::task::JoinHandle<reqwest::Response> {
    let (base, token, body) = (base.to_owned(), token.to_owned(), body.to_vec());
    tokio::spawn(async move { deliver(&base, Some(&token), &body).await })
}

/// The held call's answer, which must come within five seconds.
pub async fn answered(call: tokio::task::JoinHandle<reqwest::Response>) -> reqwest::Response {
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the held call is answered")
        .expect("the delivering task")
}

/// A body with `changes` applied and its `input_digest` made right again, as the client would
/// compute it (SHA-256 over the JCS of the eleven presented fields).
pub fn resealed(body: &str, changes: Value) -> Vec<u8> {
    let mut object: Map<String, Value> = serde_json::from_str(body).expect("a fixture");
    for (k, v) in changes.as_object().expect("an object") {
        object.insert(k.clone(), v.clone());
    }
    let presented: std::collections::BTreeMap<&str, &Value> = object
        .iter()
        .filter(|(k, _)| !["schema_version", "type", "input_digest"].contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let digest = Sha256::digest(serde_jcs::to_vec(&presented).expect("JCS"));
    object.insert(
        "input_digest".into(),
        json!(format!("sha256:{}", hex::encode(digest))),
    );
    serde_json::to_vec(&object).expect("JSON")
}

fn field(body: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("a fixture");
    v[name].as_str().expect("a string").to_owned()
}

/// Waits until `sponsor` sees `id` pending (the call is then held).
pub async fn pending(sponsor: &ApiClient, id: &str) {
    for _ in 0..500 {
        let list = sponsor
            .all_actions(ActionQuery::pending(100, None))
            .await
            .expect("list");
        if list.iter().any(|a| a.id == id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never became pending");
}

fn decision(decision: Decision, why: &str) -> ActionDecisionBody {
    ActionDecisionBody {
        decision,
        justification: why.into(),
    }
}

/// Checks an approval's assertion against the server's JWKS with the Rust JWT stack.
async fn verified(server: &TestServer, answer: &WebhookAnswer) -> ApproverAssertion {
    let jws = answer.identity_assertion.as_deref().expect("an assertion");
    let header = jsonwebtoken::decode_header(jws).expect("a JWS");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some(ASSERTION_TYP));
    let jwks = server.client.jwks().await.expect("JWKS");
    let kid = header.kid.expect("a kid");
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .expect("the kid is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[server.server.state.issuer.as_str()]);
    validation.set_audience(&[field(DID_BODY, "agent_id"), "*".to_owned()]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<ApproverAssertion>(
        jws,
        &DecodingKey::from_ed_components(&jwk.x).expect("a key"),
        &validation,
    )
    .expect("the assertion verifies")
    .claims
}

#[tokio::test]
async fn a_held_request_is_released_by_the_sponsors_approval_with_a_signed_assertion() {
    let (settings, credential) = with_integration();
    let server = TestServer::start_with(settings).await;
    let alice = server.as_user("alice").await;
    let base = server.client.base().to_owned();
    let id = field(DID_BODY, "approval_request_id");

    let held = hold(&base, &credential, DID_BODY.as_bytes());
    pending(&alice, &id).await;
    let shown = alice.get_action(&id).await.expect("alice sees it");
    assert_eq!(shown.agent_id, field(DID_BODY, "agent_id"));
    assert_eq!(shown.agent_did, None, "a DID this server does not know");
    assert_eq!(shown.integration.as_deref(), Some("ledger"));
    assert_eq!(
        shown.subject_id.as_deref(),
        Some("user:bob@contoso.example")
    );
    assert_eq!(
        shown.target_resource.as_deref(),
        Some("ledger://contoso/accounts/ACME-0042")
    );
    assert_eq!(shown.input_digest, field(DID_BODY, "input_digest"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held.is_finished(), "the call is held, nothing sent");

    let decided = alice
        .decide_action(&id, &decision(Decision::Approve, "checked the ledger"))
        .await
        .expect("decided");
    assert_eq!(decided.status, ActionStatus::Approved);
    let response = answered(held).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: WebhookAnswer = response.json().await.expect("JSON");
    assert!(answer.approved);
    assert_eq!(answer.decision, "allow");
    assert_eq!(answer.approval_request_id, id);
    assert_eq!(answer.action_digest, field(DID_BODY, "action_digest"));
    assert_eq!(answer.reason, "checked the ledger");
    assert_eq!(answer.approver, "alice");
    let claims = verified(&server, &answer).await;
    let alice_id = alice.me().await.expect("me").sub;
    assert_eq!(claims.sub, alice_id);
    assert_eq!(claims.aud, field(DID_BODY, "agent_id"));
    assert_eq!(claims.approval_request_id, id);
    assert_eq!(claims.action_digest, field(DID_BODY, "action_digest"));
    assert_eq!(claims.input_digest, field(DID_BODY, "input_digest"));
    assert_eq!(claims.decision, "allow");
    assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 300);

    // The same body again: the same answer at once, with a fresh assertion.
    let again = deliver(&base, Some(&credential), DID_BODY.as_bytes()).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: WebhookAnswer = again.json().await.expect("JSON");
    assert!(again.approved);
    let fresh = verified(&server, &again).await;
    assert_ne!(fresh.jti, claims.jti);
    assert_eq!(fresh.sub, claims.sub);

    // The same id with another body is refused, and nothing is written.
    let head = server.server.state.store.audit_head().await.expect("head");
    let other = resealed(
        DID_BODY,
        json!({"subject_id": "user:mallory@contoso.example"}),
    );
    let refused = deliver(&base, Some(&credential), &other).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "approval_request_id_reused");
    assert_eq!(
        server.server.state.store.audit_head().await.expect("head"),
        head
    );

    let events: Vec<String> = server
        .client
        .with_token(server.sign_in("sam").await.access_token)
        .audit_export()
        .await
        .expect("export")
        .into_iter()
        .map(|e| e.event.action)
        .filter(|a| a.starts_with("action."))
        .collect();
    assert_eq!(
        events,
        ["action.submitted", "action.approved", "action.redelivered"]
    );
}

#[tokio::test]
async fn an_agent_asks_with_its_own_token_and_its_sponsor_denies() {
    let server = TestServer::start().await;
    let alice = server.as_user("alice").await;
    let bob = server.as_user("bob").await;
    let (key, agent) = server.agent(&alice, "ledger-bot", &["read:ledger"]).await;
    let token = server
        .client
        .client_credentials(&server.assertion(&key), None)
        .await
        .expect("an agent token")
        .access_token;
    let base = server.client.base().to_owned();
    let id = field(DEFAULTS_BODY, "approval_request_id");

    // Another agent's DID in agent_id: refused, nothing stored.
    let other = resealed(
        DEFAULTS_BODY,
        json!({"agent_id": "did:mesh:ffffffffffffffffffffffffffffffff"}),
    );
    assert_eq!(
        deliver(&base, Some(&token), &other).await.status(),
        StatusCode::FORBIDDEN
    );
    let held = hold(&base, &token, DEFAULTS_BODY.as_bytes());
    pending(&alice, &id).await;
    let shown = alice
        .get_action(&id)
        .await
        .expect("alice sponsors the agent");
    assert_eq!(shown.agent_did.as_deref(), Some(agent.did.as_str()));
    assert_eq!(shown.agent_name.as_deref(), Some("ledger-bot"));
    assert_eq!(shown.integration, None);
    // Bob neither sponsors the agent nor holds a role policy names: he does not see it.
    let hidden = bob.get_action(&id).await.unwrap_err();
    assert_eq!(hidden.status(), Some(StatusCode::NOT_FOUND));
    let no_reason = alice
        .decide_action(&id, &decision(Decision::Deny, "  "))
        .await;
    assert_eq!(
        no_reason.unwrap_err().code(),
        Some("justification_required")
    );

    alice
        .decide_action(&id, &decision(Decision::Deny, "not during the close"))
        .await
        .expect("denied");
    let response = answered(held).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: WebhookAnswer = response.json().await.expect("JSON");
    assert!(!answer.approved);
    assert_eq!(answer.decision, "deny");
    assert_eq!(answer.reason, "not during the close");
    assert_eq!(answer.approver, "alice");
    assert_eq!(answer.identity_assertion, None);
    let late = alice
        .decide_action(&id, &decision(Decision::Approve, "changed my mind"))
        .await;
    assert_eq!(late.unwrap_err().code(), Some("already_decided"));
}

#[tokio::test]
async fn an_undecided_request_is_answered_expired_and_never_approved() {
    let (settings, credential) = with_integration();
    let server = TestServer::start_with(settings).await;
    let alice = server.as_user("alice").await;
    let base = server.client.base().to_owned();
    let id = field(NON_ASCII_BODY, "approval_request_id");
    let held = hold(&base, &credential, NON_ASCII_BODY.as_bytes());
    pending(&alice, &id).await;
    let shown = alice.get_action(&id).await.expect("read");
    let expires_at = shown.expires_at;
    assert!(
        shown
            .target_resource
            .as_deref()
            .is_some_and(|t| !t.is_ascii()),
        "the escapes arrive as the characters they stand for: {:?}",
        shown.target_resource
    );
    // The server's clock passes expires_at; the sweep (every second) expires it.
    server.advance((expires_at - server.clock_now()).num_seconds() + 1);
    server.sweep().await;
    let response = answered(held).await;
    let answer: WebhookAnswer = response.json().await.expect("JSON");
    assert!(!answer.approved);
    assert_eq!(answer.decision, "deny");
    assert_eq!(answer.reason, "expired");
    assert_eq!(answer.identity_assertion, None);
    // Alice signs in again: her token from before did not last the day.
    let alice = server.as_user("alice").await;
    let late = alice
        .decide_action(&id, &decision(Decision::Approve, "too late"))
        .await;
    assert_eq!(late.unwrap_err().code(), Some("expired"));
    assert_eq!(
        alice.get_action(&id).await.expect("read").status,
        ActionStatus::Expired
    );
}

#[tokio::test]
async fn bad_credentials_and_bad_bodies_are_refused_at_once_and_store_nothing() {
    let (settings, credential) = with_integration();
    let server = TestServer::start_with(settings).await;
    let sam = server.as_user("sam").await;
    let base = server.client.base().to_owned();
    let sponsor_token = server.sign_in("alice").await.access_token;
    let head = server.server.state.store.audit_head().await.expect("head");
    let wrong = sponsor_console::settings::new_credential();
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(wrong.as_str()), StatusCode::UNAUTHORIZED),
        (Some("not-a-token"), StatusCode::UNAUTHORIZED),
        (
            Some(&credential[..credential.len() - 1]),
            StatusCode::UNAUTHORIZED,
        ),
        (Some(sponsor_token.as_str()), StatusCode::FORBIDDEN),
    ] {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            deliver(&base, token, DID_BODY.as_bytes()),
        )
        .await
        .expect("answered at once, never held");
        assert_eq!(response.status(), status, "{token:?}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(response.headers().contains_key("www-authenticate"));
        }
    }
    let mut tampered: Value = serde_json::from_str(DID_BODY).expect("fixture");
    tampered["target_resource"] = json!("ledger://contoso/accounts/ACME-9999");
    let mut schema: Value = serde_json::from_str(DID_BODY).expect("fixture");
    schema["schema_version"] = json!("2.0");
    let mut kind: Value = serde_json::from_str(DID_BODY).expect("fixture");
    kind["type"] = json!("approval_response");
    let mut missing: Value = serde_json::from_str(DID_BODY).expect("fixture");
    missing.as_object_mut().expect("object").remove("operation");
    let past = resealed(DID_BODY, json!({"expires_at": "2026-11-24T08:59:59+00:00"}));
    for (body, code) in [
        (
            serde_json::to_vec(&tampered).expect("JSON"),
            "input_digest_mismatch",
        ),
        (
            serde_json::to_vec(&schema).expect("JSON"),
            "unsupported_schema_version",
        ),
        (serde_json::to_vec(&kind).expect("JSON"), "invalid_type"),
        (serde_json::to_vec(&missing).expect("JSON"), "missing_field"),
        (past, "expired"),
        (b"[1, 2]".to_vec(), "invalid_body"),
    ] {
        let response = deliver(&base, Some(&credential), &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}"
        );
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["error"]["code"], code);
    }
    let plain = reqwest::Client::new()
        .post(format!("{base}/v1/agt/approvals"))
        .bearer_auth(&credential)
        .header("Content-Type", "text/plain")
        .body(DID_BODY)
        .send()
        .await
        .expect("answer");
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        server.server.state.store.audit_head().await.expect("head"),
        head
    );
    let all = sam
        .all_actions(ActionQuery {
            scope: Some(sponsor_console::protocol::query::ListScope::All),
            limit: Some(100),
            ..ActionQuery::default()
        })
        .await
        .expect("list");
    assert!(all.is_empty(), "{all:?}");
}

/// A client that gives up leaves the request pending; delivering it again holds again and
/// gets the decision.
#[tokio::test]
async fn a_request_outlives_a_client_that_gave_up() {
    let (settings, credential) = with_integration();
    let server = TestServer::start_with(settings).await;
    let alice = server.as_user("alice").await;
    let base = server.client.base().to_owned();
    let id = field(DID_BODY, "approval_request_id");
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        deliver(&base, Some(&credential), DID_BODY.as_bytes()),
    )
    .await;
    assert!(gave_up.is_err(), "held, so the client timed out");
    pending(&alice, &id).await;
    assert_eq!(server.server.state.held.len(), 0, "the dropped call let go");
    let held = hold(&base, &credential, DID_BODY.as_bytes());
    for _ in 0..500 {
        if server.server.state.held.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alice
        .decide_action(&id, &decision(Decision::Approve, "fine"))
        .await
        .expect("decided");
    let answer: WebhookAnswer = answered(held).await.json().await.expect("JSON");
    assert!(answer.approved);
}

/// Writes every action event there is through the store, as the webhook and the decision
/// route do: three requests through an integration answered for by alice, one delivered twice,
/// one approved, one denied, one expired.
pub async fn every_action_event(t: &TestServer) {
    use sponsor_console::protocol::audit::Actor;
    use sponsor_console::server::store::{ActionDecisionInput, NewAction};
    let store = t.server.state.store.as_ref();
    let now = t.clock_now();
    let alice = store
        .sponsor_by_username("alice")
        .await
        .expect("read")
        .expect("alice");
    let expires = (now + chrono::Duration::hours(1)).to_rfc3339();
    let mut ids = Vec::new();
    for n in 1..=3 {
        let id = format!("ar_{n:032x}");
        let body = resealed(
            DID_BODY,
            json!({"approval_request_id": id, "expires_at": expires}),
        );
        let request = sponsor_console::domain::agt::parse(&body, now).expect("a valid request");
        let new = NewAction {
            request,
            agent_did: None,
            integration: Some("ledger".into()),
            integration_sponsor: Some("alice".into()),
            actor: Actor::system(),
        };
        store
            .receive_action(new.clone(), now)
            .await
            .expect("stored");
        if n == 1 {
            store.receive_action(new, now).await.expect("redelivered");
        }
        ids.push(id);
    }
    for (id, decision) in ids.iter().zip([Decision::Approve, Decision::Deny]) {
        let input = ActionDecisionInput {
            approver_id: alice.id.clone(),
            approver_roles: alice.roles.clone(),
            policy_roles: Vec::new(),
            decision,
            justification: "checked".into(),
        };
        store.decide_action(id, input, now).await.expect("decided");
    }
    store
        .expire_action(&ids[2], now + chrono::Duration::hours(2))
        .await
        .expect("expired");
}

/// The kill switch reaches a held call: suspending the agent denies its pending action at
/// once, and the call is answered with the reason; nobody can approve it afterwards.
#[tokio::test]
async fn suspending_the_agent_answers_its_held_call_with_a_denial() {
    let server = TestServer::start().await;
    let alice = server.as_user("alice").await;
    let (key, agent) = server.agent(&alice, "ledger-bot", &["read:ledger"]).await;
    let token = server
        .client
        .client_credentials(&server.assertion(&key), None)
        .await
        .expect("an agent token")
        .access_token;
    let base = server.client.base().to_owned();
    let id = field(DEFAULTS_BODY, "approval_request_id");
    let held = hold(&base, &token, DEFAULTS_BODY.as_bytes());
    pending(&alice, &id).await;
    alice
        .suspend(&agent.did, "leaking secrets", false)
        .await
        .expect("suspended");
    let answer: WebhookAnswer = answered(held).await.json().await.expect("JSON");
    assert!(!answer.approved);
    assert_eq!(answer.reason, "the agent was taken down: leaking secrets");
    assert_eq!(answer.approver, "governance-server");
    let late = alice
        .decide_action(&id, &decision(Decision::Approve, "fine"))
        .await;
    assert_eq!(late.unwrap_err().code(), Some("already_decided"));
}
