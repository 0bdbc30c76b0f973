//! Token issuance (client credentials with `private_key_jwt`) and introspection against a
//! running governance server on loopback, with concurrent clients. Also the in-memory JWT
//! validation every `/v1` call does, and the server's own `/healthz` with the same clients, for
//! the ratios the performance goals are set in. Prints medians, p99 and throughput.
//!
//! One server and its agents serve every run; each run issues `--requests` fresh tokens,
//! introspects them `4 × --requests` times, drives `/healthz` as often, and validates 20,000
//! tokens in memory. The summary gives each figure's median and p99 over the `--runs`.
//!
//! Run: `cargo bench --bench tokens` (options: `-- --runs 3 --agents 32 --requests 4000
//! --concurrency 16`).
//! `-- --soak 600` then issues tokens without pause for 600 s and prints the rate of each
//! minute, to show whether issuance stays flat as the tables grow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::server::store::NewAgent;
use sponsor_console::settings::ServerSettings;

mod support;

struct Options {
    agents: usize,
    requests: usize,
    concurrency: usize,
    /// Seconds of continuous issuance after the timed runs (0: none).
    soak: usize,
}

fn options() -> Options {
    Options {
        agents: support::arg("--agents", 32),
        requests: support::arg("--requests", 4000),
        concurrency: support::arg("--concurrency", 16),
        soak: support::arg("--soak", 0),
    }
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
    let bench = support::start_server(ServerSettings::default()).await?;
    let (server, sponsor) = (&bench.server, &bench.sponsor);
    let state = server.state.clone();
    let now = Utc::now();
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
    let keys = Arc::new(keys);
    // The introspecting caller: the bench sponsor.
    let caller = bench.sponsor_client.clone();
    let api = caller.anonymous();

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

    let mut runs = support::Runs::from_args();
    let mut healthz_per_second = 0.0;
    for r in 1..=runs.n() {
        runs.begin(r);
        // 1. Client credentials: sign an assertion, verify it, consume its jti, store the token,
        //    append the audit event — one transaction per token.
        let issued = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(opts.requests)));
        let (samples, wall) = {
            let (api, keys, issued) = (api.clone(), keys.clone(), issued.clone());
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
        let issuance = support::summarize(samples, wall);
        support::report("token issuance (client credentials)", &issuance);
        runs.record_summary("token issuance", &issuance);
        let tokens = Arc::new(std::mem::take(&mut *issued.lock().await));
        anyhow::ensure!(tokens.len() == opts.requests, "some issuances failed");

        // 2. Introspection: in-memory JWT check, then one primary-key lookup.
        let introspections = opts.requests * 4;
        let (samples, wall) = {
            let (api, tokens) = (caller.clone(), tokens.clone());
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
        let introspection = support::summarize(samples, wall);
        support::report("introspection (RFC 7662)", &introspection);
        runs.record_summary("introspection", &introspection);

        // The same clients against the server's own /healthz: the machine's ceiling for one HTTP
        // round trip through this stack, which the goals are ratios of.
        let (samples, wall) = {
            let api = caller.clone();
            load(introspections, opts.concurrency, move |_| {
                let api = api.clone();
                async move {
                    match api.raw(reqwest::Method::GET, "/healthz").send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => eprintln!("healthz answered {}", r.status()),
                        Err(e) => eprintln!("healthz failed: {e}"),
                    }
                }
            })
            .await
        };
        let health = support::summarize(samples, wall);
        support::report("/healthz (same clients)", &health);
        runs.record_rate("/healthz (same clients): rate", health.per_second);
        runs.record(
            "introspection / /healthz",
            "%",
            1,
            100.0 * introspection.per_second / health.per_second,
        );
        runs.record(
            "issuance / /healthz",
            "%",
            2,
            100.0 * issuance.per_second / health.per_second,
        );
        println!(
            "{:<44} introspection {:>5.1}%   issuance {:>5.2}%   (of /healthz throughput)",
            "ratios",
            100.0 * introspection.per_second / health.per_second,
            100.0 * issuance.per_second / health.per_second,
        );

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
        let validation = support::summarize(samples, started.elapsed());
        runs.record_us("JWT validation in memory: median", validation.median);
        runs.record_us("JWT validation in memory: p99", validation.p99);
        runs.record_rate(
            "JWT validation in memory: rate (one thread)",
            validation.per_second,
        );
        println!(
            "{:<44} median {:>9.1} µs   p99 {:>9.1} µs   {:>9.0} /s (one thread)",
            "JWT validation in memory (EdDSA)",
            validation.median.as_secs_f64() * 1e6,
            validation.p99.as_secs_f64() * 1e6,
            validation.per_second
        );
        healthz_per_second = health.per_second;
    }
    runs.summary();
    if opts.soak > 0 {
        soak(&api, &keys, &opts, healthz_per_second).await?;
    }
    bench.server.shutdown().await?;
    Ok(())
}

/// Issues tokens without pause for `opts.soak` seconds; prints each minute's rate (and its
/// share of the `/healthz` rate measured before) and the last minute against the first.
async fn soak(
    api: &sponsor_console::client::ApiClient,
    keys: &Arc<Vec<AgentKey>>,
    opts: &Options,
    healthz_per_second: f64,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let issued = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..opts.concurrency {
        let (api, keys) = (api.clone(), keys.clone());
        let (issued, failed, stop) = (issued.clone(), failed.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[i % keys.len()];
                i += STEP;
                let assertion = key
                    .assertion(
                        &api.token_endpoint(),
                        Utc::now(),
                        chrono::Duration::seconds(60),
                    )
                    .unwrap_or_default();
                match api.client_credentials(&assertion, None).await {
                    Ok(_) => issued.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let minutes = opts.soak.div_ceil(60);
    let mut rates = Vec::with_capacity(minutes);
    let mut before = 0;
    let started = Instant::now();
    for minute in 1..=minutes {
        let until = Duration::from_secs((minute * 60).min(opts.soak) as u64);
        tokio::time::sleep(until.saturating_sub(started.elapsed())).await;
        let now = issued.load(Ordering::Relaxed);
        let seconds = until.as_secs_f64() - ((minute - 1) * 60) as f64;
        let rate = (now - before) as f64 / seconds;
        before = now;
        rates.push(rate);
        println!(
            "soak minute {minute:>2}: {rate:>7.0} issuances/s   {:>5.2}% of /healthz   {now} issued in all",
            100.0 * rate / healthz_per_second
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let (first, last) = (rates.first().copied(), rates.last().copied());
    if let (Some(first), Some(last)) = (first, last) {
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "soak: median {:.0}/s, last minute / first minute {:.2}, {} failures",
            sorted[sorted.len() / 2],
            last / first,
            failed.load(Ordering::Relaxed)
        );
    }
    anyhow::ensure!(failed.load(Ordering::Relaxed) == 0, "some issuances failed");
    Ok(())
}

/// Each soak worker steps through the agents by a prime, so they spread over all of them.
const STEP: usize = 7;
