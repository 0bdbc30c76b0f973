//! `sponsor-console`: where humans govern AI agents. This build has the headless sign-in
//! commands; the terminal UI is being built on top of them.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sponsor_console::client::ApiClient;
use sponsor_console::clock::{SharedClock, SystemClock};
use sponsor_console::console::login::{self, LoginError};
use sponsor_console::console::session::SessionStore;

#[derive(Debug, Parser)]
#[command(
    name = "sponsor-console",
    version,
    about = "Where humans govern AI agents"
)]
struct Cli {
    /// Governance server base URL.
    #[arg(
        long,
        global = true,
        env = "GOVERNANCE_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in with the device flow: open the URL shown, enter the code, approve.
    Login,
    /// Show who is signed in (refreshing the session if needed).
    Whoami {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke this session's tokens and forget them.
    Logout,
}

/// Exit codes: 0 done, 1 failure, 2 usage (clap), 3 not signed in / session ended, 4 denied.
async fn run(cli: Cli) -> Result<ExitCode, LoginError> {
    let api = ApiClient::new(&cli.server)?;
    let store = SessionStore::default_location()?;
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command {
        None => {
            eprintln!(
                "The terminal UI is not in this build yet. Use `sponsor-console login`, `whoami` or `logout` (see --help)."
            );
            Ok(ExitCode::from(2))
        }
        Some(Command::Login) => {
            let session = login::device_login(&api, clock, login::real_sleep, |prompt| {
                println!("To sign in, open {}", prompt.verification_uri);
                println!("and enter the code {}", prompt.user_code);
                if let Some(complete) = &prompt.verification_uri_complete {
                    println!("(or open {complete})");
                }
                println!(
                    "Waiting for approval (the code expires in {} minutes)…",
                    prompt.expires_in.as_secs() / 60
                );
            })
            .await?;
            let path = store.save(&session)?;
            println!(
                "Signed in to {} as {}. Session saved to {}.",
                session.server,
                session.username.as_deref().unwrap_or("?"),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Whoami { json }) => {
            let session = login::current_session(&api, &store, &clock).await?;
            let me = api.with_token(&session.access_token).me().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&me).unwrap_or_default());
            } else {
                println!(
                    "{} ({}) on {}\nroles: {}\nsession token valid until {}",
                    me.display_name.as_deref().unwrap_or(&me.sub),
                    me.username.as_deref().unwrap_or("?"),
                    session.server,
                    me.roles.join(", "),
                    session
                        .expires_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Logout) => {
            if login::logout(&api, &store, &clock).await? {
                println!("Signed out of {}.", api.base());
            } else {
                println!("Not signed in to {}.", api.base());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sponsor_console::telemetry::init_stderr("warn");
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                LoginError::NotSignedIn(_) | LoginError::SessionEnded(_) => ExitCode::from(3),
                LoginError::Denied | LoginError::Expired => ExitCode::from(4),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
