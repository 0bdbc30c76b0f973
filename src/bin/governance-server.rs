//! `governance-server`: the system of record for agent identities and the OAuth server of the
//! local tenant. `serve` runs it; `keys rotate` and `sponsors …` administer its database.

use clap::Parser as _;
use sponsor_console::cli::server::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sponsor_console::telemetry::init_stderr("info");
    run(cli).await?;
    Ok(())
}
