//! Several server instances on one PostgreSQL schema, in one process, each with its own store
//! (pool, listener, leader's session), its own listener and the same public issuer: an event
//! committed on one reaches a stream on another within a second, gap-free and in commit order;
//! a suspension on one is refused by the other within a second; one instance runs the periodic
//! jobs and another takes over when it stops or dies; a device sign-in started on one finishes
//! on the other, and a key rotation reaches every instance's JWKS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::client::{ApiClient, ClientError};
use sponsor_console::clock::SystemClock;
use sponsor_console::protocol::agents::RegisterAgent;
use sponsor_console::protocol::audit::AuditEvent;
use sponsor_console::server::store::{HealthStore, PgStore};
use sponsor_console::server::{RunningServer, rotate_keys, start_with_store};
use sponsor_console::settings::ServerSettings;
use tokio::net::TcpListener;

use crate::common::postgres::Schema;
use crate::common::{CLIENT_ID, PASSWORD, browser, elevation, settings, sign_in};

/// The public issuer every instance names (behind one load balancer, say).
const ISSUER: &str = "https://governance.test";

struct Instance {
    server: RunningServer,
    store: PgStore,
    /// Talks to this instance's own address.
    client: ApiClient,
}

async fn instance(schema: &Schema, tweak: impl FnOnce(&mut ServerSettings)) -> Instance {
    let store = PgStore::connect_with(schema.options()).await.unwrap();
    let mut s = settings();
    s.server.issuer = ISSUER.into();
    tweak(&mut s);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = start_with_store(s, Arc::new(store.clone()), listener, Arc::new(SystemClock))
        .await
        .unwrap();
    let client = ApiClient::new(&format!("http://{}", server.addr)).unwrap();
    Instance {
        server,
        store,
        client,
    }
}

async fn schema_or_skip(case: &str) -> Option<Schema> {
    match Schema::create().await {
        Ok(schema) => Some(schema),
        Err(why) => {
            crate::conformance::skipped(&format!("postgres_instances::{case}"), &why);
            None
        }
    }
}

async fn register(sponsor: &ApiClient, name: &str) -> (AgentKey, String) {
    let key = AgentKey::generate();
    let agent = sponsor
        .register_agent(
            &RegisterAgent {
                public_key: key.public_key(),
                name: name.to_owned(),
                capabilities: vec![],
                entra_object_id: None,
                model: None,
                runtime: None,
            },
            None,
        )
        .await
        .unwrap();
    (key, agent.did)
}

/// An agent's access token from `on`: its assertion names the shared issuer's token endpoint.
async fn agent_token(on: &Instance, key: &AgentKey) -> String {
    let assertion = key
        .assertion(
            &format!("{ISSUER}/oauth2/token"),
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
        )
        .unwrap();
    let token = on
        .client
        .client_credentials(&assertion, None)
        .await
        .unwrap();
    token.access_token
}

async fn next_event(stream: &mut sponsor_console::client::EventStream) -> AuditEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("stream open")
        .expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_reaches_a_stream_on_another_in_commit_order() {
    let Some(schema) =
        schema_or_skip("a_write_on_one_instance_reaches_a_stream_on_another_in_commit_order").await
    else {
        return;
    };
    let a = instance(&schema, |_| {}).await;
    let b = instance(&schema, |_| {}).await;
    let sam_b = b
        .client
        .with_token(sign_in(&b.client, "sam").await.access_token);
    let alice_a = a
        .client
        .with_token(sign_in(&a.client, "alice").await.access_token);
    let alice_b = b
        .client
        .with_token(sign_in(&b.client, "alice").await.access_token);

    // From the head on: nothing on B wakes this stream but a notification from A.
    let head = sam_b
        .audit_page(0, 1000)
        .await
        .unwrap()
        .events
        .last()
        .unwrap()
        .event
        .seq;
    let mut live = sam_b.events(Some(head)).await.unwrap();
    for round in 0..3 {
        let (_, did) = register(&alice_a, &format!("solo-{round}")).await;
        let written = Instant::now();
        let got = next_event(&mut live).await;
        let took = written.elapsed();
        assert_eq!(got.event.action, "agent.registered", "{got:?}");
        assert_eq!(got.event.subject, did, "{got:?}");
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
    }

    // Writes on both at once: B's stream sees every one, each seq once, in order, no gap.
    let from = next_seq(&sam_b).await;
    let writes = (0..20).map(|i| {
        let on = if i % 2 == 0 { &alice_a } else { &alice_b };
        async move { register(on, &format!("both-{i}")).await }
    });
    let registered: Vec<String> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(|(_, did)| did)
        .collect();
    let mut seen = Vec::new();
    while seen.len() < registered.len() {
        let event = next_event(&mut live).await;
        assert_eq!(event.event.seq, from + seen.len() as i64, "{event:?}");
        seen.push(event.event.subject.clone());
    }
    let mut expected = registered.clone();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    // The order the chain holds is the order both streams deliver.
    let on_a = a
        .client
        .with_token(sign_in(&a.client, "sam").await.access_token);
    let mut replay_a = on_a.events(Some(from - 1)).await.unwrap();
    let chain = sam_b.audit_page(from - 1, 20).await.unwrap().events;
    for event in &chain {
        assert_eq!(next_event(&mut replay_a).await, *event);
    }
    // A graceful shutdown waits for open streams.
    drop((live, replay_a));
    stop(a).await;
    stop(b).await;
}

async fn next_seq(sponsor: &ApiClient) -> i64 {
    let events = sponsor.audit_page(0, 1000).await.unwrap().events;
    events.last().map_or(1, |e| e.event.seq + 1)
}

async fn stop(instance: Instance) {
    instance.server.shutdown().await.unwrap();
    instance.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_on_one_instance_is_refused_by_another_within_a_second() {
    let Some(schema) =
        schema_or_skip("a_suspension_on_one_instance_is_refused_by_another_within_a_second").await
    else {
        return;
    };
    let a = instance(&schema, |_| {}).await;
    let b = instance(&schema, |_| {}).await;
    let alice_a = a
        .client
        .with_token(sign_in(&a.client, "alice").await.access_token);
    let (key, did) = register(&alice_a, "ledger-bot").await;
    // A token from A, used on B.
    let bot_on_b = b.client.with_token(agent_token(&a, &key).await);
    let submitted = bot_on_b
        .request_elevation(&elevation(&["read:crm:x"], 3600), None)
        .await
        .unwrap();
    bot_on_b.get_request(&submitted.id).await.unwrap();

    alice_a
        .suspend(&did, "compromised key", true)
        .await
        .unwrap();
    let suspended = Instant::now();
    loop {
        match bot_on_b.get_request(&submitted.id).await {
            Ok(_) => assert!(
                suspended.elapsed() < Duration::from_secs(1),
                "B still admits the suspended agent after {:?}",
                suspended.elapsed()
            ),
            Err(ClientError::Api { status, .. }) if status.as_u16() == 401 => break,
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(a).await;
    stop(b).await;
}

async fn lines(path: &std::path::Path) -> usize {
    tokio::fs::read_to_string(path)
        .await
        .map_or(0, |text| text.lines().count())
}

/// Waits (at most 10 s) until the checkpoint file at `path` has `n` lines.
async fn wait_for_lines(path: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(path).await < n {
        assert!(
            Instant::now() < deadline,
            "{} has fewer than {n} lines",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_runs_the_periodic_jobs_and_another_takes_over_when_it_stops() {
    let Some(schema) =
        schema_or_skip("one_instance_runs_the_periodic_jobs_and_another_takes_over_when_it_stops")
            .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let every_second = |file: &std::path::Path| {
        let file = file.display().to_string();
        move |s: &mut ServerSettings| {
            s.audit.checkpoint_file = file;
            s.audit.checkpoint_every = "1s".into();
        }
    };
    let a = instance(&schema, every_second(&file_a)).await;
    let b = instance(&schema, every_second(&file_b)).await;
    // A started first and leads: its checkpoints follow the head, written through B too.
    wait_for_lines(&file_a, 1).await;
    sign_in(&b.client, "alice").await;
    wait_for_lines(&file_a, 2).await;
    sign_in(&b.client, "bob").await;
    wait_for_lines(&file_a, 3).await;
    assert_eq!(
        lines(&file_b).await,
        0,
        "B ran the checkpoint job while A led"
    );

    // A stops; B takes the jobs over.
    stop(a).await;
    let stopped = Instant::now();
    wait_for_lines(&file_b, 1).await;
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    stop(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leaders_session_dies_another_instance_leads() {
    let Some(schema) = schema_or_skip("when_the_leaders_session_dies_another_instance_leads").await
    else {
        return;
    };
    let a = PgStore::connect_with(schema.options()).await.unwrap();
    let b = PgStore::connect_with(schema.options()).await.unwrap();
    assert!(a.lead().await.unwrap());
    assert!(!b.lead().await.unwrap());
    assert!(a.lead().await.unwrap(), "the leader keeps leading");
    assert!(!b.lead().await.unwrap());

    // A's session ends as a crashed or cut-off instance's would: the database ends it.
    let mut admin = sqlx::PgConnection::connect_with(&schema.options())
        .await
        .unwrap();
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND granted
           AND pid IN (SELECT pid FROM pg_stat_activity
                       WHERE application_name = current_setting('application_name'))",
    )
    .bind(0x5343_4c44_i64)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended, [(true,)], "one session held the leader's lock");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.lead().await.unwrap() {
        assert!(Instant::now() < deadline, "B never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !a.lead().await.unwrap(),
        "A found its session gone and does not lead"
    );
    assert!(b.lead().await.unwrap());
    use sqlx::Connection as _;
    admin.close().await.unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_sign_in_and_a_key_rotation_span_the_instances() {
    let Some(schema) =
        schema_or_skip("a_device_sign_in_and_a_key_rotation_span_the_instances").await
    else {
        return;
    };
    let a = instance(&schema, |_| {}).await;
    let b = instance(&schema, |_| {}).await;
    // Started on A, approved in the browser on B, the token collected from B.
    let auth = a
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .unwrap();
    let outcome = browser(&b.client, &auth.user_code, "alice", PASSWORD, "approve").await;
    assert_eq!(outcome.status, reqwest::StatusCode::OK, "{}", outcome.body);
    let token = b
        .client
        .poll_device(CLIENT_ID, &auth.device_code)
        .await
        .unwrap();
    for on in [&a, &b] {
        let me = on
            .client
            .with_token(token.access_token.clone())
            .me()
            .await
            .unwrap();
        assert_eq!(me.username.as_deref(), Some("alice"));
    }

    // The same keys on both; a rotation written through one store (as `keys rotate` would)
    // reaches both JWKS within a second: its audit event reloads every instance's key ring.
    let kids = |set: sponsor_console::protocol::oauth::JwkSet| {
        let mut kids: Vec<String> = set.keys.into_iter().map(|k| k.kid).collect();
        kids.sort();
        kids
    };
    let before = kids(a.client.jwks().await.unwrap());
    assert_eq!(before, kids(b.client.jwks().await.unwrap()));
    let now = chrono::Utc::now();
    let new_kid = rotate_keys(&a.store, &settings(), now).await.unwrap();
    let rotated = Instant::now();
    for on in [&a, &b] {
        let served = loop {
            let served = kids(on.client.jwks().await.unwrap());
            if served.contains(&new_kid) {
                break served;
            }
            assert!(rotated.elapsed() < Duration::from_secs(1), "{served:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(before.iter().all(|k| served.contains(k)), "{served:?}");
        assert_eq!(on.server.state.keys.current_kid(), Some(new_kid.clone()));
    }
    // A token signed with the new key on B is good on A, and the old one still on both.
    let fresh = sign_in(&b.client, "bob").await.access_token;
    for on in [&a, &b] {
        on.client.with_token(fresh.clone()).me().await.unwrap();
        on.client
            .with_token(token.access_token.clone())
            .me()
            .await
            .unwrap();
    }
    stop(a).await;
    stop(b).await;
}
