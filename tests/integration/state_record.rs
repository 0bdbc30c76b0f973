//! The state agrees with the record: direct edits of the tables that bypass the server are
//! found by replaying the audit chain (`audit verify --state`), on demand, at start, and by the
//! headless command's exit code.

use std::collections::BTreeSet;
use std::process::Stdio;

use sponsor_console::client::ApiClient;
use sponsor_console::client::session::STATE_DIR_ENV;
use sponsor_console::protocol::requests::RequestStatus;
use sqlx::{Connection, SqliteConnection};

use crate::common::{TestServer, approve, elevation, settings, sign_in, start_real_clock};

/// The database file opened as someone with write access to it would.
async fn attacker(db: &std::path::Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

async fn edit(db: &mut SqliteConnection, sql: &str, bind: &str) {
    let done = sqlx::query(sql).bind(bind).execute(&mut *db).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
}

/// (area, id, field) of each difference.
fn found(
    report: &sponsor_console::protocol::audit::StateReport,
) -> BTreeSet<(String, String, String)> {
    report
        .differences
        .iter()
        .map(|d| (d.area.clone(), d.id.clone(), d.field.clone()))
        .collect()
}

#[tokio::test]
async fn five_direct_edits_are_five_differences_and_one_alert() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let otto = t.as_user("otto").await;
    let sam = t.as_user("sam").await;
    // A suspended agent whose grant and token were revoked with it, and a plain one.
    let (key, agent) = t.agent(&alice, "mailer", &["read:mail"]).await;
    let (_, plain) = t.agent(&alice, "reader", &["read:docs"]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["send:email"], 3600), None)
        .await
        .unwrap();
    let done = alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    assert_eq!(done.status, RequestStatus::Approved);
    let token = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    let jti = t
        .server
        .state
        .keys
        .verify_access(
            &token.access_token,
            &t.server.base_url(),
            "governance-api",
            t.clock_now(),
        )
        .unwrap()
        .jti;
    let suspended = otto
        .suspend(&agent.did, "exfiltration alert", false)
        .await
        .unwrap();
    let grant = suspended.grants_revoked[0].clone();

    let clean = sam.check_audit_state().await.unwrap();
    assert!(clean.ok, "{:?}", clean.differences);
    assert_eq!(clean.count, 0);

    let mut db = attacker(&t.db).await;
    edit(
        &mut db,
        "UPDATE agents SET status = 'active' WHERE did = ?",
        &agent.did,
    )
    .await;
    edit(
        &mut db,
        "UPDATE grants SET revoked_at = NULL, not_after = not_after + 31536000000 WHERE id = ?",
        &grant,
    )
    .await;
    edit(
        &mut db,
        "UPDATE access_tokens SET revoked_at = NULL WHERE jti = ?",
        &jti,
    )
    .await;
    edit(
        &mut db,
        "UPDATE agents SET capabilities = '[\"admin:*\",\"read:docs\"]' WHERE did = ?",
        &plain.did,
    )
    .await;
    edit(
        &mut db,
        "UPDATE sponsors SET roles = '[\"sponsor\",\"admin\"]' WHERE username = ?",
        "alice",
    )
    .await;

    let report = sam.check_audit_state().await.unwrap();
    assert!(!report.ok);
    let alice_id = sam.agent(&plain.did).await.unwrap().sponsors[0].id.clone();
    let expected: BTreeSet<(String, String, String)> = [
        ("agent", agent.did.as_str(), "status"),
        ("agent", plain.did.as_str(), "capabilities"),
        ("grant", grant.as_str(), "not_after"),
        ("grant", grant.as_str(), "revoked"),
        ("token", jti.as_str(), "revoked"),
        ("sponsor", alice_id.as_str(), "roles"),
    ]
    .into_iter()
    .map(|(a, i, f)| (a.to_owned(), i.to_owned(), f.to_owned()))
    .collect();
    assert_eq!(found(&report), expected);
    assert_eq!(report.count, 6);

    // A sponsor who may not read the whole chain sees that there are differences, not what.
    let bob = t.as_user("bob").await;
    let seen = bob.audit_state().await.unwrap();
    assert!(!seen.ok);
    assert_eq!(seen.count, 6);
    assert!(seen.differences.is_empty());

    // The alert is on the chain once, however often the same differences are found.
    sam.check_audit_state().await.unwrap();
    let alerts: Vec<_> = sam
        .audit_export()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "audit.state_mismatch")
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].event.details["differences"], 6);
    // And the chain itself still verifies: the alert is an ordinary event.
    assert!(sam.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn the_server_checks_at_start_and_the_headless_command_exits_7() {
    let (server, dir) = start_real_clock(settings()).await;
    let base = server.base_url();
    let client = ApiClient::new(&base).unwrap();
    let tokens = sign_in(&client, "sam").await;
    let state_dir = dir.path().join("state");
    crate::common::save_session(&state_dir, &base, &tokens, "sam");
    let run = || {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"));
        cmd.args(["--server", &base, "audit", "verify", "--state"])
            .env(STATE_DIR_ENV, &state_dir)
            .stdin(Stdio::null());
        cmd
    };
    let ok = run().output().await.unwrap();
    let text = String::from_utf8_lossy(&ok.stdout).to_string();
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("state ok"), "{text}");

    let db_path = dir.path().join("governance.db");
    let mut db = attacker(&db_path).await;
    edit(
        &mut db,
        "UPDATE sponsors SET roles = '[\"admin\"]' WHERE username = ?",
        "sam",
    )
    .await;
    let differs = run().output().await.unwrap();
    let text = String::from_utf8_lossy(&differs.stdout).to_string();
    assert_eq!(differs.status.code(), Some(7), "{text}");
    assert!(text.contains("STATE DIFFERS FROM THE RECORD"), "{text}");
    assert!(
        text.contains("roles is admin in the tables, security-lead on the record"),
        "{text}"
    );

    // A server started on the edited database finds a difference by itself. (Sponsors from
    // the configuration are written again at start, on the record, which mends the roles.)
    sqlx::query(
        "INSERT INTO agents (did, name, public_key, capabilities, created_at, updated_at)
         VALUES ('did:key:ghost', 'ghost', 'ghost-key', '[\"admin:*\"]', 0, 0)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    server.shutdown().await.unwrap();
    drop(db);
    let (server, _dir) = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = sponsor_console::server::start(
            settings(),
            &db_path,
            listener,
            std::sync::Arc::new(sponsor_console::clock::SystemClock),
        )
        .await
        .unwrap();
        (server, dir)
    };
    let mut report = None;
    for _ in 0..100 {
        report = server.state.record.last();
        if report.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let report = report.expect("the check at start ran");
    assert!(!report.ok);
    let found: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        ["agent did:key:ghost: presence is present in the tables, absent on the record"]
    );
    server.shutdown().await.unwrap();
}

/// An action request approved in the table, without a sponsor's decision on the record, is a
/// difference (a redelivery would otherwise get a signed approval for it).
#[tokio::test]
async fn an_action_approved_in_the_table_is_a_difference() {
    let (settings, _) = crate::agt::with_integration();
    let t = TestServer::start_with(settings).await;
    let sam = t.as_user("sam").await;
    // Three actions on the record: approved, denied, expired.
    crate::agt::every_action_event(&t).await;
    let clean = sam.check_audit_state().await.unwrap();
    assert!(clean.ok, "{:?}", clean.differences);
    let mut db = attacker(&t.db).await;
    let id = format!("ar_{:032x}", 2);
    edit(
        &mut db,
        "UPDATE action_requests SET status = 'approved' WHERE id = ?",
        &id,
    )
    .await;
    let report = sam.check_audit_state().await.unwrap();
    assert!(!report.ok);
    let expected: BTreeSet<(String, String, String)> =
        [("action".to_owned(), id.clone(), "status".to_owned())].into();
    assert_eq!(found(&report), expected);
    assert_eq!(report.differences[0].record, "denied");
    assert_eq!(report.differences[0].table, "approved");
}
