//! Held webhook calls at scale and on the real clock: a thousand held at once cost a task
//! each (no thread each) and leave the server answering; one decision releases exactly its
//! call; a call nobody decides is answered at its own `expires_at`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sponsor_console::client::ApiClient;
use sponsor_console::protocol::actions::{ActionDecisionBody, ActionQuery, WebhookAnswer};
use sponsor_console::protocol::requests::Decision;

use crate::agt::{DEFAULTS_BODY, deliver, resealed, with_integration};
use crate::common::{TestServer, sign_in, start_real_clock};

/// The threads of this process, as the kernel counts them.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_held_calls_cost_a_task_each_and_one_decision_releases_one() {
    const HELD: usize = 1000;
    let (settings, credential) = with_integration();
    let server = TestServer::start_with(settings).await;
    let alice = server.as_user("alice").await;
    let base = server.client.base().to_owned();
    let before = threads();
    let calls: Vec<_> = (0..HELD)
        .map(|n| {
            let id = format!("ar_{n:032x}");
            let body = resealed(DEFAULTS_BODY, json!({"approval_request_id": id}));
            let (base, credential) = (base.clone(), credential.clone());
            (
                id,
                tokio::spawn(async move { deliver(&base, Some(&credential), &body).await }),
            )
        })
        .collect();
    // Every call is registered before its request is stored, so all stored is all held.
    let stored = || async {
        alice
            .action_page(&ActionQuery::pending(1, None))
            .await
            .expect("pending")
            .total
    };
    let mut waited = 0;
    while stored().await < Some(HELD as u64) {
        assert!(waited < 1200, "only {:?} stored", stored().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(server.server.state.held.len(), HELD);
    let during = threads();
    assert!(
        during < before + 32,
        "{HELD} held calls took threads: {before} before, {during} during"
    );
    // The server still answers everyone else.
    let started = Instant::now();
    let health = server
        .client
        .http()
        .get(server.client.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let listed = alice
        .action_page(&ActionQuery::pending(10, None))
        .await
        .expect("pending");
    assert_eq!(listed.total, Some(HELD as u64));
    eprintln!(
        "{HELD} held: threads {before} -> {during}; /healthz and a pending page in {:?}",
        started.elapsed()
    );

    let (id, call) = &calls[HELD / 2];
    alice
        .decide_action(
            id,
            &ActionDecisionBody {
                decision: Decision::Approve,
                justification: "this one".into(),
            },
        )
        .await
        .expect("decided");
    let mut answered = Vec::new();
    for _ in 0..500 {
        answered = calls
            .iter()
            .filter(|(_, c)| c.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        if !answered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        answered,
        std::slice::from_ref(id),
        "exactly the decided call is answered"
    );
    assert!(call.is_finished());
    assert_eq!(server.server.state.held.len(), HELD - 1);
    for (_, call) in &calls {
        call.abort();
    }
}

#[tokio::test]
async fn a_held_call_is_answered_at_its_own_expiry_on_the_real_clock() {
    let (settings, credential) = with_integration();
    let (server, _dir) = start_real_clock(settings).await;
    let client = ApiClient::new(&server.base_url()).expect("client");
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let body = resealed(
        DEFAULTS_BODY,
        json!({"expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)}),
    );
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        deliver(client.base(), Some(&credential), &body),
    )
    .await
    .expect("answered at the expiry");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "held until then: {waited:?}"
    );
    assert_eq!(response.status(), StatusCode::OK);
    let answer: WebhookAnswer = response.json().await.expect("JSON");
    assert!(!answer.approved);
    assert_eq!(answer.reason, "expired");
    let id = answer.approval_request_id;
    let stored = alice.get_action(&id).await.expect("read");
    assert_eq!(
        stored.status,
        sponsor_console::protocol::actions::ActionStatus::Expired
    );
}

/// A graceful shutdown does not wait for held calls: they are answered 503 with `Retry-After`
/// (AGT denies on it), and the request stays pending for a redelivery elsewhere.
#[tokio::test]
async fn a_shutdown_answers_held_calls_503_and_keeps_the_request() {
    let (settings, credential) = with_integration();
    let (server, dir) = start_real_clock(settings.clone()).await;
    let base = server.base_url();
    let client = ApiClient::new(&base).expect("client");
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let id =
        serde_json::from_str::<serde_json::Value>(DEFAULTS_BODY).unwrap()["approval_request_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let expires = chrono::Utc::now() + chrono::Duration::minutes(5);
    let body = resealed(
        DEFAULTS_BODY,
        json!({"expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)}),
    );
    let held = crate::agt::hold(&base, &credential, &body);
    crate::agt::pending(&alice, &id).await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the shutdown does not wait for the held call")
        .expect("shut down");
    let response = held.await.expect("task");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    // The same database, served again: the request is still pending.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let again = sponsor_console::server::start(
        settings,
        &dir.path().join("governance.db"),
        listener,
        std::sync::Arc::new(sponsor_console::clock::SystemClock),
    )
    .await
    .expect("restart");
    let client = ApiClient::new(&again.base_url()).expect("client");
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let stored = alice.get_action(&id).await.expect("read");
    assert_eq!(
        stored.status,
        sponsor_console::protocol::actions::ActionStatus::Pending
    );
}
