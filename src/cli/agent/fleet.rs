//! `agent-cli fleet`: the fleet simulator run from the command line.

use std::sync::Arc;

use super::{AgentCliError, sponsor_client};
use crate::client::ApiClient;
use crate::client::session::SessionStore;
use crate::clock::SystemClock;
use crate::demo::fleet::{Fleet, FleetConfig};

/// `fleet`: reuses the simulated agents whose keys it kept for this server (see
/// [`SessionStore::fleet_dir`]) and registers the missing ones with a sponsor's token, submits
/// until `config` says stop (or Ctrl-C), and prints the counts and acknowledgement latencies.
pub(super) async fn fleet(
    api: &ApiClient,
    token: Option<String>,
    config: &FleetConfig,
) -> Result<(), AgentCliError> {
    let sponsor = sponsor_client(api, token).await?;
    let dir = SessionStore::default_location()?.fleet_dir(api.base());
    let (fleet, reused) = Fleet::load_or_register(
        &sponsor,
        &dir,
        config.agents,
        config.seed,
        Arc::new(SystemClock),
    )
    .await?;
    let fleet = Arc::new(fleet);
    eprintln!(
        "{} agents: {reused} reused, {} registered (keys in {})",
        fleet.agents.len(),
        fleet.agents.len() - reused,
        dir.display()
    );
    for a in &fleet.agents {
        eprintln!("  {} {}", a.did, a.name);
    }
    eprintln!("submitting at {}/s…", config.rate);
    let stats = tokio::select! {
        stats = fleet.run(config) => stats,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            return Ok(());
        }
    };
    let mut lat = stats.latencies.clone();
    lat.sort();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    println!(
        "submitted {}  pending {}  auto-denied {}  errors {}  ack median {:.1} ms  p99 {:.1} ms",
        stats.submitted,
        stats.pending,
        stats.auto_denied,
        stats.errors,
        pct(0.5),
        pct(0.99)
    );
    if let Some(e) = stats.last_error {
        eprintln!("last error: {e}");
    }
    Ok(())
}
