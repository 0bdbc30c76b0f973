//! `governance-server`: the system of record for agent identities and the OAuth server of the
//! local tenant. `serve` runs it; `keys rotate` and `sponsors …` administer its database.

use std::process::ExitCode;

use clap::Parser as _;
use sponsor_console::cli::server::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sponsor_console::telemetry::init_stderr("info");
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("governance-server: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// What failed, then each cause after a colon; a cause whose text an outer message already
/// includes is not repeated.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}
