//! Live events over SSE: ids are audit seqs, `Last-Event-ID` resumes without loss or
//! duplicates after a dropped connection, and each sponsor sees only their own agents.

use sponsor_console::protocol::audit::AuditEvent;

use crate::common::{TestServer, approve, elevation};

async fn take(stream: &mut sponsor_console::client::EventStream, n: usize) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(stream.next().await.expect("stream open").expect("event"));
    }
    out
}

#[tokio::test]
async fn resume_after_a_dropped_connection_loses_nothing_and_repeats_nothing() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;

    let mut live = alice.events(Some(0)).await.unwrap();
    let history = alice.audit_page(0, 1000).await.unwrap().events;
    let first = take(&mut live, history.len()).await;
    assert_eq!(first, history, "replays what alice may see, in order");

    let a = bot
        .request_elevation(&elevation(&["read:crm:a"], 3600), None)
        .await
        .unwrap();
    let got = take(&mut live, 1).await;
    assert_eq!(got[0].event.action, "request.submitted");
    assert_eq!(got[0].event.details["request_id"], a.id.as_str());
    let last_seen = got[0].event.seq;
    drop(live); // the connection drops

    // While disconnected, more happens.
    let b = bot
        .request_elevation(&elevation(&["read:crm:b"], 3600), None)
        .await
        .unwrap();
    alice.decide(&a.id, &approve(None, None)).await.unwrap();

    let mut resumed = alice.events(Some(last_seen)).await.unwrap();
    let missed = take(&mut resumed, 2).await;
    assert_eq!(missed[0].event.seq, last_seen + 1);
    assert_eq!(missed[0].event.details["request_id"], b.id.as_str());
    assert_eq!(missed[1].event.action, "request.approved");
    assert!(missed.windows(2).all(|w| w[0].event.seq < w[1].event.seq));
    // And it keeps streaming new events.
    bot.cancel_request(&b.id, "no longer needed").await.unwrap();
    let next = take(&mut resumed, 1).await;
    assert_eq!(next[0].event.action, "request.cancelled");
    assert_eq!(next[0].event.seq, missed[1].event.seq + 1);
}

#[tokio::test]
async fn sponsors_see_only_their_agents_events() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let bob = t.as_user("bob").await;
    let sam = t.as_user("sam").await;
    let (alice_key, _) = t.agent(&alice, "a", &[]).await;
    let (bob_key, _) = t.agent(&bob, "b", &[]).await;
    let head = t.server.state.store.audit_head().await.unwrap();
    let mut bobs = bob.events(Some(head)).await.unwrap();
    let mut sams = sam.events(Some(head)).await.unwrap();
    // Without Last-Event-ID or after, a stream starts at the present.
    let mut fresh = alice.events(None).await.unwrap();

    let alice_bot = t.as_agent(&alice_key).await;
    let bob_bot = t.as_agent(&bob_key).await;
    alice_bot
        .request_elevation(&elevation(&["read:crm:a"], 3600), None)
        .await
        .unwrap();
    let bobs_request = bob_bot
        .request_elevation(&elevation(&["read:crm:b"], 3600), None)
        .await
        .unwrap();

    // Bob's stream skips alice's agent's token and request, and shows his own.
    let seen = take(&mut bobs, 2).await;
    assert!(
        seen.iter().all(|e| e.event.subject == bob_key.did()),
        "{seen:?}"
    );
    assert_eq!(
        seen[1].event.details["request_id"],
        bobs_request.id.as_str()
    );
    // The security lead sees all four (two token issuances, two submissions).
    let all = take(&mut sams, 4).await;
    assert_eq!(all.len(), 4);
    // Alice's fresh stream starts with her agent's token issuance, nothing older.
    let first = take(&mut fresh, 1).await;
    assert_eq!(first[0].event.seq, head + 1);
}

#[tokio::test]
async fn shutdown_ends_open_event_streams_instead_of_waiting_for_them() {
    let (server, _dir) = crate::common::start_real_clock(crate::common::settings()).await;
    let client = sponsor_console::client::ApiClient::new(&server.base_url()).unwrap();
    let alice = client.with_token(crate::common::sign_in(&client, "alice").await.access_token);
    let mut stream = alice.events(None).await.unwrap();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), server.shutdown()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "shutdown finished with a subscriber connected: {stopped:?}"
    );
    // The subscriber sees its stream end (and reconnects elsewhere), not a hang.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await;
    assert!(matches!(ended, Ok(None | Some(Err(_)))), "{ended:?}");
}
