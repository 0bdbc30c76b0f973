//! The real console against a fleet's worth of pending requests: the release `sponsor-console`
//! binary in a pseudo-terminal (200×50), signed in to an in-process server holding `--pending`
//! pending requests (100,000 by default, submitted by the fleet simulator). Measures, over
//! `--runs` starts of the console: the time to the first row on screen, the time until every
//! pending request is loaded (the status bar shows the full count and no longer says
//! "loading"), and the console's resident memory then.
//!
//! The server is seeded once, through its API, by the fleet simulator (64 agents, 32
//! submissions in flight, no delegations); each of the `--runs` runs is one start of the
//! console against it, and the summary gives each figure's median and p99 over the runs.
//!
//! Run: `cargo bench --bench console_load` (options: `-- --runs 3 --pending 100000`). Seeding
//! 100,000 requests through the API takes a couple of minutes on a 2-core machine. The
//! console is the `sponsor-console` binary cargo builds for the bench (the `bench` profile,
//! which is `release`'s).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sponsor_console::client::session::{Session, SessionStore};
use sponsor_console::clock::SystemClock;
use sponsor_console::demo::fleet::Fleet;
use sponsor_console::domain::policy::Policy;
use sponsor_console::settings::ServerSettings;

mod support;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// One start of the console: (time to first row, time to all, RSS in bytes).
struct Start {
    first_row: Duration,
    all: Duration,
    rss: u64,
}

async fn run() -> anyhow::Result<()> {
    let pending = support::arg("--pending", 100_000);
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
    let bench = support::start_server(settings).await?;
    let fleet =
        Arc::new(Fleet::register(&bench.sponsor_client, 64, 7, Arc::new(SystemClock)).await?);
    for a in &fleet.agents {
        fleet.agent_client(a).await?;
    }
    let seeding = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32u64 {
        let (fleet, next) = (fleet.clone(), next.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(w);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < pending {
                if let Err(e) = fleet.submit_one(&mut rng, 0.0).await {
                    eprintln!("submission failed: {e}");
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    println!(
        "seeded {pending} pending requests in {:.0} s",
        seeding.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let base = bench.server.base_url();
    let token = bench.sponsor_token.clone();
    SessionStore::at(dir.path().join("state")).save(&Session {
        server: base.clone(),
        client_id: "sponsor-console".into(),
        access_token: token,
        refresh_token: None,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(50),
        username: Some("bench".into()),
    })?;
    for r in 1..=runs.n() {
        runs.begin(r);
        let base = base.clone();
        let state = dir.path().to_owned();
        let start =
            tokio::task::spawn_blocking(move || start_console(&base, &state, pending)).await??;
        println!(
            "first row {:.0} ms   all {pending} loaded {:.0} ms   resident {:.0} MB",
            start.first_row.as_secs_f64() * 1e3,
            start.all.as_secs_f64() * 1e3,
            start.rss as f64 / 1e6
        );
        runs.record(
            "console start → first row on screen",
            "ms",
            0,
            start.first_row.as_secs_f64() * 1e3,
        );
        runs.record(
            &format!("console start → all {pending} loaded"),
            "ms",
            0,
            start.all.as_secs_f64() * 1e3,
        );
        runs.record(
            "console resident memory, all loaded",
            "MB",
            0,
            start.rss as f64 / 1e6,
        );
    }
    runs.summary();
    bench.server.shutdown().await?;
    Ok(())
}

fn start_console(base: &str, dir: &std::path::Path, pending: usize) -> anyhow::Result<Start> {
    let pty = native_pty_system().openpty(PtySize {
        rows: 50,
        cols: 200,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_sponsor-console"));
    cmd.args(["--server", base]);
    cmd.env("SPONSOR_CONSOLE_STATE_DIR", dir.join("state"));
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    cmd.env("TERM", "xterm-256color");
    let started = Instant::now();
    let mut child = pty.slave.spawn_command(cmd)?;
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader()?;
    let mut writer = pty.master.take_writer()?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut parser = vt100::Parser::new(50, 200, 0);
    let mut first_row = None;
    let all_loaded = format!("{pending} pending ");
    let deadline = started + Duration::from_secs(600);
    let all = loop {
        let bytes = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        parser.process(&bytes);
        let text = parser.screen().contents();
        if first_row.is_none() && text.contains("elev ") {
            first_row = Some(started.elapsed());
        }
        if text.contains(&all_loaded) && !text.contains("loading") {
            break started.elapsed();
        }
    };
    let rss = child
        .process_id()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    std::io::Write::write_all(&mut writer, b"q")?;
    child.wait()?;
    Ok(Start {
        first_row: first_row.unwrap_or(all),
        all,
        rss,
    })
}
