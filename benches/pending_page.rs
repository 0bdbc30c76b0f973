//! The pending list's default page: `GET /v1/requests?status=pending` (500 rows, the first
//! page a console asks for) against an in-process server holding `--pending` pending requests
//! (5,000 by default, submitted through the API by the fleet simulator with 10% delegations to
//! new children; a first approval is recorded on those that need two). Times the whole HTTP
//! exchange as a client sees it, from sending the request to the last byte of the body. The
//! server is seeded once; each of the `--runs` runs makes `--calls` calls after a warm-up of a
//! tenth as many, and prints their median and p99 and the median per row; the summary gives
//! each figure's median and p99 over the runs. (`--calls` was `--runs` before the benches
//! shared a run count.)
//!
//! Run: `cargo bench --bench pending_page` (options: `-- --runs 3 --pending 5000 --calls 400`).
//!
//! To compare two builds on the same data, give both `--db FILE` (seeded by the first run,
//! only read by later ones; nothing expires for a day) and `--save-page FILE`: the saved
//! bodies must be the same byte for byte.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sponsor_console::clock::SystemClock;
use sponsor_console::demo::fleet::Fleet;
use sponsor_console::domain::policy::Policy;
use sponsor_console::protocol::query::RequestQuery;
use sponsor_console::protocol::requests::{Decision, DecisionBody, RequestList};
use sponsor_console::settings::ServerSettings;

mod support;

/// The server's default page size.
const PAGE: usize = 500;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let pending = support::arg("--pending", 5_000);
    let calls = support::arg("--calls", 400);
    let mut runs = support::Runs::from_args();
    let mut policy = Policy::shipped()?;
    policy.requests.fatigue_limit = u32::MAX;
    // Long enough that none expires while the benchmark runs.
    policy.requests.pending_ttl_seconds = 24 * 3600;
    let mut settings = ServerSettings {
        policy: Some(policy),
        ..ServerSettings::default()
    };
    settings.limits.max_agents_per_sponsor = u32::MAX;
    let db = support::text_arg("--db").map(std::path::PathBuf::from);
    let bench = support::start_server_at(settings, db.as_deref()).await?;
    let seeded = bench.sponsor_client.all_pending(PAGE as u32).await?.len();
    if seeded < pending {
        seed(&bench, pending - seeded).await?;
    }
    // Requests that need two approvals get their first, so pages carry decisions too.
    let all = bench.sponsor_client.all_pending(PAGE as u32).await?;
    let mut halfway = 0;
    for r in all.iter().filter(|r| r.policy.approvals_required > 1) {
        if r.approvals.is_empty() {
            let first = DecisionBody {
                decision: Decision::Approve,
                duration_seconds: None,
                capabilities: None,
                justification: "first of two".into(),
            };
            bench.sponsor_client.decide(&r.id, &first).await?;
        }
        halfway += 1;
    }
    anyhow::ensure!(all.len() == pending, "{} of {pending} pending", all.len());
    println!(
        "governance-server on {} — {pending} pending ({halfway} with one of two approvals), 2 worker threads, client in the same process",
        bench.server.base_url()
    );

    let url = bench.sponsor_client.url("/v1/requests");
    let http = bench.sponsor_client.http().clone();
    let token = bench.sponsor_token.clone();
    let query = RequestQuery {
        status: Some(sponsor_console::protocol::query::StatusFilter::Pending),
        ..RequestQuery::default()
    };
    let page = || {
        let (http, url, token, query) = (&http, &url, &token, &query);
        async move {
            let started = Instant::now();
            let body = http
                .get(url)
                .query(query)
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            anyhow::Ok((started.elapsed(), body))
        }
    };
    let (_, body) = page().await?;
    let list: RequestList = serde_json::from_slice(&body)?;
    anyhow::ensure!(
        list.requests.len() == PAGE,
        "a page of {}",
        list.requests.len()
    );
    let bytes = body.len();
    if let Some(path) = support::text_arg("--save-page") {
        std::fs::write(path, &body)?;
    }
    for r in 1..=runs.n() {
        runs.begin(r);
        for _ in 0..calls / 10 {
            page().await?;
        }
        let mut times: Vec<Duration> = Vec::with_capacity(calls);
        let wall = Instant::now();
        for _ in 0..calls {
            times.push(page().await?.0);
        }
        let summary = support::summarize(times, wall.elapsed());
        let name = format!("GET pending page ({PAGE} rows, {} KB)", bytes / 1000);
        support::report(&name, &summary);
        let per_row = summary.median.as_secs_f64() * 1e6 / PAGE as f64;
        println!("{:<44} median {per_row:>9.2} µs", "per row");
        runs.record_ms(&format!("{name}: median"), summary.median);
        runs.record_ms(&format!("{name}: p99"), summary.p99);
        runs.record("per row (page median / 500)", "µs", 2, per_row);
    }
    runs.summary();
    bench.server.shutdown().await?;
    Ok(())
}

/// Submits `count` requests from a fleet of 32 agents, 16 at a time.
async fn seed(bench: &support::Bench, count: usize) -> anyhow::Result<()> {
    let fleet =
        Arc::new(Fleet::register(&bench.sponsor_client, 32, 5, Arc::new(SystemClock)).await?);
    for a in &fleet.agents {
        fleet.agent_client(a).await?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16u64 {
        let (fleet, next) = (fleet.clone(), next.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(w);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                if let Err(e) = fleet.submit_one(&mut rng, 0.1).await {
                    eprintln!("submission failed: {e}");
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
