//! One instance on SQLite, one on PostgreSQL, three on one PostgreSQL database, measured in one
//! run, each setup started in-process on loopback with a fresh database (a temporary SQLite
//! file, or a schema `t_bench_<uuid>` dropped afterwards) and the fleet simulator as the load:
//! 1. submissions per second, unthrottled, `--concurrency` in flight, spread round-robin over
//!    the instances;
//! 2. decision → SSE event: a sponsor decides pending requests (approve and deny alternately,
//!    delegations denied)
//!    at a steady `--rate` on instance i (round-robin), while a security lead's stream is open
//!    on every instance; the delay from sending the decision to the `request.approved`,
//!    `request.denied` or `request.approval_recorded` event arriving, on the instance that
//!    decided and, where there are several, on each of the others.
//!
//! PostgreSQL is the server `BENCH_DATABASE_URL` names, else `TEST_DATABASE_URL`; without
//! either, only SQLite is measured. Every setup runs `--runs` times (interleaved: each run
//! measures every setup once, each on a fresh database), and the summary gives each figure's
//! median and p99 over the runs, with every run's value.
//!
//! Run: `BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench
//! instances` (options: `-- --agents 32 --count 3000 --concurrency 32 --rate 100 --seconds 10
//! --runs 3`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sponsor_console::client::ApiClient;
use sponsor_console::clock::SystemClock;
use sponsor_console::demo::fleet::Fleet;
use sponsor_console::domain::policy::Policy;
use sponsor_console::protocol::requests::{Decision, DecisionBody, RequestKind, RequestStatus};
use sponsor_console::settings::ServerSettings;
use tokio::sync::Mutex;

mod support;

use support::{Backend, Cluster};

#[derive(Clone, Copy)]
struct Options {
    agents: usize,
    count: usize,
    concurrency: usize,
    rate: usize,
    seconds: usize,
    runs: usize,
}

fn main() -> anyhow::Result<()> {
    let opts = Options {
        agents: support::arg("--agents", 32),
        count: support::arg("--count", 3000),
        concurrency: support::arg("--concurrency", 32),
        rate: support::arg("--rate", 100),
        seconds: support::arg("--seconds", 10),
        runs: support::Runs::from_args().n(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(opts))
}

/// What one run of one setup measured.
#[derive(Clone, Default)]
struct Figures {
    submissions_per_second: f64,
    submission_p99: Duration,
    /// The decisions' achieved rate.
    decisions_per_second: f64,
    /// Decision → event on the instance that decided: median, p99.
    same: Option<(Duration, Duration)>,
    /// Decision → event on each other instance: median, p99.
    other: Option<(Duration, Duration)>,
    /// Events that never arrived, and decisions refused.
    missing: usize,
    errors: usize,
}

async fn run(opts: Options) -> anyhow::Result<()> {
    let mut setups = vec![("SQLite, 1 instance", Backend::Sqlite, 1)];
    match support::postgres_url() {
        Some(url) => {
            setups.push(("PostgreSQL, 1 instance", Backend::Postgres(url.clone()), 1));
            setups.push(("PostgreSQL, 3 instances", Backend::Postgres(url), 3));
        }
        None => println!(
            "neither BENCH_DATABASE_URL nor TEST_DATABASE_URL is set: the PostgreSQL setups are skipped"
        ),
    }
    println!(
        "{} agents, {} submissions with {} in flight, then {} decisions/s for {} s; {} runs; \
         2 worker threads, servers, fleet and consoles in one process",
        opts.agents, opts.count, opts.concurrency, opts.rate, opts.seconds, opts.runs
    );
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); setups.len()];
    let mut runs = support::Runs::new(opts.runs);
    for r in 0..opts.runs {
        runs.begin(r + 1);
        for (s, (name, backend, n)) in setups.iter().enumerate() {
            let f = measure(&opts, backend, *n, (r * 10 + s) as u64).await?;
            println!(
                "run {} {name:<24} {:>6.0} submissions/s (p99 {:>6.1} ms)   decisions at {:>4.0}/s → SSE: same instance {}   other instances {}   missing {} errors {}",
                r + 1,
                f.submissions_per_second,
                ms(f.submission_p99),
                f.decisions_per_second,
                pair(f.same),
                pair(f.other),
                f.missing,
                f.errors
            );
            let sqlite = results[0]
                .get(r)
                .map_or(f.submissions_per_second, |q: &Figures| {
                    q.submissions_per_second
                });
            runs.record_rate(&format!("{name}: submissions"), f.submissions_per_second);
            runs.record(
                &format!("{name}: submissions ÷ SQLite, same run"),
                "",
                2,
                f.submissions_per_second / sqlite,
            );
            runs.record_ms(&format!("{name}: submission p99"), f.submission_p99);
            if let Some((p50, p99)) = f.same {
                runs.record_ms(
                    &format!("{name}: decision → SSE, same instance, median"),
                    p50,
                );
                runs.record_ms(&format!("{name}: decision → SSE, same instance, p99"), p99);
            }
            if let Some((p50, p99)) = f.other {
                runs.record_ms(
                    &format!("{name}: decision → SSE, other instances, median"),
                    p50,
                );
                runs.record_ms(
                    &format!("{name}: decision → SSE, other instances, p99"),
                    p99,
                );
            }
            results[s].push(f);
        }
    }

    runs.summary();
    let (missing, errors): (usize, usize) = results
        .iter()
        .flatten()
        .fold((0, 0), |(m, e), f| (m + f.missing, e + f.errors));
    println!("events missing: {missing}; decisions refused: {errors}");
    anyhow::ensure!(
        missing == 0 && errors == 0,
        "some decisions failed or were not seen"
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pair(p: Option<(Duration, Duration)>) -> String {
    p.map_or_else(
        || "—".to_owned(),
        |(a, b)| format!("{:.1}/{:.1} ms", ms(a), ms(b)),
    )
}

/// Median and p99 of `samples`.
fn quantiles(samples: Vec<Duration>) -> Option<(Duration, Duration)> {
    if samples.is_empty() {
        return None;
    }
    let s = support::summarize(samples, Duration::from_secs(1));
    Some((s.median, s.p99))
}

/// A pending request: its id, and whether it is a delegation.
type Pending = (String, bool);

/// `count` submissions with `concurrency` in flight, the k-th through fleet k mod n: the
/// latencies, the requests still pending, and the wall time.
async fn submit(
    fleets: &[Arc<Fleet>],
    count: usize,
    concurrency: usize,
    seed: u64,
) -> anyhow::Result<(Vec<Duration>, Vec<Pending>, Duration)> {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let pending = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let next = Arc::new(AtomicUsize::new(0));
    let fleets: Arc<Vec<Arc<Fleet>>> = Arc::new(fleets.to_vec());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (fleets, latencies, pending, next) = (
            fleets.clone(),
            latencies.clone(),
            pending.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed * 1000 + w as u64);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                match fleets[k % fleets.len()].submit_one(&mut rng, 0.1).await {
                    Ok(s) => {
                        latencies.lock().await.push(s.latency);
                        if s.request.status == RequestStatus::Pending {
                            let delegation = s.request.kind == RequestKind::Delegation;
                            pending.lock().await.push((s.request.id, delegation));
                        }
                    }
                    Err(e) => eprintln!("submission failed: {e}"),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().await);
    anyhow::ensure!(latencies.len() == count, "some submissions failed");
    let pending = std::mem::take(&mut *pending.lock().await);
    Ok((latencies, pending, wall))
}

async fn measure(
    opts: &Options,
    backend: &Backend,
    n: usize,
    seed: u64,
) -> anyhow::Result<Figures> {
    // Load, not policy, is measured: approval fatigue would deny most of a benchmark's traffic.
    let mut policy = Policy::shipped()?;
    policy.requests.fatigue_limit = u32::MAX;
    let mut settings = ServerSettings {
        policy: Some(policy),
        ..ServerSettings::default()
    };
    settings.limits.max_agents_per_sponsor = u32::MAX;
    let cluster = support::start_cluster(settings, backend, n).await?;
    let figures = measure_on(opts, &cluster, seed).await;
    cluster.shutdown().await?;
    figures
}

async fn measure_on(opts: &Options, cluster: &Cluster, seed: u64) -> anyhow::Result<Figures> {
    let n = cluster.servers.len();
    let sponsors = &cluster.sponsor_clients;
    let first = Fleet::register(&sponsors[0], opts.agents, 11, Arc::new(SystemClock)).await?;
    // Warm every agent's token (on the first instance; every instance accepts it) so token
    // issuance is not part of the figures.
    for a in &first.agents {
        first.agent_client(a).await?;
    }
    let fleets: Vec<Arc<Fleet>> = sponsors.iter().map(|c| Arc::new(first.via(c))).collect();

    // 1. Throughput.
    let (latencies, mut pending, wall) =
        submit(&fleets, opts.count, opts.concurrency, seed).await?;
    let throughput = support::summarize(latencies, wall);
    let total = opts.rate * opts.seconds;
    while pending.len() < total {
        let (_, more, _) =
            submit(&fleets, total - pending.len(), opts.concurrency, seed + 7).await?;
        pending.extend(more);
    }

    // 2. Decision → SSE event, on every instance.
    let mut arrivals = Vec::new();
    let mut listeners = Vec::new();
    for client in sponsors {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
        let mut stream = client.events(None).await?;
        let into = seen.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                let action = event.event.action.as_str();
                if matches!(
                    action,
                    "request.approved" | "request.denied" | "request.approval_recorded"
                ) && let Some(id) = event.event.details["request_id"].as_str()
                {
                    into.lock().await.insert(id.to_owned(), Instant::now());
                }
            }
        }));
        arrivals.push(seen);
    }
    let decided: Arc<Mutex<Vec<(String, Instant, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let begun = Instant::now();
    for (k, (id, delegation)) in pending.into_iter().take(total).enumerate() {
        tick.tick().await;
        let i = k % n;
        let (client, decided, errors): (ApiClient, _, _) =
            (sponsors[i].clone(), decided.clone(), errors.clone());
        tasks.spawn(async move {
            // Approvals and denials alternate; delegations are denied, as approving one can be
            // refused once denials have lowered the parent's trust below the child's.
            let body = DecisionBody {
                decision: if k % 2 == 0 && !delegation {
                    Decision::Approve
                } else {
                    Decision::Deny
                },
                duration_seconds: None,
                capabilities: None,
                justification: "benchmark decision".into(),
            };
            let at = Instant::now();
            match client.decide(&id, &body).await {
                Ok(_) => decided.lock().await.push((id, at, i)),
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("decision failed: {e}");
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let decisions_per_second = total as f64 / begun.elapsed().as_secs_f64();
    let decided = std::mem::take(&mut *decided.lock().await);
    // Let the last events arrive.
    for _ in 0..500 {
        let mut all = true;
        for seen in &arrivals {
            all &= seen.lock().await.len() >= decided.len();
        }
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for l in &listeners {
        l.abort();
    }
    let (mut same, mut other, mut missing) = (Vec::new(), Vec::new(), 0);
    for (j, seen) in arrivals.iter().enumerate() {
        let seen = seen.lock().await;
        for (id, at, i) in &decided {
            match seen.get(id) {
                Some(t) if j == *i => same.push(t.saturating_duration_since(*at)),
                Some(t) => other.push(t.saturating_duration_since(*at)),
                None => missing += 1,
            }
        }
    }
    Ok(Figures {
        submissions_per_second: throughput.per_second,
        submission_p99: throughput.p99,
        decisions_per_second,
        same: quantiles(same),
        other: quantiles(other),
        missing,
        errors: errors.load(Ordering::Relaxed),
    })
}
