//! The server on PostgreSQL: the real `governance-server` binary (`--database postgres://…`),
//! where an agent signs in, submits a request and reads it back, and its sponsor sees it; a
//! database that cannot be reached at start, one line and a failed exit, not a panic; and
//! concurrent writers through the pool, each stored once with a gap-free chain.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use sponsor_console::client::ApiClient;
use sponsor_console::domain::policy::Policy;
use sponsor_console::protocol::requests::RequestStatus;
use sponsor_console::server::store::PgStore;

use crate::common::postgres::{Database, LoginRole, Schema};
use crate::common::{
    PASSWORD, TestServer, as_agent, elevation, query, register, settings, sign_in, spawn_server,
};

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
    let (key, agent) = register(&alice, "ledger-bot", &[]).await;
    let bot = as_agent(&client, &key).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_are_each_stored_once_with_a_gap_free_chain() {
    let schema = match Schema::create().await {
        Ok(schema) => schema,
        Err(why) => {
            let case = "postgres_server::concurrent_submissions_are_each_stored_once_with_a_gap_free_chain";
            return crate::conformance::skipped(case, &why);
        }
    };
    let store = PgStore::connect_with(schema.options()).await.unwrap();
    let mut s = settings();
    let mut policy = Policy::shipped().unwrap();
    policy.requests.fatigue_limit = 100_000;
    s.policy = Some(policy);
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.db");
    let t = TestServer::start_on(s, Arc::new(store), dir, unused).await;
    let alice = t.as_user("alice").await;
    let mut bots = Vec::new();
    for i in 0..4 {
        let (key, _) = t.agent(&alice, &format!("bot-{i}"), &[]).await;
        bots.push(t.as_agent(&key).await);
    }
    let bots = Arc::new(bots);
    // Each submission goes out twice at once under one idempotency key (a client retrying).
    let results: Vec<(String, String, String)> = futures::stream::iter(0..200)
        .map(|i| {
            let bots = bots.clone();
            async move {
                let bot = &bots[i % bots.len()];
                let body = elevation(&[&format!("read:crm:item-{i}")], 3600);
                let key = format!("submit-{i}");
                let (a, b) = tokio::join!(
                    bot.request_elevation(&body, Some(&key)),
                    bot.request_elevation(&body, Some(&key))
                );
                let (a, b) = (a.unwrap().id, b.unwrap().id);
                (key, a, b)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut by_key = HashMap::new();
    for (key, a, b) in &results {
        assert_eq!(a, b, "{key}");
        by_key.insert(key.clone(), a.clone());
    }
    let acknowledged: HashSet<&String> = by_key.values().collect();
    assert_eq!(acknowledged.len(), 200);
    let stored = alice
        .requests(&query("status=all&limit=10000"))
        .await
        .unwrap();
    let stored: HashSet<&String> = stored.iter().map(|r| &r.id).collect();
    assert_eq!(stored, acknowledged, "each exactly once");
    // Consecutive seqs, each linked to the one before: no gap, no fork.
    let sam = t.as_user("sam").await;
    let report = sam.audit_verify(None).await.unwrap();
    assert!(report.ok, "{report:?}");
}

/// Runs `governance-server --database URL serve` and returns its exit code and stderr.
async fn serve_once(url: &str) -> (Option<i32>, String) {
    let no_config = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_governance-server"))
        .args(["--database", url, "serve", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "off")
        .env("XDG_CONFIG_HOME", no_config.path())
        .env_remove("GOVERNANCE_CONFIG")
        .env_remove("GOVERNANCE_DATABASE")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_will_not_open_says_why_and_what_to_do() {
    let case = "postgres_server::a_database_that_will_not_open_says_why_and_what_to_do";
    // The role first, so that it is dropped after the databases.
    let role = match LoginRole::create().await {
        Ok(role) => role,
        Err(why) => return crate::conformance::skipped(case, &why),
    };
    let (without_rights, newer) = (
        Database::create().await.unwrap(),
        Database::create().await.unwrap(),
    );
    // The role may log in but not create anything in the database's public schema (the
    // default since PostgreSQL 15, made so on older ones).
    let mut in_it = <sqlx::PgConnection as sqlx::Connection>::connect(&without_rights.url)
        .await
        .unwrap();
    sqlx::raw_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .execute(&mut in_it)
        .await
        .unwrap();
    let as_role = role.url(&without_rights);
    let mut missing = url::Url::parse(&without_rights.url).unwrap();
    missing.set_path("no_such_database");
    // A database a newer release has migrated further than this one knows.
    PgStore::connect(&newer.url).await.unwrap().close().await;
    let mut on_newer = <sqlx::PgConnection as sqlx::Connection>::connect(&newer.url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from the future', true, '\\x00', 1)",
    )
    .execute(&mut on_newer)
    .await
    .unwrap();
    drop(on_newer);

    for (url, cause, remedy) in [
        (
            as_role.clone(),
            "permission denied for schema public",
            "GRANT CREATE ON SCHEMA",
        ),
        (
            missing.to_string(),
            "database \"no_such_database\" does not exist",
            "create the database first",
        ),
        (
            newer.url.clone(),
            "was previously applied but is missing",
            "a newer governance-server has migrated this database",
        ),
    ] {
        let (code, stderr) = serve_once(&url).await;
        assert_eq!(code, Some(1), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.contains(cause), "{url}: {stderr}");
        assert!(stderr.contains(remedy), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Nothing half done: no table in the database the role could not migrate, and the
    // newer schema still holds its unknown migration.
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut in_it)
            .await
            .unwrap();
    assert_eq!(tables, 0);
    let mut on_newer = <sqlx::PgConnection as sqlx::Connection>::connect(&newer.url)
        .await
        .unwrap();
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut on_newer)
        .await
        .unwrap();
    let ours = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(versions, ours + 1, "its own migrations and the newer one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_with_only_data_rights_serves_a_migrated_database() {
    // The role first, so that it is dropped after the database where it holds rights.
    let role = match LoginRole::create().await {
        Ok(role) => role,
        Err(why) => {
            let case = "postgres_server::a_role_with_only_data_rights_serves_a_migrated_database";
            return crate::conformance::skipped(case, &why);
        }
    };
    let database = Database::create().await.unwrap();
    // Migrated once by the owner; then served by a role that may not change the schema.
    PgStore::connect(&database.url).await.unwrap().close().await;
    let mut in_it = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};",
        role = role.name
    ))
    .execute(&mut in_it)
    .await
    .unwrap();
    drop(in_it);
    let url = role.url(&database);

    let dir = tempfile::tempdir().unwrap();
    let hash = sponsor_console::server::passwords::hash_password(PASSWORD).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndatabase = \"{url}\"\n\n\
             [postgres]\nmax_connections = 3\nacquire_timeout = \"2s\"\n\n\
             [[sponsors]]\nusername = \"alice\"\nroles = [\"sponsor\"]\npassword_hash = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let (mut server, base) = spawn_server(&config).await;
    let client = ApiClient::new(&base).unwrap();
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let (_, agent) = register(&alice, "ledger-bot", &[]).await;
    assert_eq!(alice.agent(&agent.did).await.unwrap().did, agent.did);
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}
