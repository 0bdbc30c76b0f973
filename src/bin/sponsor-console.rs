//! `sponsor-console`: where humans govern AI agents. Without a sub-command it opens the
//! terminal console (on the embedded default unless `--server` or the config names a server);
//! `login`, `whoami` and `logout` are the headless sign-in commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sponsor_console::client::ApiClient;
use sponsor_console::clock::{SharedClock, SystemClock};
use sponsor_console::console::app::{self, Alerts, Keeper};
use sponsor_console::console::config::ConsoleSettings;
use sponsor_console::console::embedded;
use sponsor_console::console::keymap::Keymap;
use sponsor_console::console::login::{self, LoginError, LoginPrompt};
use sponsor_console::console::session::SessionStore;
use sponsor_console::console::state::{Identity, State};
use sponsor_console::console::theme::Theme;

const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Parser)]
#[command(
    name = "sponsor-console",
    version,
    about = "Where humans govern AI agents"
)]
struct Cli {
    /// Governance server base URL. Without it the console runs the embedded default
    /// (headless commands default to http://127.0.0.1:7070).
    #[arg(long, global = true, env = "GOVERNANCE_SERVER")]
    server: Option<String>,
    /// Console settings file (default: $XDG_CONFIG_HOME/sponsor-console/console.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// No acting keys: approve, deny, suspend, reactivate and revoke are gone.
    #[arg(long)]
    read_only: bool,
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

fn print_prompt(prompt: &LoginPrompt) {
    println!("To sign in, open {}", prompt.verification_uri);
    println!("and enter the code {}", prompt.user_code);
    if let Some(complete) = &prompt.verification_uri_complete {
        println!("(or open {complete})");
        if let Ok(code) = qrcode::QrCode::new(complete.as_bytes()) {
            let qr = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build();
            println!("{qr}");
        }
    }
    println!(
        "Waiting for approval (the code expires in {} minutes)…",
        prompt.expires_in.as_secs() / 60
    );
}

/// Exit codes: 0 done, 1 failure, 2 usage (clap), 3 not signed in / session ended, 4 denied.
async fn headless(command: Command, server: &str) -> Result<ExitCode, LoginError> {
    let api = ApiClient::new(server)?;
    let store = SessionStore::default_location()?;
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Login => {
            let session = login::device_login(&api, clock, login::real_sleep, |prompt| {
                print_prompt(&prompt);
                async {}
            })
            .await?;
            let path = store.save(&session)?;
            println!(
                "Signed in to {} as {}. Session saved to {}.",
                session.server,
                session.username.as_deref().unwrap_or("?"),
                path.display()
            );
        }
        Command::Whoami { json } => {
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
        }
        Command::Logout => {
            if login::logout(&api, &store, &clock).await? {
                println!("Signed out of {}.", api.base());
            } else {
                println!("Not signed in to {}.", api.base());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn console(cli: Cli) -> anyhow::Result<()> {
    let settings = ConsoleSettings::load(cli.config.as_deref())?;
    let read_only = cli.read_only || settings.console.read_only;
    let keymap = Keymap::new(&settings.keys, read_only)?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = Theme::by_name(&settings.console.theme, no_color).with_context(|| {
        format!(
            "unknown theme {:?}: use default, colour-blind or mono",
            settings.console.theme
        )
    })?;
    let alerts = Alerts {
        bell: settings.notifications.bell,
        osc: settings.notifications.osc,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let server = cli
        .server
        .clone()
        .or_else(|| (!settings.console.server.is_empty()).then(|| settings.console.server.clone()));
    let store = SessionStore::default_location()?;
    let log = store.dir().join("console.log");
    sponsor_console::telemetry::init_file(&log, "info")
        .with_context(|| format!("opening the log file {}", log.display()))?;
    match server {
        None => {
            let dir = embedded::data_dir();
            eprintln!(
                "Starting the embedded governance server ({})…",
                dir.display()
            );
            let tenant =
                embedded::start_embedded(&dir, settings.demo.agents, settings.demo.rate).await?;
            let api = ApiClient::new(&tenant.server.base_url())?;
            let identity = Identity {
                username: tenant.sponsor.username.clone(),
                server: tenant.server.base_url(),
                environment: settings.console.environment.clone(),
                embedded: true,
            };
            let keeper = Keeper::new(api, tenant.session.clone(), None, clock);
            let state = State::new(identity, keymap, read_only);
            let ran = app::run(state, keeper, theme, alerts).await;
            tenant.shutdown().await?;
            ran?;
        }
        Some(server) => {
            let api = ApiClient::new(&server)?;
            let session = match login::current_session(&api, &store, &clock).await {
                Ok(s) => s,
                Err(LoginError::NotSignedIn(_) | LoginError::SessionEnded(_)) => {
                    let s = login::device_login(&api, clock.clone(), login::real_sleep, |prompt| {
                        print_prompt(&prompt);
                        async {}
                    })
                    .await?;
                    store.save(&s)?;
                    s
                }
                Err(e) => return Err(e.into()),
            };
            let identity = Identity {
                username: session.username.clone().unwrap_or_default(),
                server: api.base().to_owned(),
                environment: settings.console.environment.clone(),
                embedded: false,
            };
            let keeper = Keeper::new(api, session, Some(store), clock);
            let state = State::new(identity, keymap, read_only);
            app::run(state, keeper, theme, alerts).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(command) => {
            sponsor_console::telemetry::init_stderr("warn");
            let server = cli
                .server
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
            match headless(command, &server).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    match e {
                        LoginError::NotSignedIn(_) | LoginError::SessionEnded(_) => {
                            ExitCode::from(3)
                        }
                        LoginError::Denied | LoginError::Expired => ExitCode::from(4),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
        None => match console(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
