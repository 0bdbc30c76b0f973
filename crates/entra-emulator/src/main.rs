//! `cargo run -p entra-emulator`: the emulator with the demo tenant and pending requests, and
//! the configuration lines that point the console and the governance server at it.

use std::net::SocketAddr;

use clap::Parser;
use entra_emulator::{Emulator, EmulatorConfig, demo};

#[derive(Debug, Parser)]
#[command(about = "A local Microsoft Entra sign-in and Graph emulator (demo tenant)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    bind: SocketAddr,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// Finish every device sign-in at once as this person (object id or UPN).
    #[arg(long)]
    auto_approve: Option<String>,
    /// Where to write the CA certificate (HTTPS only).
    #[arg(long, default_value = "entra-emulator-ca.pem")]
    ca_file: std::path::PathBuf,
    /// Items per page in Graph collections.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let directory = entra_emulator::Directory::demo();
    let auto_approve = match &args.auto_approve {
        Some(key) => Some(
            directory
                .user_by_key(key)
                .map(|u| u.id.clone())
                .ok_or_else(|| format!("no person {key} in the demo tenant"))?,
        ),
        None => None,
    };
    let config = EmulatorConfig {
        bind: args.bind,
        tls: !args.plain_http,
        page_size: args.page_size,
        auto_approve,
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config).await?;
    emu.seed_demo_requests()?;
    let ca_line = match emu.ca_pem() {
        Some(pem) => {
            std::fs::write(&args.ca_file, pem)?;
            let path = std::fs::canonicalize(&args.ca_file).unwrap_or(args.ca_file.clone());
            format!("ca_file = \"{}\"\n", path.display())
        }
        None => String::new(),
    };
    println!(
        "Entra emulator on {} (tenant {})",
        emu.base_url(),
        emu.tenant_id()
    );
    println!(
        "Sign-in page: {}/devicelogin (emulator only: pick a person, no password)",
        emu.base_url()
    );
    println!(
        "People: Adele Vance (approver, sponsor role), Megan Bowen (asks), Alex Wilber (security lead), Lee Gu (on call)\n"
    );
    println!("# The console's config ([entra]):");
    println!(
        "[entra]\ntenant = \"{}\"\nclient_id = \"{}\"\nauthority_host = \"{}\"\ngraph_url = \"{}\"\napi_scope = \"api://{}/{}\"\n{ca_line}",
        emu.tenant_id(),
        emu.client_id(),
        emu.base_url(),
        emu.base_url(),
        demo::GOVERNANCE_APP_ID,
        demo::GOVERNANCE_SCOPE,
    );
    println!("# The governance server's config ([[trusted_issuers]]):");
    println!(
        "[[trusted_issuers]]\nissuer = \"{}\"\naudience = \"{}\"\ntenant_id = \"{}\"\ndiscovery_url = \"{}\"\nscope = \"{}\"\n{ca_line}[trusted_issuers.app_roles]\n\"{}\" = \"sponsor\"\n\"{}\" = \"security-lead\"\n\"{}\" = \"on-call\"\n[trusted_issuers.group_roles]\n\"{}\" = \"on-call\"\n",
        emu.issuer(),
        demo::GOVERNANCE_APP_ID,
        emu.tenant_id(),
        emu.discovery_url(),
        demo::GOVERNANCE_SCOPE,
        demo::ROLE_SPONSOR,
        demo::ROLE_SECURITY_LEAD,
        demo::ROLE_ON_CALL,
        demo::ON_CALL_GROUP,
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
