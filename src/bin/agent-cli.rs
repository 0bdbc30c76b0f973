//! `agent-cli`: what an agent does against the governance server — make its key, be registered
//! by a sponsor, get tokens with `private_key_jwt`, introspect them.

use std::process::ExitCode;

use clap::Parser as _;
use sponsor_console::cli::agent::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sponsor_console::telemetry::init_stderr("warn");
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code();
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}
