//! The real `governance-server` binary on PostgreSQL (`--database postgres://…`): an agent
//! signs in, submits a request and reads it back, and its sponsor sees it. And a database that
//! cannot be reached at start is one line and a failed exit, not a panic.

use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::agents::RegisterAgent;
use sponsor_console::protocol::requests::RequestStatus;

use crate::common::postgres::Database;
use crate::common::{PASSWORD, elevation, query, sign_in, spawn_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_binary_serves_from_postgres() {
    let database = match Database::create().await {
        Ok(database) => database,
        Err(why) => {
            let case = "postgres_server::the_server_binary_serves_from_postgres";
            return crate::conformance::skipped(case, &why);
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let hash = sponsor_console::server::passwords::hash_password(PASSWORD).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndatabase = \"{}\"\n\n\
             [[sponsors]]\nusername = \"alice\"\nroles = [\"sponsor\"]\npassword_hash = \"{hash}\"\n",
            database.url
        ),
    )
    .unwrap();
    let (mut server, base) = spawn_server(&config).await;
    let client = ApiClient::new(&base).unwrap();
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let key = AgentKey::generate();
    let agent = alice
        .register_agent(
            &RegisterAgent {
                public_key: key.public_key(),
                name: "ledger-bot".into(),
                capabilities: vec![],
                entra_object_id: None,
                model: None,
                runtime: None,
            },
            None,
        )
        .await
        .unwrap();
    let assertion = key
        .assertion(
            &client.token_endpoint(),
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
        )
        .unwrap();
    let token = client.client_credentials(&assertion, None).await.unwrap();
    let bot = client.with_token(token.access_token);
    let submitted = bot
        .request_elevation(&elevation(&["write:ledger:close"], 3600), None)
        .await
        .unwrap();
    assert_eq!(submitted.agent_did, agent.did);
    assert_eq!(submitted.status, RequestStatus::Pending);

    let read_back = bot.get_request(&submitted.id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&read_back).unwrap(),
        serde_json::to_value(&submitted).unwrap()
    );
    let pending = alice
        .requests(&query("status=pending&limit=10"))
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [submitted.id.as_str()]
    );
    let report = alice.audit_verify(None).await.unwrap();
    assert!(report.ok, "{report:?}");
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_one_line_and_a_failure() {
    // Nothing listens on port 1; a URL that does not parse fails the same way, sooner.
    let no_config = tempfile::tempdir().unwrap();
    for url in [
        "postgres://governance:hunter2@127.0.0.1:1/governance",
        "postgres://governance:hunter2@127.0.0.1:notaport/governance",
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_governance-server"))
            .args(["--database", url, "serve", "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "off")
            .env("XDG_CONFIG_HOME", no_config.path())
            .env_remove("GOVERNANCE_CONFIG")
            .env_remove("GOVERNANCE_DATABASE")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{url}: {stderr}");
        assert!(
            lines[0].starts_with("governance-server: opening the database postgres://"),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "the password shows: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
