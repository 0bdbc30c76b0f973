//! Token issuance (client credentials with `private_key_jwt`) and introspection against a
//! running governance server on loopback, with concurrent clients. Also the in-memory JWT
//! validation every `/v1` call does. Prints medians, p99 and throughput.
//!
//! Run: `cargo bench --bench tokens` (options: `-- --agents 32 --requests 4000 --concurrency 16`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::clock::SystemClock;
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::oauth::{AccessClaims, SubjectKind};
use sponsor_console::server::passwords::hash_password;
use sponsor_console::server::start;
use sponsor_console::server::store::{NewAgent, SponsorUpsert};
use sponsor_console::settings::ServerSettings;

struct Options {
    agents: usize,
    requests: usize,
    concurrency: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        agents: get("--agents", 32),
        requests: get("--requests", 4000),
        concurrency: get("--concurrency", 16),
    }
}

struct Summary {
    median: Duration,
    p99: Duration,
    per_second: f64,
}

fn summarize(mut samples: Vec<Duration>, wall: Duration) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Summary {
        median: at(0.5),
        p99: at(0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

fn report(name: &str, s: &Summary) {
    println!(
        "{name:<44} median {:>9.3} ms   p99 {:>9.3} ms   {:>9.0} /s",
        s.median.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.per_second
    );
}

/// Runs `total` calls of `call` with `concurrency` workers; returns per-call latencies.
async fn load<F, Fut>(total: usize, concurrency: usize, call: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                call(i).await;
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    (all, started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(opts))
}

async fn run(opts: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = start(
        ServerSettings::default(),
        &dir.path().join("bench.db"),
        listener,
        Arc::new(SystemClock),
    )
    .await?;
    let state = server.state.clone();
    let now = Utc::now();
    let sponsor = state
        .store
        .upsert_sponsor(
            &SponsorUpsert {
                username: "bench".into(),
                display_name: "Bench".into(),
                roles: vec![Role::Sponsor, Role::SecurityLead],
                password_hash: hash_password("bench-password-123")?,
                source: "cli".into(),
            },
            Actor::system(),
            now,
        )
        .await?;
    let mut keys = Vec::new();
    for i in 0..opts.agents {
        let key = AgentKey::generate();
        state
            .store
            .register_agent(
                NewAgent {
                    did: key.did(),
                    name: format!("bench-agent-{i}"),
                    public_key: key.public_key(),
                    capabilities: vec!["read:crm:*".into(), "send:email".into()],
                    sponsor_id: sponsor.id.clone(),
                    entra_object_id: None,
                    model: None,
                    runtime: None,
                    max_agents_per_sponsor: u32::MAX,
                },
                None,
                now,
            )
            .await?;
        keys.push(key);
    }
    // The introspecting caller: a sponsor token signed by the server's own key ring.
    let caller_claims = AccessClaims {
        iss: state.issuer.clone(),
        sub: sponsor.id.clone(),
        aud: state.settings.tokens.audience.clone(),
        exp: now.timestamp() + 3600,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "governance".into(),
        client_id: "sponsor-console".into(),
        kind: SubjectKind::Sponsor,
        roles: vec!["sponsor".into(), "security-lead".into()],
        preferred_username: Some("bench".into()),
    };
    let caller_token = state.keys.sign(&caller_claims)?;
    let api = ApiClient::new(&server.base_url())?;

    println!(
        "governance-server on {} — {} agents, {} requests per run, {} concurrent clients, 2 worker threads",
        server.base_url(),
        opts.agents,
        opts.requests,
        opts.concurrency
    );

    // Warm up connections and caches.
    for key in keys.iter().take(4) {
        let a = key.assertion(
            &api.token_endpoint(),
            Utc::now(),
            chrono::Duration::seconds(60),
        )?;
        api.client_credentials(&a, None).await?;
    }

    // 1. Client credentials: sign an assertion, verify it, consume its jti, store the token,
    //    append the audit event — one transaction per token.
    let issued = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(opts.requests)));
    let (samples, wall) = {
        let (api, keys, issued) = (api.clone(), Arc::new(keys), issued.clone());
        load(opts.requests, opts.concurrency, move |i| {
            let (api, keys, issued) = (api.clone(), keys.clone(), issued.clone());
            async move {
                let key = &keys[i % keys.len()];
                let assertion = key
                    .assertion(
                        &api.token_endpoint(),
                        Utc::now(),
                        chrono::Duration::seconds(60),
                    )
                    .unwrap_or_default();
                match api.client_credentials(&assertion, None).await {
                    Ok(t) => issued.lock().await.push(t.access_token),
                    Err(e) => eprintln!("issue failed: {e}"),
                }
            }
        })
        .await
    };
    let issuance = summarize(samples, wall);
    report("token issuance (client credentials)", &issuance);
    let tokens = Arc::new(std::mem::take(&mut *issued.lock().await));
    anyhow::ensure!(tokens.len() == opts.requests, "some issuances failed");

    // 2. Introspection: in-memory JWT check, then one primary-key lookup.
    let introspections = opts.requests * 4;
    let (samples, wall) = {
        let (api, tokens) = (api.with_token(caller_token.clone()), tokens.clone());
        load(introspections, opts.concurrency, move |i| {
            let (api, tokens) = (api.clone(), tokens.clone());
            async move {
                match api.introspect(&tokens[i % tokens.len()]).await {
                    Ok(r) if r.active => {}
                    Ok(_) => eprintln!("introspection said inactive"),
                    Err(e) => eprintln!("introspection failed: {e}"),
                }
            }
        })
        .await
    };
    let introspection = summarize(samples, wall);
    report("introspection (RFC 7662)", &introspection);

    // 3. In-memory JWT validation, as every /v1 call does (no database).
    let mut samples = Vec::with_capacity(20_000);
    let started = Instant::now();
    for i in 0..20_000 {
        let token = &tokens[i % tokens.len()];
        let t = Instant::now();
        let ok = state
            .keys
            .verify_access(
                token,
                &state.issuer,
                &state.settings.tokens.audience,
                Utc::now(),
            )
            .is_ok();
        samples.push(t.elapsed());
        anyhow::ensure!(ok, "validation failed");
    }
    let validation = summarize(samples, started.elapsed());
    println!(
        "{:<44} median {:>9.1} µs   p99 {:>9.1} µs   {:>9.0} /s (one thread)",
        "JWT validation in memory (EdDSA)",
        validation.median.as_secs_f64() * 1e6,
        validation.p99.as_secs_f64() * 1e6,
        validation.per_second
    );
    server.shutdown().await?;
    Ok(())
}
