//! The audit chain: paging, export, verification, and three kinds of tampering done to the
//! SQLite file behind the server's back, each named by `seq`.

use reqwest::StatusCode;
use sponsor_console::client::ApiClient;
use sponsor_console::domain::audit::GENESIS_HASH;
use sqlx::{Connection, Executor, SqliteConnection};

use crate::common::{TestServer, code_of};

/// A server with a few events: sign-ins and registrations.
async fn busy_server() -> (TestServer, ApiClient) {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    for i in 0..3 {
        t.agent(&alice, &format!("bot-{i}"), &["read:x"]).await;
    }
    let sam = t.as_user("sam").await;
    (t, sam)
}

/// Opens the database file as an attacker would, without the append-only triggers.
async fn attacker(t: &TestServer) -> SqliteConnection {
    let url = format!("sqlite://{}", t.db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    conn.execute("DROP TRIGGER audit_events_no_update")
        .await
        .unwrap();
    conn.execute("DROP TRIGGER audit_events_no_delete")
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn pages_export_and_verify() {
    let (t, sam) = busy_server().await;
    let report = sam.audit_verify(None).await.unwrap();
    assert!(report.ok, "{report:?}");
    let all = sam.audit_export().await.unwrap();
    assert_eq!(report.count, all.len() as i64);
    assert_eq!(report.head, all.last().unwrap().hash);
    assert_eq!(all[0].event.prev_hash, GENESIS_HASH);
    assert!(
        all.windows(2)
            .all(|w| w[1].event.prev_hash == w[0].hash && w[1].event.seq == w[0].event.seq + 1)
    );
    assert!(all.iter().any(|e| e.event.action == "agent.registered"));

    // Paging by seq returns the same events.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = sam.audit_page(after, 2).await.unwrap();
        paged.extend(page.events);
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(paged, all);

    // A sponsor reads only events about themselves and their agents; exporting is for leads.
    let bob = t.as_user("bob").await;
    let bobs = bob.audit_page(0, 1000).await.unwrap().events;
    assert!(!bobs.is_empty());
    assert!(
        bobs.iter().all(|e| e.event.action != "agent.registered"),
        "bob sees none of alice's agents"
    );
    assert_eq!(code_of(bob.audit_export().await), "forbidden");
    assert!(bob.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn a_changed_row_is_named() {
    let (t, sam) = busy_server().await;
    let mut db = attacker(&t).await;
    sqlx::query("UPDATE audit_events SET details = '{\"name\":\"innocent\"}' WHERE seq = 3")
        .execute(&mut db)
        .await
        .unwrap();
    let report = sam.audit_verify(None).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_bad_seq, Some(3), "{report:?}");
    assert_eq!(report.count, 2);
}

#[tokio::test]
async fn a_deleted_row_is_named() {
    let (t, sam) = busy_server().await;
    let mut db = attacker(&t).await;
    sqlx::query("DELETE FROM audit_events WHERE seq = 4")
        .execute(&mut db)
        .await
        .unwrap();
    let report = sam.audit_verify(None).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_bad_seq, Some(4), "{report:?}");
}

#[tokio::test]
async fn two_swapped_rows_are_named() {
    let (t, sam) = busy_server().await;
    let mut db = attacker(&t).await;
    for sql in [
        "UPDATE audit_events SET seq = -1 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -1",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    let report = sam.audit_verify(None).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_bad_seq, Some(5), "{report:?}");
}

#[tokio::test]
async fn the_server_itself_cannot_rewrite_history() {
    let t = TestServer::start().await;
    t.as_user("alice").await;
    let url = format!("sqlite://{}", t.db.display());
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    let update = sqlx::query("UPDATE audit_events SET action = 'x' WHERE seq = 1")
        .execute(&mut db)
        .await;
    assert!(update.is_err(), "the append-only trigger refuses updates");
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut db)
        .await;
    assert!(delete.is_err());
    let agent_token = t
        .client
        .raw(reqwest::Method::GET, "/v1/audit")
        .send()
        .await
        .unwrap();
    assert_eq!(agent_token.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_tail_is_the_newest_events_oldest_first() {
    let (t, sam) = busy_server().await;
    let all = sam.audit_export().await.unwrap();
    let tail = sam.audit_tail(3).await.unwrap();
    assert_eq!(tail, all[all.len() - 3..].to_vec());
    let everything = sam.audit_tail(1000).await.unwrap();
    assert_eq!(everything, all);
    let alice = t.as_user("alice").await;
    let mine = alice.audit_tail(1000).await.unwrap();
    assert!(mine.len() > 3 && mine.len() < everything.len());
    assert!(mine.windows(2).all(|w| w[0].event.seq < w[1].event.seq));
}
