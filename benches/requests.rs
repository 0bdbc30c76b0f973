//! Requests under load, against a running server on loopback with the fleet simulator as the
//! load generator and a security lead's console connected to `/v1/events`:
//! 1. the most submissions per second the server acknowledges (fleet unthrottled);
//! 2. the delay from submission to the SSE event at the console while the fleet submits at a
//!    steady 200/s (median and p99; the aim is p99 < 50 ms);
//! 3. the state check (`audit verify --state`) over the chain the run wrote (median of 5).
//!
//! Each of the `--runs` runs starts a fresh server (a new SQLite file) and registers a fresh
//! fleet, so every run measures the same thing; the summary gives each figure's median and p99
//! over the runs.
//!
//! Run: `cargo bench --bench requests` (options: `-- --runs 3 --agents 32 --count 4000
//! --rate 200 --seconds 10 --concurrency 32`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sponsor_console::clock::SystemClock;
use sponsor_console::demo::fleet::Fleet;
use sponsor_console::domain::policy::Policy;
use sponsor_console::settings::ServerSettings;
use tokio::sync::Mutex;

mod support;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut runs = support::Runs::from_args();
    for r in 1..=runs.n() {
        runs.begin(r);
        measure(&mut runs).await?;
    }
    runs.summary();
    Ok(())
}

/// One run on a fresh server.
async fn measure(runs: &mut support::Runs) -> anyhow::Result<()> {
    let agents = support::arg("--agents", 32);
    let count = support::arg("--count", 4000);
    let rate = support::arg("--rate", 200);
    let seconds = support::arg("--seconds", 10);
    let concurrency = support::arg("--concurrency", 32);

    // Load, not policy, is measured: approval fatigue would deny most of a benchmark's traffic.
    let mut policy = Policy::shipped()?;
    policy.requests.fatigue_limit = u32::MAX;
    let mut settings = ServerSettings {
        policy: Some(policy),
        ..ServerSettings::default()
    };
    settings.limits.max_agents_per_sponsor = u32::MAX;
    let bench = support::start_server(settings).await?;
    let fleet =
        Arc::new(Fleet::register(&bench.sponsor_client, agents, 11, Arc::new(SystemClock)).await?);
    // Warm every agent's token so token issuance is not part of the figures.
    for a in &fleet.agents {
        fleet.agent_client(a).await?;
    }
    println!(
        "governance-server on {} — {agents} agents, 2 worker threads, fleet and console in the same process",
        bench.server.base_url()
    );

    // 1. Throughput: `count` submissions, `concurrency` in flight.
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for w in 0..concurrency {
        let (fleet, latencies, next) = (fleet.clone(), latencies.clone(), next.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(w as u64);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                match fleet.submit_one(&mut rng, 0.1).await {
                    Ok(s) => latencies.lock().await.push(s.latency),
                    Err(e) => eprintln!("submission failed: {e}"),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = started.elapsed();
    let samples = std::mem::take(&mut *latencies.lock().await);
    anyhow::ensure!(samples.len() == count, "some submissions failed");
    let throughput = support::summarize(samples, wall);
    support::report(
        &format!("submissions, unthrottled ({concurrency} in flight)"),
        &throughput,
    );
    runs.record_summary(
        &format!("submissions, unthrottled ({concurrency} in flight)"),
        &throughput,
    );

    // 2. Submission → SSE event at the console, at a steady rate.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut stream = bench.sponsor_client.events(None).await?;
    let listener = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                if event.event.action == "request.submitted"
                    && let Some(id) = event.event.details["request_id"].as_str()
                {
                    arrivals.lock().await.insert(id.to_owned(), Instant::now());
                }
            }
        })
    };
    let starts: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begun = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (fleet, starts) = (fleet.clone(), starts.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(1_000_000 + i as u64);
            let at = Instant::now();
            match fleet.submit_one(&mut rng, 0.1).await {
                Ok(s) => {
                    starts.lock().await.insert(s.request.id, at);
                }
                Err(e) => eprintln!("submission failed: {e}"),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let achieved = total as f64 / begun.elapsed().as_secs_f64();
    // Let the last events arrive.
    for _ in 0..200 {
        if arrivals.lock().await.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    listener.abort();
    let starts = starts.lock().await;
    let arrivals = arrivals.lock().await;
    let mut delays = Vec::with_capacity(starts.len());
    let mut missing = 0;
    for (id, at) in starts.iter() {
        match arrivals.get(id) {
            Some(seen) => delays.push(seen.saturating_duration_since(*at)),
            None => missing += 1,
        }
    }
    anyhow::ensure!(
        missing == 0,
        "{missing} submissions never reached the console"
    );
    let summary = support::summarize(delays, begun.elapsed());
    println!(
        "{:<44} median {:>9.3} ms   p99 {:>9.3} ms   at {achieved:.0} submissions/s",
        "submission → SSE event at the console",
        summary.median.as_secs_f64() * 1e3,
        summary.p99.as_secs_f64() * 1e3,
    );
    runs.record_ms(
        &format!("submission → SSE at {rate}/s: median"),
        summary.median,
    );
    runs.record_ms(&format!("submission → SSE at {rate}/s: p99"), summary.p99);
    runs.record_rate(&format!("submission → SSE at {rate}/s: achieved"), achieved);

    // 3. The state check (`audit verify --state`) over the chain this run wrote: replay every
    //    event and compare with the tables.
    let mut times = Vec::new();
    let mut head = 0;
    for _ in 0..5 {
        let begun = Instant::now();
        let store = bench.server.state.store.as_ref();
        let report = sponsor_console::server::record::check(store, chrono::Utc::now()).await?;
        times.push(begun.elapsed());
        anyhow::ensure!(report.ok, "{} differences", report.count);
        head = report.head_seq;
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{:<44} median {:>9.3} ms   over {head} events ({:.0} events/s)",
        "state check (replay chain, compare tables)",
        median.as_secs_f64() * 1e3,
        head as f64 / median.as_secs_f64(),
    );
    runs.record_ms("state check (median of 5)", median);
    runs.record("state check: events in the chain", "", 0, head as f64);
    runs.record_rate("state check: events", head as f64 / median.as_secs_f64());
    bench.server.shutdown().await?;
    Ok(())
}
