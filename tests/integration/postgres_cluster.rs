//! Three real `governance-server` processes on one PostgreSQL database, behind no load balancer
//! but the test itself, which spreads 1,000 submissions, decisions and suspensions over them
//! and SIGKILLs one in the middle. A call that dies with its instance is retried on another,
//! as a load balancer or a client would, with the same idempotency key. Afterwards: nothing
//! acknowledged is lost, no submission is stored twice, every idempotent retry returns the first
//! answer, every decision stands as acknowledged, the audit chain verifies, and every SSE
//! subscriber (the one on the killed instance resumes on another with `Last-Event-ID`, as the
//! console does) saw every event once, in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::client::{ApiClient, ClientError, EventStream};
use sponsor_console::protocol::agents::RegisterAgent;
use sponsor_console::protocol::audit::AuditEvent;
use sponsor_console::protocol::requests::{Request, RequestStatus};
use tokio::process::Child;
use tokio::sync::Mutex;

use crate::common::postgres::Database;
use crate::common::{CLIENT_ID, PASSWORD, approve, browser, deny, elevation, query, spawn_server};

/// The public issuer every instance names, as behind one load balancer.
const ISSUER: &str = "https://governance.test";
const AGENTS: usize = 12;
/// Agents that are suspended along the way (the last ones registered).
const SUSPENDED: usize = 3;
const SUBMISSIONS: usize = 600;
/// Operations in all: submissions, then decisions on them, and the suspensions.
const OPERATIONS: usize = 1_000;
/// The instance killed, and after how many finished operations.
const VICTIM: usize = 2;
const KILL_AFTER: usize = 500;

struct Instance {
    base: String,
    process: Mutex<Option<Child>>,
    dead: AtomicBool,
    /// Calls sent to it and not yet answered.
    in_flight: AtomicUsize,
}

struct Cluster {
    instances: Vec<Instance>,
    /// A client per instance with no token; `with_token` gives each caller its own.
    clients: Vec<ApiClient>,
    /// Calls that went to another instance after theirs was killed under them.
    retried: AtomicUsize,
}

impl Cluster {
    async fn start(config: &std::path::Path) -> Self {
        let mut instances = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (child, base) = spawn_server(config).await;
            clients.push(ApiClient::new(&base).unwrap());
            instances.push(Instance {
                base,
                process: Mutex::new(Some(child)),
                dead: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
            });
        }
        Self {
            instances,
            clients,
            retried: AtomicUsize::new(0),
        }
    }

    /// SIGKILLs instance `i` and waits until it is gone.
    async fn kill(&self, i: usize) {
        let instance = &self.instances[i];
        instance.dead.store(true, Ordering::SeqCst);
        let mut child = instance.process.lock().await.take().expect("running");
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "{status}");
    }

    /// Instance `i`, or the next one still alive.
    fn live(&self, i: usize) -> usize {
        (0..3)
            .map(|k| (i + k) % 3)
            .find(|&k| !self.instances[k].dead.load(Ordering::SeqCst))
            .expect("an instance alive")
    }

    /// Runs `call` on instance `first`, or the next live one; a call that could not reach its
    /// instance (killed under it) goes to the next, as a load balancer retries. Says whether
    /// it was retried so.
    async fn call<T, F, Fut>(
        &self,
        first: usize,
        token: &str,
        call: F,
    ) -> (Result<T, ClientError>, bool)
    where
        F: Fn(ApiClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut at = self.live(first);
        for attempt in 0..6 {
            let instance = &self.instances[at];
            instance.in_flight.fetch_add(1, Ordering::SeqCst);
            let answer = call(self.clients[at].with_token(token)).await;
            instance.in_flight.fetch_sub(1, Ordering::SeqCst);
            if attempt > 0 {
                self.retried.fetch_add(1, Ordering::SeqCst);
            }
            match answer {
                Err(ClientError::Http(e)) => {
                    assert!(
                        self.instances[at].dead.load(Ordering::SeqCst),
                        "a live instance ({}) could not be reached: {e}",
                        self.instances[at].base
                    );
                    at = self.live(at + 1);
                }
                other => return (other, attempt > 0),
            }
        }
        panic!("no instance answered");
    }
}

/// What one SSE subscriber saw, in arrival order.
type Seen = Arc<Mutex<Vec<AuditEvent>>>;

/// Follows `/v1/events` from `after` on instance `on`; when the stream ends because its instance
/// died, resumes on the next live one after the last event it saw.
fn subscribe(cluster: Arc<Cluster>, token: String, on: usize, after: i64) -> Seen {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let mut at = on;
        let mut last = after;
        loop {
            let mut stream: EventStream = match cluster.clients[at]
                .with_token(token.as_str())
                .events(Some(last))
                .await
            {
                Ok(stream) => stream,
                Err(_) => {
                    at = cluster.live(at + 1);
                    continue;
                }
            };
            while let Some(Ok(event)) = stream.next().await {
                last = event.event.seq;
                out.lock().await.push(event);
            }
            if !cluster.instances[at].dead.load(Ordering::SeqCst) {
                // Ended for another reason (a server stopping at the end of the test).
                return;
            }
            at = cluster.live(at + 1);
        }
    });
    seen
}

async fn sign_in(cluster: &Cluster, username: &str, start: usize) -> String {
    // Started on one instance, approved in the browser on the next, collected on the third.
    let [a, b, c] = [start % 3, (start + 1) % 3, (start + 2) % 3].map(|i| &cluster.clients[i]);
    let auth = a.device_authorization(CLIENT_ID, None).await.unwrap();
    let outcome = browser(b, &auth.user_code, username, PASSWORD, "approve").await;
    assert_eq!(outcome.status, reqwest::StatusCode::OK, "{}", outcome.body);
    c.poll_device(CLIENT_ID, &auth.device_code)
        .await
        .unwrap()
        .access_token
}

fn config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let hash = sponsor_console::server::passwords::hash_password(PASSWORD).unwrap();
    // Load, not policy, is tested: without this, approval fatigue would deny most submissions.
    let policy = include_str!("../../config/policy.default.toml")
        .replace("fatigue_limit = 5\n", "fatigue_limit = 100000\n");
    assert!(policy.contains("fatigue_limit = 100000"));
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let mut text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nissuer = \"{ISSUER}\"\ndatabase = \"{url}\"\n\
         policy = \"{}\"\n\n",
        policy_path.display()
    );
    for (name, role) in [
        ("alice", "sponsor"),
        ("sam", "security-lead"),
        ("otto", "on-call"),
    ] {
        text.push_str(&format!(
            "[[sponsors]]\nusername = \"{name}\"\nroles = [\"{role}\"]\npassword_hash = \"{hash}\"\n\n"
        ));
    }
    let path = dir.join("server.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One operation of the workload.
#[derive(Clone, Copy)]
enum Op {
    Submit(usize),
    Decide(usize),
    Suspend(usize),
}

/// The 1,000 operations: submissions, each followed a little later by its decision while
/// submissions go on, and a suspension early, in the middle and late.
fn workload() -> Vec<Op> {
    let decisions = OPERATIONS - SUBMISSIONS - SUSPENDED;
    let mut ops = Vec::with_capacity(OPERATIONS);
    let (mut submitted, mut decided) = (0, 0);
    while submitted < SUBMISSIONS || decided < decisions {
        // Three submissions for every two decisions, each decision 40 submissions behind.
        let decide = decided < decisions
            && decided + 40 < submitted
            && (submitted == SUBMISSIONS || ops.len() % 5 >= 3);
        if decide {
            ops.push(Op::Decide(decided));
            decided += 1;
        } else {
            ops.push(Op::Submit(submitted));
            submitted += 1;
        }
    }
    for (k, at) in [100, KILL_AFTER - 10, 800].into_iter().enumerate() {
        ops.insert(at, Op::Suspend(AGENTS - SUSPENDED + k));
    }
    ops
}

/// The agent that makes submission `n`: any but those to be suspended.
fn agent_of(n: usize) -> usize {
    n % (AGENTS - SUSPENDED)
}

/// What a submission's answer was, as first acknowledged.
#[derive(Default)]
struct Outcomes {
    submitted: HashMap<usize, Request>,
    decided: HashMap<usize, RequestStatus>,
    suspended: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_one_database_lose_nothing_when_one_is_killed() {
    let database = match Database::create().await {
        Ok(database) => database,
        Err(why) => {
            let case =
                "postgres_cluster::three_servers_on_one_database_lose_nothing_when_one_is_killed";
            return crate::conformance::skipped(case, &why);
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &database.url);
    let cluster = Arc::new(Cluster::start(&config).await);

    let alice = sign_in(&cluster, "alice", 0).await;
    let sam = sign_in(&cluster, "sam", 1).await;
    let otto = sign_in(&cluster, "otto", 2).await;

    // The agents, registered across the instances, and a token each from another instance.
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let key = AgentKey::generate();
        let body = RegisterAgent {
            public_key: key.public_key(),
            name: format!("bot-{i}"),
            capabilities: vec![],
            entra_object_id: None,
            model: None,
            runtime: None,
        };
        let agent = cluster.clients[i % 3]
            .with_token(alice.as_str())
            .register_agent(&body, Some(&format!("register-{i}")))
            .await
            .unwrap();
        let assertion = key
            .assertion(
                &format!("{ISSUER}/oauth2/token"),
                chrono::Utc::now(),
                chrono::Duration::seconds(60),
            )
            .unwrap();
        let token = cluster.clients[(i + 1) % 3]
            .client_credentials(&assertion, None)
            .await
            .unwrap()
            .access_token;
        agents.push((agent.did, token));
    }
    let agents = Arc::new(agents);

    // A security lead's stream on every instance, from the head before the workload.
    let head = cluster.clients[0]
        .with_token(sam.as_str())
        .audit_tail(1)
        .await
        .unwrap()[0]
        .event
        .seq;
    let streams: Vec<Seen> = (0..3)
        .map(|i| subscribe(cluster.clone(), sam.clone(), i, head))
        .collect();

    // The workload, 16 calls in flight, round-robin over the instances; one is killed midway.
    let ops = workload();
    assert_eq!(ops.len(), OPERATIONS);
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let finished = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (cluster, finished) = (cluster.clone(), finished.clone());
        tokio::spawn(async move {
            // Midway, and while calls are in flight on it.
            while finished.load(Ordering::SeqCst) < KILL_AFTER
                || cluster.instances[VICTIM].in_flight.load(Ordering::SeqCst) < 2
            {
                tokio::task::yield_now().await;
            }
            cluster.kill(VICTIM).await;
        })
    };
    futures::stream::iter(ops.into_iter().enumerate())
        .map(|(k, op)| {
            let (cluster, outcomes, agents, finished) = (
                cluster.clone(),
                outcomes.clone(),
                agents.clone(),
                finished.clone(),
            );
            let (alice, otto) = (alice.clone(), otto.clone());
            async move {
                run(&cluster, &outcomes, &agents, &alice, &otto, k, op).await;
                finished.fetch_add(1, Ordering::SeqCst);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    killer.await.unwrap();
    assert!(cluster.instances[VICTIM].dead.load(Ordering::SeqCst));
    // The kill came while calls were in flight on the victim: they were cut off, and retried.
    let retried = cluster.retried.load(Ordering::SeqCst);
    eprintln!("{retried} calls cut off by the kill were retried on a survivor");
    assert!(retried > 0);
    let outcomes = outcomes.lock().await;
    assert_eq!(outcomes.submitted.len(), SUBMISSIONS);
    assert_eq!(outcomes.suspended.len(), SUSPENDED);

    // Nothing acknowledged is lost, and no submission is stored twice.
    let sam_a = cluster.clients[0].with_token(sam.as_str());
    let stored = sam_a
        .requests(&query("status=all&scope=all&limit=10000"))
        .await
        .unwrap();
    let by_id: HashMap<&str, &Request> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
    assert_eq!(stored.len(), SUBMISSIONS, "one request per idempotency key");
    for (n, first) in &outcomes.submitted {
        let now = by_id
            .get(first.id.as_str())
            .unwrap_or_else(|| panic!("acknowledged submission {n} ({}) is not stored", first.id));
        let expected = outcomes
            .decided
            .get(n)
            .copied()
            .unwrap_or(RequestStatus::Pending);
        assert_eq!(now.status, expected, "submission {n}");
    }
    assert_eq!(outcomes.decided.len(), OPERATIONS - SUBMISSIONS - SUSPENDED);

    // Every idempotent retry, on either survivor, returns the first answer.
    for (n, first) in &outcomes.submitted {
        let (did, token) = &agents[agent_of(*n)];
        assert_eq!(&first.agent_did, did);
        let again = cluster.clients[*n % 2]
            .with_token(token.as_str())
            .request_elevation(&submission(*n), Some(&format!("submit-{n}")))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(first).unwrap(),
            "submission {n} replayed"
        );
    }

    // The suspended agents are refused by both survivors; the others are not.
    for (i, (did, token)) in agents.iter().enumerate() {
        for at in [0, 1] {
            let me = cluster.clients[at].with_token(token.as_str()).me().await;
            if outcomes.suspended.contains(did) {
                assert_eq!(
                    me.unwrap_err().status(),
                    Some(reqwest::StatusCode::UNAUTHORIZED),
                    "bot-{i} on {at}"
                );
            } else {
                me.unwrap_or_else(|e| panic!("bot-{i} on {at}: {e}"));
            }
        }
    }

    // One chain, no fork, verified on both survivors.
    for at in [0, 1] {
        let report = cluster.clients[at]
            .with_token(sam.as_str())
            .audit_verify(None)
            .await
            .unwrap();
        assert!(report.ok, "{report:?}");
    }

    // Every stream saw every event after `head`, once, in order, as the chain has it.
    let chain = sam_a.audit_export().await.unwrap();
    let expected: Vec<&AuditEvent> = chain.iter().filter(|e| e.event.seq > head).collect();
    let last = expected.last().unwrap().event.seq;
    assert!(expected.len() >= OPERATIONS, "{} events", expected.len());
    for (i, seen) in streams.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.lock().await.last().map(|e| e.event.seq) != Some(last) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stream {i} stopped at {:?} of {last}",
                seen.lock().await.last().map(|e| e.event.seq)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.lock().await;
        let seqs: Vec<i64> = seen.iter().map(|e| e.event.seq).collect();
        let want: Vec<i64> = expected.iter().map(|e| e.event.seq).collect();
        assert_eq!(seqs, want, "stream {i}: once each, in order");
        let hashes: BTreeMap<i64, &str> = seen
            .iter()
            .map(|e| (e.event.seq, e.hash.as_str()))
            .collect();
        for e in &expected {
            assert_eq!(
                hashes[&e.event.seq], e.hash,
                "stream {i}, seq {}",
                e.event.seq
            );
        }
    }
}

fn submission(n: usize) -> sponsor_console::protocol::requests::ElevationBody {
    elevation(&[&format!("read:crm:item-{n}")], 3600)
}

async fn run(
    cluster: &Cluster,
    outcomes: &Mutex<Outcomes>,
    agents: &[(String, String)],
    alice: &str,
    otto: &str,
    k: usize,
    op: Op,
) {
    match op {
        Op::Submit(n) => {
            let (_, token) = &agents[agent_of(n)];
            let key = format!("submit-{n}");
            let body = submission(n);
            let (answer, _) = cluster
                .call(k, token, |c| {
                    let (body, key) = (body.clone(), key.clone());
                    async move { c.request_elevation(&body, Some(&key)).await }
                })
                .await;
            let answer = answer.unwrap_or_else(|e| panic!("submission {n}: {e}"));
            outcomes.lock().await.submitted.insert(n, answer);
        }
        Op::Decide(n) => {
            // The submission it decides was acknowledged 40 operations earlier; with 16 in
            // flight it may still be on its way.
            let id = loop {
                if let Some(r) = outcomes.lock().await.submitted.get(&n) {
                    break r.id.clone();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let (body, status) = if n % 10 == 9 {
                (deny(), RequestStatus::Denied)
            } else {
                (approve(Some(1800), None), RequestStatus::Approved)
            };
            let (answer, retried) = cluster
                .call(k, alice, |c| {
                    let (id, body) = (id.clone(), body.clone());
                    async move { c.decide(&id, &body).await }
                })
                .await;
            match answer {
                Ok(request) => assert_eq!(request.status, status, "decision {n}"),
                // Decided by the attempt that died with its instance: the retry is told so,
                // and the check at the end finds the decision stored.
                Err(e) if retried && e.status() == Some(reqwest::StatusCode::CONFLICT) => {}
                Err(e) => panic!("decision {n}: {e}"),
            }
            outcomes.lock().await.decided.insert(n, status);
        }
        Op::Suspend(i) => {
            let (did, _) = &agents[i];
            let (answer, retried) = cluster
                .call(k, otto, |c| {
                    let did = did.clone();
                    async move { c.suspend(&did, "incident drill", true).await }
                })
                .await;
            match answer {
                Ok(_) => {}
                Err(e) if retried && e.status() == Some(reqwest::StatusCode::CONFLICT) => {}
                Err(e) => panic!("suspending bot-{i}: {e}"),
            }
            outcomes.lock().await.suspended.push(did.clone());
        }
    }
}
