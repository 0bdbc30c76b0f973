//! Reliability: a thousand concurrent submissions with retries under the same idempotency keys
//! are each stored exactly once; and the real server binary killed with SIGKILL mid-traffic
//! loses nothing it acknowledged, with its audit chain intact after restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::domain::policy::Policy;
use sponsor_console::protocol::requests::RequestStatus;

use crate::common::{
    PASSWORD, TestServer, approve, elevation, query, settings, sign_in, spawn_server,
};

fn relaxed_policy() -> Policy {
    let mut policy = Policy::shipped().unwrap();
    policy.requests.fatigue_limit = 100_000;
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_submissions_with_retries_are_each_stored_once() {
    let mut s = settings();
    s.policy = Some(relaxed_policy());
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    let mut bots = Vec::new();
    for i in 0..10 {
        let (key, _) = t.agent(&alice, &format!("bot-{i}"), &[]).await;
        bots.push(t.as_agent(&key).await);
    }
    let bots = Arc::new(bots);
    // Each submission goes out twice at once (a client retrying after a timeout), then once
    // more afterwards.
    let results: Vec<(String, Vec<String>)> = futures::stream::iter(0..1000)
        .map(|i| {
            let bots = bots.clone();
            async move {
                let bot = &bots[i % bots.len()];
                let body = elevation(&[&format!("read:crm:item-{i}")], 3600);
                let key = format!("submit-{i}");
                let (a, b) = tokio::join!(
                    bot.request_elevation(&body, Some(&key)),
                    bot.request_elevation(&body, Some(&key))
                );
                let c = bot.request_elevation(&body, Some(&key)).await;
                let ids = [a, b, c]
                    .into_iter()
                    .map(|r| {
                        r.map(|r| r.id)
                            .unwrap_or_else(|e| panic!("submission {i}: {e}"))
                    })
                    .collect();
                (key, ids)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut by_key: HashMap<String, String> = HashMap::new();
    for (key, ids) in &results {
        assert!(ids.iter().all(|id| id == &ids[0]), "{key}: {ids:?}");
        by_key.insert(key.clone(), ids[0].clone());
    }
    let acknowledged: HashSet<&String> = by_key.values().collect();
    assert_eq!(acknowledged.len(), 1000);
    let stored = alice
        .requests(&query("status=all&limit=10000"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1000, "each exactly once");
    let stored_ids: HashSet<&String> = stored.iter().map(|r| &r.id).collect();
    assert_eq!(stored_ids, acknowledged);
    let sam = t.as_user("sam").await;
    let report = sam.audit_verify(None).await.unwrap();
    assert!(report.ok, "{report:?}");
}

/// How many times the server is killed under load.
const KILLS: usize = 5;

/// Bots submit and a sponsor approves as fast as they can; returns when the server dies
/// under them, with what it acknowledged.
async fn traffic_until_killed(
    server: &mut tokio::process::Child,
    client: &ApiClient,
    keys: &[AgentKey],
) -> (Vec<String>, Vec<String>) {
    let alice = client.with_token(sign_in(client, "alice").await.access_token);
    let mut bots = Vec::new();
    for key in keys {
        let a = key
            .assertion(
                &client.token_endpoint(),
                chrono::Utc::now(),
                chrono::Duration::seconds(60),
            )
            .unwrap();
        let token = client.client_credentials(&a, None).await.unwrap();
        bots.push(client.with_token(token.access_token));
    }
    let acked_requests = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let acked_approvals = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for (n, bot) in bots.into_iter().enumerate() {
        let (acked, progress) = (acked_requests.clone(), progress.clone());
        tasks.spawn(async move {
            for i in 0.. {
                let body = elevation(&[&format!("read:crm:{n}-{i}")], 3600);
                match bot.request_elevation(&body, None).await {
                    Ok(r) => {
                        acked.lock().unwrap().push(r.id);
                        progress.notify_one();
                    }
                    Err(_) => break,
                }
            }
        });
    }
    {
        let (decided, progress) = (acked_approvals.clone(), progress.clone());
        tasks.spawn(async move {
            loop {
                let Ok(pending) = alice.requests(&query("status=pending&limit=20")).await else {
                    break;
                };
                for r in pending {
                    match alice.decide(&r.id, &approve(None, None)).await {
                        Ok(done) if done.status == RequestStatus::Approved => {
                            decided.lock().unwrap().push(done.id);
                            progress.notify_one();
                        }
                        Ok(_) => {}
                        Err(e) if e.status().is_some() => {}
                        Err(_) => return,
                    }
                }
            }
        });
    }
    let built_up = async {
        loop {
            let (r, d) = (
                acked_requests.lock().unwrap().len(),
                acked_approvals.lock().unwrap().len(),
            );
            if r >= 150 && d >= 20 {
                break;
            }
            progress.notified().await;
        }
    };
    // A guard, not a wait: traffic normally builds up in about a second.
    tokio::time::timeout(std::time::Duration::from_secs(120), built_up)
        .await
        .expect("traffic never built up");
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    while tasks.join_next().await.is_some() {}
    let requests = acked_requests.lock().unwrap().clone();
    let approvals = acked_approvals.lock().unwrap().clone();
    (requests, approvals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_traffic_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let hash = sponsor_console::server::passwords::hash_password(PASSWORD).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        sponsor_console::domain::policy::SHIPPED
            .replace("fatigue_limit = 5", "fatigue_limit = 100000"),
    )
    .unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndatabase = \"{}\"\npolicy = \"{}\"\n\n\
             [[sponsors]]\nusername = \"alice\"\nroles = [\"sponsor\"]\npassword_hash = \"{hash}\"\n",
            dir.path().join("g.db").display(),
            policy.display()
        ),
    )
    .unwrap();
    let (mut server, base) = spawn_server(&config).await;
    let client = ApiClient::new(&base).unwrap();
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let mut keys = Vec::new();
    for i in 0..4 {
        let key = AgentKey::generate();
        alice
            .register_agent(
                &sponsor_console::protocol::agents::RegisterAgent {
                    public_key: key.public_key(),
                    name: format!("bot-{i}"),
                    capabilities: vec![],
                    entra_object_id: None,
                    model: None,
                    runtime: None,
                },
                None,
            )
            .await
            .unwrap();
        keys.push(key);
    }

    // Kill it under load again and again; after each restart, everything acknowledged in
    // every round so far is there.
    let mut acked_requests = Vec::new();
    let mut acked_approvals = Vec::new();
    let mut restarts = Vec::new();
    let mut client = client;
    for _ in 0..KILLS {
        let (requests, approvals) = traffic_until_killed(&mut server, &client, &keys).await;
        acked_requests.extend(requests);
        acked_approvals.extend(approvals);
        let started = std::time::Instant::now();
        let (next, base) = spawn_server(&config).await;
        restarts.push(started.elapsed());
        server = next;
        client = ApiClient::new(&base).unwrap();
        let alice = client.with_token(sign_in(&client, "alice").await.access_token);
        // Lists other than pending come in one page: ask for more than there can be, and
        // make sure the page was not full.
        let stored: HashMap<String, RequestStatus> = alice
            .requests(&query("status=all&limit=10000"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.status))
            .collect();
        assert!(stored.len() < 10_000, "the page held them all");
        for id in &acked_requests {
            assert!(
                stored.contains_key(id),
                "acknowledged request {id} was lost"
            );
        }
        for id in &acked_approvals {
            assert_eq!(
                stored.get(id),
                Some(&RequestStatus::Approved),
                "acknowledged approval of {id} was lost"
            );
        }
    }
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let report = alice.audit_verify(None).await.unwrap();
    assert!(report.ok, "{report:?}");
    // And the tables still hold exactly what the chain records.
    let state = alice.check_audit_state().await.unwrap();
    assert!(state.ok, "{} differences after the kills", state.count);
    restarts.sort();
    eprintln!(
        "killed {KILLS} times mid-traffic: {} acknowledged requests and {} acknowledged approvals, \
         all present; chain of {} events verifies and agrees with the tables; restart (spawn to \
         listening) median {:?}",
        acked_requests.len(),
        acked_approvals.len(),
        report.count,
        restarts[restarts.len() / 2]
    );
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}
