//! The console's headless sub-commands against a real server, with their exit codes.

use std::process::{Output, Stdio};

use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::client::session::STATE_DIR_ENV;

use crate::common::{as_agent, elevation, register, settings, sign_in, start_real_clock};

/// A server on the real clock, with alice signed in and her console session saved in
/// `state_dir`, as `sponsor-console login` would leave it.
struct Alice {
    server: sponsor_console::server::RunningServer,
    dir: tempfile::TempDir,
    base: String,
    client: ApiClient,
    alice: ApiClient,
    state_dir: std::path::PathBuf,
}

async fn alice_signed_in() -> Alice {
    let (server, dir) = start_real_clock(settings()).await;
    let base = server.base_url();
    let client = ApiClient::new(&base).unwrap();
    let tokens = sign_in(&client, "alice").await;
    let state_dir = dir.path().join("state");
    crate::common::save_session(&state_dir, &base, &tokens, "alice");
    let alice = client.with_token(&tokens.access_token);
    Alice {
        server,
        dir,
        base,
        client,
        alice,
        state_dir,
    }
}

/// `sponsor-console ARGS --server BASE` with the session kept in `state_dir`.
fn console(base: &str, state_dir: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"));
    cmd.args(args)
        .args(["--server", base])
        .env(STATE_DIR_ENV, state_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn scripted_commands_and_exit_codes() {
    let Alice {
        server,
        dir: _dir,
        base,
        client,
        alice,
        state_dir,
    } = alice_signed_in().await;
    // Control characters in names are refused at the door; register a clean one.
    let refused = alice
        .register_agent(
            &sponsor_console::protocol::agents::RegisterAgent {
                public_key: AgentKey::generate().public_key(),
                name: "ledger\u{1b}[31m-bot".into(),
                capabilities: vec![],
                entra_object_id: None,
                model: None,
                runtime: None,
            },
            None,
        )
        .await;
    assert!(refused.is_err());
    let (key, agent) = register(&alice, "ledger-bot", &[]).await;
    let bot = as_agent(&client, &key).await;
    let first = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    let second = bot
        .request_elevation(&elevation(&["send:email"], 3600), None)
        .await
        .unwrap();

    let run = |args: &[&str]| console(&base, &state_dir, args);
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let listed = run(&["requests", "ls", "--json"]).output().await.unwrap();
    assert_eq!(listed.status.code(), Some(0));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list.len(), 2);
    let table = run(&["requests", "ls"]).output().await.unwrap();
    assert!(out(&table).contains(&first.id) && out(&table).contains("ledger-bot"));

    let approved = run(&[
        "approve",
        &first.id,
        "--for",
        "30m",
        "--reason",
        "FIN-1 checked",
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert!(out(&approved).contains("approved"));
    let again = run(&["deny", &first.id, "--reason", "too late"])
        .output()
        .await
        .unwrap();
    assert_eq!(again.status.code(), Some(5), "conflict: already decided");
    let too_long = run(&["approve", &second.id, "--for", "9h", "--reason", "x"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        too_long.status.code(),
        Some(2),
        "over the limit is bad input"
    );
    let denied = run(&["deny", &second.id, "--reason", "not needed"])
        .output()
        .await
        .unwrap();
    assert_eq!(denied.status.code(), Some(0));

    let grants = run(&["grants", "ls", "--json"]).output().await.unwrap();
    let grants: Vec<serde_json::Value> = serde_json::from_slice(&grants.stdout).unwrap();
    assert_eq!(grants.len(), 1);
    let agents = run(&["agents", "ls"]).output().await.unwrap();
    assert!(out(&agents).contains(&agent.did));

    let suspended = run(&["suspend", &agent.did, "--reason", "drill"])
        .output()
        .await
        .unwrap();
    assert_eq!(suspended.status.code(), Some(0));
    assert!(
        out(&suspended).contains("revoked 1 grant"),
        "{}",
        out(&suspended)
    );
    let back = run(&["reactivate", &agent.did, "--reason", "drill over"])
        .output()
        .await
        .unwrap();
    assert_eq!(back.status.code(), Some(0));
    let nobody = run(&[
        "suspend",
        "did:mesh:00000000000000000000000000000000",
        "--reason",
        "x",
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(nobody.status.code(), Some(4));

    let verified = run(&["audit", "verify"]).output().await.unwrap();
    assert_eq!(verified.status.code(), Some(0));
    assert!(out(&verified).contains("audit chain ok"));

    let logout = run(&["logout"]).output().await.unwrap();
    assert_eq!(logout.status.code(), Some(0));
    let after = run(&["requests", "ls"]).output().await.unwrap();
    assert_eq!(after.status.code(), Some(3), "not signed in");
    server.shutdown().await.unwrap();
}

/// `server` in console.toml is where the headless commands go without `--server`, and a
/// read-only console (`--read-only` before or after the command, or `read_only` in
/// console.toml) refuses the commands that act, with exit code 4 and nothing changed.
#[tokio::test]
async fn console_toml_names_the_server_and_read_only_refuses_what_acts() {
    let Alice {
        server: _server,
        dir,
        base,
        client,
        alice,
        state_dir,
    } = alice_signed_in().await;
    let (key, _) = register(&alice, "ledger-bot", &[]).await;
    let bot = as_agent(&client, &key).await;
    let request = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    let writable = dir.path().join("console.toml");
    std::fs::write(&writable, format!("[console]\nserver = \"{base}\"\n")).unwrap();
    let read_only = dir.path().join("read-only.toml");
    std::fs::write(
        &read_only,
        format!("[console]\nserver = \"{base}\"\nread_only = true\n"),
    )
    .unwrap();
    let run = |config: &std::path::Path, args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"));
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .env(STATE_DIR_ENV, &state_dir)
            .env_remove("GOVERNANCE_SERVER")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };

    let listed = run(&writable, &["requests", "ls", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        listed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list.len(), 1);
    let approve = [
        "approve",
        request.id.as_str(),
        "--for",
        "30m",
        "--reason",
        "checked",
    ];
    for (config, flag) in [
        (&writable, Some("--read-only")),
        (&read_only, None),
        (&read_only, Some("--read-only")),
    ] {
        for command in [
            &approve[..],
            &["deny", request.id.as_str(), "--reason", "no"][..],
        ] {
            let mut cmd = run(config, command);
            if let Some(flag) = flag {
                cmd.arg(flag);
            }
            let refused = cmd.output().await.unwrap();
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(4), "{command:?}: {stderr}");
            assert!(stderr.contains("read-only"), "{stderr}");
        }
    }
    // Reading is still allowed, and nothing was decided.
    let read = run(&read_only, &["requests", "ls", "--json", "--read-only"])
        .output()
        .await
        .unwrap();
    assert_eq!(read.status.code(), Some(0));
    let still = alice.get_request(&request.id).await.unwrap();
    assert_eq!(
        still.status,
        sponsor_console::protocol::requests::RequestStatus::Pending
    );
    let approved = run(&writable, &approve).output().await.unwrap();
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
}

/// Action requests (AGT's approvals) headless: listed with `--source agt`, approved for one
/// execution by their `ar_` id (no `--for`), which releases the held webhook call.
#[tokio::test]
async fn action_requests_are_listed_and_decided_by_their_ar_id() {
    let Alice {
        server,
        dir: _dir,
        base,
        client,
        alice,
        state_dir,
    } = alice_signed_in().await;
    let (key, _) = register(&alice, "ledger-bot", &[]).await;
    let token = client
        .client_credentials(
            &key.assertion(
                &client.token_endpoint(),
                chrono::Utc::now(),
                chrono::Duration::seconds(60),
            )
            .unwrap(),
            None,
        )
        .await
        .unwrap()
        .access_token;
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let body = crate::agt::resealed(
        crate::agt::DEFAULTS_BODY,
        serde_json::json!({"expires_at": expires}),
    );
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["approval_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = crate::agt::hold(&base, &token, &body);
    crate::agt::pending(&alice, &id).await;
    let run = |args: &[&str]| console(&base, &state_dir, args);
    let listed = run(&["requests", "ls", "--source", "agt"])
        .output()
        .await
        .unwrap();
    assert_eq!(listed.status.code(), Some(0));
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        table.contains(&id) && table.contains("ledger-bot") && table.contains("tool.invoke"),
        "{table}"
    );
    let with_window = run(&["approve", &id, "--for", "1h", "--reason", "ok"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        with_window.status.code(),
        Some(2),
        "no window for one execution"
    );
    let approved = run(&["approve", &id, "--reason", "checked the ledger"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert!(String::from_utf8_lossy(&approved.stdout).starts_with(&format!("approved {id}")));
    let answer: sponsor_console::protocol::actions::WebhookAnswer =
        crate::agt::answered(held).await.json().await.unwrap();
    assert!(answer.approved);
    let again = run(&["deny", &id, "--reason", "too late"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(5),
        "already decided is a conflict"
    );
    drop(server);
}
