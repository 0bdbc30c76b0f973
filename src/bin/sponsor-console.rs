//! `sponsor-console`: where humans govern AI agents. Without a sub-command it opens the
//! terminal console (on the embedded default unless `--server` or the config names a server);
//! `login`, `whoami` and `logout` are the headless sign-in commands.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use sponsor_console::cli::console::{Cli, Launch, Mode};
use sponsor_console::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().into_mode() {
        Mode::Headless(command) => {
            telemetry::init_stderr("warn");
            match command.run().await {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Mode::Console(launch) => match console(launch).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The console owns the terminal, so it logs to a file (after its settings are read, so a bad
/// settings file is reported first).
async fn console(launch: Launch) -> anyhow::Result<()> {
    let console = launch.prepare()?;
    let log = console.log_file();
    telemetry::init_file(&log, "info")
        .with_context(|| format!("opening the log file {}", log.display()))?;
    console.run().await?;
    Ok(())
}
