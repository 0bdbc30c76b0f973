//! Polling one Entra source of 1,000 pending approvals in pages of 100, against the Entra
//! emulator over HTTPS on loopback: the whole `EntraApprovals::list` (ten pages, typed rows,
//! names from the expansions and the cache), as the console's poll of a source does it. The
//! goal (issue 12): under 1 s. Each of the three sources is measured on its own.
//!
//! The emulator is seeded once. Each of the `--runs` runs polls each source `--polls` times
//! (after one warm-up poll each) and prints their median and p99; the summary gives each
//! figure's median and p99 over the runs. (`--polls` was `--runs` before the benches shared a
//! run count.)
//!
//! Run: `cargo bench --bench entra_poll` (options: `-- --runs 3 --pending 1000 --page 100
//! --polls 15`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use entra_emulator::{Emulator, EmulatorConfig, RequestSeed, demo};
use sponsor_console::client::entra::EntraConfig;
use sponsor_console::client::graph::{EntraApprovals, GraphClient, StaticToken};
use sponsor_console::clock::SystemClock;
use sponsor_console::domain::entra::EntraSource;

mod support;

const GOAL: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let pending = support::arg("--pending", 1000);
    let page = support::arg("--page", 100);
    let polls = support::arg("--polls", 15);
    let mut runs = support::Runs::from_args();
    let emu = Emulator::start(EmulatorConfig {
        page_size: page,
        ..EmulatorConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("emulator-ca.pem");
    std::fs::write(&ca_file, emu.ca_pem().unwrap_or_default())?;
    let config = EntraConfig {
        tenant: emu.tenant_id(),
        client_id: emu.client_id(),
        authority_host: emu.base_url().to_owned(),
        graph_url: emu.base_url().to_owned(),
        ca_file: ca_file.display().to_string(),
        ..EntraConfig::default()
    };
    let token = emu.access_token(demo::ADELE, "https://graph.microsoft.com/.default")?;
    let graph = GraphClient::new(
        config.http_client()?,
        emu.base_url(),
        Arc::new(StaticToken::new(token)),
        Arc::new(SystemClock),
    )?;
    let approvals = EntraApprovals::new(graph, demo::ADELE);
    for i in 0..pending {
        let justification = format!("Change window {i}: rotate the payment keys");
        for seed in [
            RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN),
            RequestSeed::group(demo::MEGAN, demo::GROUP_PROD_DB),
            RequestSeed::access_package(demo::MEGAN, demo::PACKAGE_AGENT_TOOLS),
        ] {
            emu.seed(
                seed.approvers(&[demo::ADELE])
                    .justification(&justification)
                    .ticket(&format!("CHG-{i}"), "ServiceNow"),
            )?;
        }
    }
    println!(
        "polling one Entra source: {pending} pending approvals in pages of {page}, {polls} polls each a run (HTTPS, loopback)"
    );
    for r in 1..=runs.n() {
        runs.begin(r);
        for source in EntraSource::ALL {
            // One poll to warm the connection pool and the name cache, as a console's first is.
            let rows = approvals.list(source).await?;
            anyhow::ensure!(rows.len() == pending, "{source:?}: {} rows", rows.len());
            let mut samples = Vec::with_capacity(polls);
            let wall = Instant::now();
            for _ in 0..polls {
                let t = Instant::now();
                let rows = approvals.list(source).await?;
                samples.push(t.elapsed());
                anyhow::ensure!(rows.len() == pending, "{source:?}: {} rows", rows.len());
            }
            let summary = support::summarize(samples, wall.elapsed());
            let name = format!("poll {} ({pending})", source.label());
            support::report(&name, &summary);
            runs.record_ms(&format!("{name}: median"), summary.median);
            runs.record_ms(&format!("{name}: p99"), summary.p99);
        }
    }
    runs.summary();
    // The goal is on the median poll: each source's median over the runs of its per-run medians.
    let met = EntraSource::ALL.iter().all(|source| {
        runs.median(&format!("poll {} ({pending}): median", source.label()))
            .is_some_and(|ms| ms < GOAL.as_secs_f64() * 1e3)
    });
    println!(
        "goal: one source of {pending} in under {} s: {}",
        GOAL.as_secs(),
        if met { "met" } else { "NOT met" }
    );
    Ok(())
}
