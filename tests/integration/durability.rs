//! Nothing acknowledged is lost: a full disk (made with SQLite's `max_page_count`, no root
//! needed) answers 507 with `Retry-After` on every write, the kill switch included, never
//! acknowledges a write it did not commit, and the server recovers by itself when space returns.

use std::sync::Arc;

use reqwest::StatusCode;
use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::protocol::agents::{AgentStatus, RegisterAgent};
use sponsor_console::server::store::SqliteStore;
use sqlx::{Connection, SqliteConnection};

use crate::common::{TestServer, settings};

/// What one write got: acknowledged (2xx), or refused with the status, code and Retry-After.
#[derive(Debug)]
enum Outcome {
    Acknowledged(String),
    Refused(StatusCode, String, Option<String>),
}

async fn register(alice: &ApiClient, n: usize) -> Outcome {
    let key = AgentKey::generate();
    let response = alice
        .raw(reqwest::Method::POST, "/v1/agents")
        .json(&RegisterAgent {
            public_key: key.public_key(),
            name: format!("filler-{n}"),
            capabilities: vec!["read:x".into()],
            entra_object_id: None,
            model: Some("m".repeat(120)),
            runtime: Some("r".repeat(100)),
        })
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = response.json().await.expect("json");
    if status.is_success() {
        Outcome::Acknowledged(body["did"].as_str().unwrap_or_default().to_owned())
    } else {
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Outcome::Refused(status, code, retry)
    }
}

async fn pages(db: &std::path::Path) -> i64 {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open");
    sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut conn)
        .await
        .expect("page count")
}

#[tokio::test]
async fn a_full_disk_acknowledges_nothing_it_did_not_write_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("governance.db");
    let store = SqliteStore::open(&db).await.expect("open");
    let mut config = settings();
    config.limits.max_agents_per_sponsor = 10_000;
    let t = TestServer::start_on(config, Arc::new(store.clone()), dir, db.clone()).await;
    let alice = t.as_user("alice").await;
    let otto = t.as_user("otto").await;
    let (_, victim) = t.agent(&alice, "victim", &["read:x"]).await;

    // A few pages of room, then writes until the database is full, and then some.
    store
        .set_max_pages(u32::try_from(pages(&db).await + 4).ok())
        .await
        .expect("cap");
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for n in 0..160 {
        match register(&alice, n).await {
            Outcome::Acknowledged(did) => acknowledged.push(did),
            Outcome::Refused(status, code, retry) => refused.push((status, code, retry)),
        }
    }
    assert!(
        refused.len() >= 100,
        "the disk filled: {} refused",
        refused.len()
    );
    for (status, code, retry) in &refused {
        assert_eq!(*status, StatusCode::INSUFFICIENT_STORAGE, "{code}");
        assert_eq!(code, "storage_full");
        assert!(retry.is_some(), "every refusal says when to retry");
    }

    // The kill switch on a full disk is refused too, never acknowledged without effect.
    let suspend = otto.suspend(&victim.did, "incident", false).await;
    let suspended_while_full = suspend.is_ok();
    if let Err(e) = &suspend {
        assert_eq!(e.status(), Some(StatusCode::INSUFFICIENT_STORAGE), "{e}");
    }
    let ready = t
        .client
        .raw(reqwest::Method::GET, "/readyz")
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(ready.headers().get("retry-after").is_some());
    let live = t
        .client
        .raw(reqwest::Method::GET, "/healthz")
        .send()
        .await
        .expect("answered");
    assert_eq!(live.status(), StatusCode::OK, "liveness is not readiness");

    // Space comes back: the same server takes writes again, by itself.
    store.set_max_pages(None).await.expect("uncap");
    let ready = t
        .client
        .raw(reqwest::Method::GET, "/readyz")
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), StatusCode::OK);
    let Outcome::Acknowledged(after) = register(&alice, 1000).await else {
        unreachable!("a write succeeds once there is room")
    };
    acknowledged.push(after);
    if !suspended_while_full {
        otto.suspend(&victim.did, "incident", false)
            .await
            .expect("the kill switch works again");
    }

    // Every acknowledged write is there, read back by the server and after a restart.
    let listed: Vec<String> = alice
        .agents(false)
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.did)
        .collect();
    for did in &acknowledged {
        assert!(
            listed.contains(did),
            "{did} was acknowledged but is not stored"
        );
    }
    assert_eq!(
        alice.agent(&victim.did).await.expect("read").status,
        AgentStatus::Suspended
    );
    eprintln!(
        "full database (max_page_count): {} writes acknowledged, all stored; {} refused with \
         507 storage_full and Retry-After; kill switch {}; recovered without a restart",
        acknowledged.len(),
        refused.len(),
        if suspended_while_full {
            "fit"
        } else {
            "refused 507, then took effect"
        }
    );
    let reopened = SqliteStore::open(&db).await.expect("reopen");
    use sponsor_console::server::store::AgentStore;
    for did in &acknowledged {
        assert!(
            reopened
                .agent(did, t.clock_now())
                .await
                .expect("read")
                .is_some(),
            "{did} lost across a reopen"
        );
    }
    let report = alice.audit_verify(None).await;
    // A plain sponsor verifies what they may read; the chain itself must still hold.
    let sam = t.as_user("sam").await;
    assert!(
        sam.audit_verify(None).await.expect("verify").ok,
        "{report:?}"
    );
}

/// The real server with its file size capped (`ulimit -f`, `SIGXFSZ` ignored): once the
/// write-ahead log cannot grow, SQLite fails at COMMIT, as on a full disk.
async fn spawn_capped_server(
    config: &std::path::Path,
    kib: u64,
) -> (tokio::process::Child, u32, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let script = format!("trap '' XFSZ; ulimit -S -f {kib}; exec \"$0\" --config \"$1\" serve");
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_governance-server")])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let pid = child.id().expect("a pid");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("server printed its address");
        if let Some(rest) = line.strip_prefix("governance-server listening on ") {
            break rest.split(' ').next().unwrap_or_default().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, pid, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_on_a_full_disk_poisons_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash =
        sponsor_console::server::passwords::hash_password(crate::common::PASSWORD).expect("hash");
    let db = dir.path().join("g.db");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndatabase = \"{}\"\n\n[limits]\nmax_agents_per_sponsor = 10000\n\n\
             [[sponsors]]\nusername = \"alice\"\nroles = [\"sponsor\", \"on-call\"]\npassword_hash = \"{hash}\"\n",
            db.display(),
        ),
    )
    .expect("config");
    // Start uncapped once, so the database and its schema exist; then cap at what is there
    // plus a little.
    let (mut first, _, _) = spawn_capped_server(&config, 1 << 30).await;
    first.kill().await.expect("kill");
    let used = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("g.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    let (mut server, pid, base) = spawn_capped_server(&config, used / 1024 + 256).await;
    let client = ApiClient::new(&base).expect("client");
    let alice = client.with_token(crate::common::sign_in(&client, "alice").await.access_token);

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut victim = None;
    for n in 0..300 {
        match register(&alice, n).await {
            Outcome::Acknowledged(did) => {
                victim.get_or_insert_with(|| did.clone());
                acknowledged.push(did);
            }
            Outcome::Refused(status, code, retry) => {
                assert!(
                    status == StatusCode::INSUFFICIENT_STORAGE
                        || status == StatusCode::SERVICE_UNAVAILABLE,
                    "{status} {code}"
                );
                assert!(retry.is_some(), "{status} {code} says when to retry");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the cap was reached");
    let victim = victim.expect("some registrations fit");
    let suspended = alice.suspend(&victim, "incident", false).await;
    if let Err(e) = &suspended {
        assert!(
            matches!(
                e.status(),
                Some(StatusCode::INSUFFICIENT_STORAGE | StatusCode::SERVICE_UNAVAILABLE)
            ),
            "{e}"
        );
    }

    // Space comes back (the cap is lifted on the running process): it recovers by itself.
    let lifted = tokio::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--fsize=unlimited:unlimited"])
        .status()
        .await
        .expect("prlimit runs");
    assert!(lifted.success());
    let ready = client
        .raw(reqwest::Method::GET, "/readyz")
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), StatusCode::OK);
    match register(&alice, 10_000).await {
        Outcome::Acknowledged(did) => acknowledged.push(did),
        other => unreachable!("a write succeeds once there is room: {other:?}"),
    }
    if suspended.is_err() {
        alice
            .suspend(&victim, "incident", false)
            .await
            .expect("the kill switch works again");
    }
    assert_eq!(
        alice.agent(&victim).await.expect("read").status,
        AgentStatus::Suspended,
        "a suspension that answered 200 took effect"
    );
    server.kill().await.expect("kill");
    eprintln!(
        "file size limit (RLIMIT_FSIZE): {} writes acknowledged, all stored; {refused} refused \
         with 507/503 and Retry-After; the kill switch {}; recovered once the limit was lifted",
        acknowledged.len(),
        if suspended.is_ok() {
            "fit"
        } else {
            "was refused, then took effect"
        }
    );

    // Every acknowledged write is in the file.
    let reopened = SqliteStore::open(&db).await.expect("reopen");
    use sponsor_console::server::store::AgentStore;
    let now = chrono::Utc::now();
    for did in &acknowledged {
        assert!(
            reopened.agent(did, now).await.expect("read").is_some(),
            "{did} was acknowledged but is not stored"
        );
    }
}

/// One file, one server: a second server on the same database refuses to start and names the
/// first; once the first stops, the file is free again.
#[tokio::test]
async fn a_second_server_on_the_same_file_refuses_to_start() {
    use sponsor_console::clock::SystemClock;
    use sponsor_console::server::start;
    use tokio::net::TcpListener;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("governance.db");
    let first_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let first = start(settings(), &db, first_listener, Arc::new(SystemClock))
        .await
        .expect("the first server starts");
    let second = start(
        settings(),
        &db,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        Arc::new(SystemClock),
    )
    .await;
    let message = match second {
        Ok(_) => unreachable!("a second server on the same file started"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("already served"), "{message}");
    assert!(
        message.contains(&first.addr.to_string()),
        "the error names the first server: {message}"
    );
    first.shutdown().await.expect("stops");
    let again = start(
        settings(),
        &db,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        Arc::new(SystemClock),
    )
    .await
    .expect("the file is free once the first server stops");
    again.shutdown().await.expect("stops");
}
