//! Just-in-time elevation over real HTTP with the injected clock: submit, list, decide with a
//! time bound, tokens carrying the grant, expiry, two approvals, self-approval, idempotency,
//! races, waiting, fatigue, early revocation.

use reqwest::StatusCode;
use sponsor_console::protocol::requests::{Decision, RequestStatus};

use crate::common::{TestServer, approve, code_of, deny, elevation, query};

fn scope_of(token: &str) -> Vec<String> {
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_full_elevation_story() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "ledger-bot", &["read:crm:*"]).await;
    let bot = t.as_agent(&key).await;

    // The agent asks for two capabilities for 2 hours.
    let asked = bot
        .request_elevation(
            &elevation(&["write:crm:accounts", "send:email"], 7200),
            None,
        )
        .await
        .unwrap();
    assert_eq!(asked.status, RequestStatus::Pending);
    assert_eq!(asked.policy.max_seconds, 4 * 3600);
    assert_eq!(asked.agent_did, agent.did);

    // The sponsor sees it pending.
    let pending = alice.requests(&query("status=pending")).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, asked.id);
    assert_eq!(pending[0].justification, "quarterly close needs the ledger");

    // Approves less than asked: 1 hour, only one of the two capabilities.
    let audit_before = t.server.state.store.audit_head().await.unwrap();
    let decided = alice
        .decide(
            &asked.id,
            &approve(Some(3600), Some(&["write:crm:accounts"])),
        )
        .await
        .unwrap();
    assert_eq!(decided.status, RequestStatus::Approved);
    assert_eq!(
        t.server.state.store.audit_head().await.unwrap(),
        audit_before + 1,
        "one audit event"
    );
    let grant = alice.grants(&Default::default()).await.unwrap().remove(0);
    assert_eq!(grant.capabilities, vec!["write:crm:accounts"]);
    assert_eq!((grant.not_after - grant.not_before).num_seconds(), 3600);
    assert_eq!(Some(grant.id.clone()), decided.grant_id);

    // The agent's next token carries exactly that.
    let token = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    assert_eq!(
        scope_of(&token.access_token),
        vec!["read:crm:*", "write:crm:accounts"]
    );
    assert_eq!(token.expires_in, 900);

    // 50 minutes later a token lives only until the grant ends.
    t.advance(50 * 60);
    let late = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    assert_eq!(late.expires_in, 600, "never past the grant's end");
    // (the agent's first token has expired by now: it introspects with a fresh one)
    let bot = t.as_agent(&key).await;
    let seen = bot.introspect(&late.access_token).await.unwrap();
    assert!(seen.active);
    assert!(seen.scope.unwrap().contains("write:crm:accounts"));

    // Time passes: the capability is gone from introspection and from new tokens.
    t.advance(10 * 60);
    let alice = t.as_user("alice").await;
    let checker = t.as_user("sam").await;
    assert!(!checker.introspect(&late.access_token).await.unwrap().active);
    let after = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    assert_eq!(scope_of(&after.access_token), vec!["read:crm:*"]);
    assert!(alice.grants(&Default::default()).await.unwrap().is_empty());
    assert_eq!(alice.grants(&query("active=false")).await.unwrap().len(), 1);
    assert!(checker.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn deny_lowers_trust_and_ends_the_request() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "bot", &["read:crm:*"]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    let denied = alice.decide(&asked.id, &deny()).await.unwrap();
    assert_eq!(denied.status, RequestStatus::Denied);
    assert_eq!(denied.approvals[0].decision, Decision::Deny);
    let again = alice.decide(&asked.id, &approve(None, None)).await;
    let err = again.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(StatusCode::CONFLICT), Some("already_decided"))
    );
    let trust = alice.trust(&agent.did).await.unwrap();
    assert_eq!(trust.score, 475);
    assert_eq!(trust.history.last().unwrap().score, 475);
    // Deciding without a justification is refused.
    let asked = bot
        .request_elevation(&elevation(&["write:crm:y"], 3600), None)
        .await
        .unwrap();
    let mut empty = deny();
    empty.justification = "  ".into();
    assert_eq!(
        code_of(alice.decide(&asked.id, &empty).await),
        "justification_required"
    );
}

#[tokio::test]
async fn pending_requests_expire_as_a_deny() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let first = bot
        .request_elevation(&elevation(&["read:crm:x"], 3600), None)
        .await
        .unwrap();
    let second = bot
        .request_elevation(&elevation(&["read:crm:y"], 3600), None)
        .await
        .unwrap();
    t.advance(3600);
    // The sweeper expires what is due, with nobody looking.
    let expired = t.sweep().await;
    let alice = t.as_user("alice").await;
    assert_eq!(expired.len(), 2);
    let seen = alice.get_request(&first.id).await.unwrap();
    assert_eq!(
        (seen.status, seen.reason.as_deref()),
        (RequestStatus::Expired, Some("expired"))
    );
    let err = alice
        .decide(&second.id, &approve(None, None))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(StatusCode::CONFLICT), Some("expired"))
    );

    // A decision arriving after the TTL but before the sweeper also finds it expired.
    let bot = t.as_agent(&key).await;
    let third = bot
        .request_elevation(&elevation(&["read:crm:z"], 3600), None)
        .await
        .unwrap();
    t.advance(3601);
    let alice = t.as_user("alice").await;
    assert_eq!(
        code_of(alice.decide(&third.id, &approve(None, None)).await),
        "expired"
    );
    assert_eq!(
        alice.get_request(&third.id).await.unwrap().status,
        RequestStatus::Expired
    );
}

#[tokio::test]
async fn two_approvals_needed_and_one_deny_ends_it() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let (key, _) = t.agent(&alice, "janitor", &["read:crm:*"]).await;
    let bot = t.as_agent(&key).await;

    let asked = bot
        .request_elevation(&elevation(&["delete:crm:stale"], 3600), None)
        .await
        .unwrap();
    assert_eq!(asked.policy.approvals_required, 2);
    let one = alice
        .decide(&asked.id, &approve(Some(1800), None))
        .await
        .unwrap();
    assert_eq!(one.status, RequestStatus::Pending);
    assert_eq!(one.approvals.len(), 1);
    // The same person cannot be both approvers.
    assert_eq!(
        code_of(alice.decide(&asked.id, &approve(None, None)).await),
        "already_decided_by_you"
    );
    let ended = sam.decide(&asked.id, &deny()).await.unwrap();
    assert_eq!(ended.status, RequestStatus::Denied);
    assert!(ended.grant_id.is_none());

    // Two distinct approvers: the grant gets the shorter of their durations.
    let asked = bot
        .request_elevation(&elevation(&["delete:crm:stale"], 3600), None)
        .await
        .unwrap();
    alice
        .decide(&asked.id, &approve(Some(1800), None))
        .await
        .unwrap();
    let done = sam
        .decide(&asked.id, &approve(Some(3600), None))
        .await
        .unwrap();
    assert_eq!(done.status, RequestStatus::Approved);
    let grant = alice.grants(&Default::default()).await.unwrap().remove(0);
    assert_eq!((grant.not_after - grant.not_before).num_seconds(), 1800);
    // Someone who is neither a sponsor nor in an approver role cannot decide.
    let bob = t.as_user("bob").await;
    let asked = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    assert_eq!(
        bob.decide(&asked.id, &approve(None, None))
            .await
            .unwrap_err()
            .status(),
        Some(StatusCode::NOT_FOUND)
    );
}

#[tokio::test]
async fn nobody_approves_a_request_made_on_their_own_behalf() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let (key, _) = t.agent(&alice, "assistant", &[]).await;
    let bot = t.as_agent(&key).await;
    let mut body = elevation(&["read:crm:inbox"], 3600);
    body.on_behalf_of = Some("alice".into());
    let asked = bot.request_elevation(&body, None).await.unwrap();
    let err = alice
        .decide(&asked.id, &approve(None, None))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(StatusCode::FORBIDDEN), Some("self_approval"))
    );
    assert_eq!(
        sam.decide(&asked.id, &approve(None, None))
            .await
            .unwrap()
            .status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn approvals_are_bounded_by_the_request_and_the_policy() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["write:crm:x", "read:crm:y"], 86_400), None)
        .await
        .unwrap();
    // Policy max for write is 4 h.
    assert_eq!(
        code_of(
            alice
                .decide(&asked.id, &approve(Some(4 * 3600 + 1), None))
                .await
        ),
        "duration_exceeds_limit"
    );
    assert_eq!(
        code_of(
            alice
                .decide(&asked.id, &approve(Some(3600), Some(&["delete:crm:x"])))
                .await
        ),
        "capabilities_not_requested"
    );
    let ok = alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    let grant = alice.grants(&Default::default()).await.unwrap().remove(0);
    assert_eq!(
        (grant.not_after - grant.not_before).num_seconds(),
        4 * 3600,
        "default: the most allowed"
    );
    assert_eq!(ok.status, RequestStatus::Approved);
    // Capabilities nobody wrote policy for cannot be requested at all.
    assert_eq!(
        code_of(
            bot.request_elevation(&elevation(&["launch:rockets"], 3600), None)
                .await
        ),
        "capability_not_in_policy"
    );
    assert_eq!(
        code_of(
            bot.request_elevation(&elevation(&["read:crm:x"], 10), None)
                .await
        ),
        "invalid_duration"
    );
    let mut no_reason = elevation(&["read:crm:x"], 3600);
    no_reason.justification = String::new();
    assert_eq!(
        code_of(bot.request_elevation(&no_reason, None).await),
        "justification_required"
    );
}

#[tokio::test]
async fn idempotent_submissions() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let body = elevation(&["read:crm:x"], 3600);
    let first = bot.request_elevation(&body, Some("k-1")).await.unwrap();
    let again = bot.request_elevation(&body, Some("k-1")).await.unwrap();
    assert_eq!(first, again);
    let other = bot
        .request_elevation(&elevation(&["read:crm:y"], 3600), Some("k-1"))
        .await;
    assert_eq!(code_of(other), "idempotency_key_reused");
    assert_eq!(alice.requests(&Default::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn two_deciders_at_the_same_moment_exactly_one_wins() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    for round in 0..5 {
        let asked = bot
            .request_elevation(&elevation(&[&format!("read:crm:r{round}")], 3600), None)
            .await
            .unwrap();
        let (yes, no) = (approve(None, None), deny());
        let (a, s) = tokio::join!(alice.decide(&asked.id, &yes), sam.decide(&asked.id, &no));
        let wins = [a.is_ok(), s.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: {a:?} / {s:?}");
        let loser = match (a, s) {
            (Err(e), _) | (_, Err(e)) => e,
            (Ok(_), Ok(_)) => unreachable!("both won"),
        };
        assert_eq!(
            (loser.status(), loser.code()),
            (Some(StatusCode::CONFLICT), Some("already_decided"))
        );
    }
    assert!(sam.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn an_agent_waits_for_the_decision_and_can_cancel() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["read:crm:x"], 3600), None)
        .await
        .unwrap();
    let (waited, decided) = tokio::join!(bot.wait_request(&asked.id, 30), async {
        tokio::task::yield_now().await;
        alice.decide(&asked.id, &approve(None, None)).await
    });
    assert_eq!(decided.unwrap().status, RequestStatus::Approved);
    assert_eq!(waited.unwrap().status, RequestStatus::Approved);
    // A timeout of 0 answers at once with the pending request.
    let second = bot
        .request_elevation(&elevation(&["read:crm:y"], 3600), None)
        .await
        .unwrap();
    assert_eq!(
        bot.wait_request(&second.id, 0).await.unwrap().status,
        RequestStatus::Pending
    );
    let cancelled = bot
        .cancel_request(&second.id, "task finished without it")
        .await
        .unwrap();
    assert_eq!(cancelled.status, RequestStatus::Cancelled);
    assert_eq!(
        code_of(alice.decide(&second.id, &approve(None, None)).await),
        "cancelled"
    );
}

#[tokio::test]
async fn approval_fatigue_auto_denies() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, agent) = t.agent(&alice, "pushy", &[]).await;
    let bot = t.as_agent(&key).await;
    for i in 0..5 {
        let r = bot
            .request_elevation(&elevation(&[&format!("read:crm:n{i}")], 3600), None)
            .await
            .unwrap();
        assert_eq!(r.status, RequestStatus::Pending);
    }
    let sixth = bot
        .request_elevation(&elevation(&["read:crm:n6"], 3600), None)
        .await
        .unwrap();
    assert_eq!(
        (sixth.status, sixth.reason.as_deref()),
        (RequestStatus::Denied, Some("approval_fatigue"))
    );
    assert_eq!(alice.trust(&agent.did).await.unwrap().score, 450);
    // Ten minutes later the window has passed.
    t.advance(601);
    let bot = t.as_agent(&key).await;
    let later = bot
        .request_elevation(&elevation(&["read:crm:n7"], 3600), None)
        .await
        .unwrap();
    assert_eq!(later.status, RequestStatus::Pending);
}

#[tokio::test]
async fn revoking_a_grant_early_ends_the_tokens_that_carry_it() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &["read:crm:*"]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    alice.decide(&asked.id, &approve(None, None)).await.unwrap();
    let with = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    let without = t
        .client
        .client_credentials(&t.assertion(&key), Some("read:crm:leads"))
        .await
        .unwrap();
    let grant = alice.grants(&Default::default()).await.unwrap().remove(0);
    let done = alice.revoke_grant(&grant.id, "task is over").await.unwrap();
    assert_eq!(done.grants_revoked, vec![grant.id.clone()]);
    assert_eq!(done.tokens_revoked, 1);
    let sam = t.as_user("sam").await;
    assert!(!sam.introspect(&with.access_token).await.unwrap().active);
    assert!(
        sam.introspect(&without.access_token).await.unwrap().active,
        "a token without the grant lives on"
    );
    assert_eq!(
        code_of(alice.revoke_grant(&grant.id, "again").await),
        "already_revoked"
    );
    let next = t
        .client
        .client_credentials(&t.assertion(&key), None)
        .await
        .unwrap();
    assert_eq!(scope_of(&next.access_token), vec!["read:crm:*"]);
}

#[tokio::test]
async fn humans_cannot_submit_and_agents_cannot_decide() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    assert_eq!(
        code_of(
            alice
                .request_elevation(&elevation(&["read:crm:x"], 3600), None)
                .await
        ),
        "forbidden"
    );
    let asked = bot
        .request_elevation(&elevation(&["read:crm:x"], 3600), None)
        .await
        .unwrap();
    assert_eq!(
        code_of(bot.decide(&asked.id, &approve(None, None)).await),
        "forbidden"
    );
    assert_eq!(
        code_of(alice.get_request("req_nope!").await),
        "invalid_request_id"
    );
}

#[tokio::test]
async fn every_decision_writes_exactly_one_audit_event() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let (key, agent) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let store = &t.server.state.store;
    let single = bot
        .request_elevation(&elevation(&["write:crm:x"], 3600), None)
        .await
        .unwrap();
    let denied = bot
        .request_elevation(&elevation(&["write:crm:y"], 3600), None)
        .await
        .unwrap();
    let double = bot
        .request_elevation(&elevation(&["delete:crm:z"], 3600), None)
        .await
        .unwrap();
    let cases = [
        (&alice, &single.id, approve(None, None), "request.approved"),
        (&alice, &denied.id, deny(), "request.denied"),
        (
            &alice,
            &double.id,
            approve(None, None),
            "request.approval_recorded",
        ),
        (&sam, &double.id, approve(None, None), "request.approved"),
    ];
    for (who, id, body, action) in cases {
        let before = store.audit_head().await.unwrap();
        who.decide(id, &body).await.unwrap();
        let after = sam.audit_page(before, 100).await.unwrap().events;
        assert_eq!(after.len(), 1, "{action}: {after:?}");
        assert_eq!(after[0].event.action, action);
        assert_eq!(after[0].event.subject, agent.did);
        assert_eq!(after[0].event.details["request_id"], id.as_str());
    }
    // A refused decision writes nothing.
    let before = store.audit_head().await.unwrap();
    assert!(alice.decide(&single.id, &deny()).await.is_err());
    assert_eq!(store.audit_head().await.unwrap(), before);
    assert!(sam.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn pending_lists_come_soonest_to_expire_first() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let bot = t.as_agent(&key).await;
        ids.push(
            bot.request_elevation(&elevation(&[&format!("read:crm:{i}")], 3600), None)
                .await
                .unwrap()
                .id,
        );
        t.advance(60);
    }
    let alice = t.as_user("alice").await;
    let pending: Vec<String> = alice
        .requests(&query("status=pending&limit=2"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        pending,
        ids[..2].to_vec(),
        "a capped page keeps the most urgent"
    );
    let all: Vec<String> = alice
        .requests(&query("status=all"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all.first(), ids.last(), "history is newest first");
}

#[tokio::test]
async fn pending_lists_page_by_cursor_without_gaps_or_repeats() {
    let mut s = crate::common::settings();
    let mut policy = sponsor_console::domain::policy::Policy::shipped().unwrap();
    policy.requests.fatigue_limit = 1000;
    s.policy = Some(policy);
    let t = TestServer::start_with(s).await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(
            bot.request_elevation(&elevation(&[&format!("read:crm:{i}")], 3600), None)
                .await
                .unwrap()
                .id,
        );
    }
    let paged: Vec<String> = alice
        .all_pending(5)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut sorted = paged.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 23, "no repeats");
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(sorted, expected, "no gaps");
    let bad = alice
        .raw(
            reqwest::Method::GET,
            "/v1/requests?status=pending&after=nonsense",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// Times are true: an expired request is decided when it expired, not when the sweep ran, and
/// a grant that runs out writes its own audit event with the time it ended.
#[tokio::test]
async fn expiries_are_recorded_at_their_true_time() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "bot", &[]).await;
    let bot = t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["read:crm:x"], 3600), None)
        .await
        .unwrap();
    let granted = bot
        .request_elevation(&elevation(&["read:crm:y"], 3600), None)
        .await
        .unwrap();
    let approved = alice
        .decide(&granted.id, &approve(Some(600), None))
        .await
        .unwrap();
    let grant_id = approved.grant_id.clone().unwrap();
    // The sweep runs long after both ran out.
    t.advance(5 * 3600);
    t.sweep().await;
    let alice = t.as_user("alice").await;
    let seen = alice.get_request(&asked.id).await.unwrap();
    assert_eq!(seen.status, RequestStatus::Expired);
    assert_eq!(seen.decided_at, Some(asked.expires_at));
    let sam = t.as_user("sam").await;
    let ended: Vec<_> = sam
        .audit_export()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "grant.expired")
        .collect();
    assert_eq!(ended.len(), 1, "one event per grant that ran out");
    let grant = alice.grants(&query("active=false")).await.unwrap();
    let grant = grant.iter().find(|g| g.id == grant_id).unwrap();
    assert_eq!(ended[0].event.details["grant_id"], grant_id.as_str());
    assert_eq!(
        ended[0].event.details["not_after"],
        sponsor_console::protocol::time::format(&grant.not_after).as_str()
    );
    // A second sweep records nothing again.
    t.sweep().await;
    let again = sam
        .audit_export()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "grant.expired")
        .count();
    assert_eq!(again, 1);
}
