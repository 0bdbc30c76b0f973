//! Conformance: signing keys, access and refresh tokens, client assertions, agent tokens.

use std::sync::Arc;

use sponsor_console::domain::audit::ChainVerifier;
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::oauth::SubjectKind;
use sponsor_console::server::store::{
    AccessTokenRecord, AuditScope, NewRefreshToken, RefreshOutcome, Store, SuspendTarget,
};
use sponsor_console::server::tokens::generate_signing_key;

use super::{agent, at, code, sponsor};

pub(super) fn access(
    jti: &str,
    kind: SubjectKind,
    subject: &str,
    family: Option<&str>,
) -> AccessTokenRecord {
    AccessTokenRecord {
        jti: jti.into(),
        subject_kind: kind,
        subject: subject.into(),
        client_id: "sponsor-console".into(),
        family_id: family.map(Into::into),
        scope: "openid".into(),
        issued_at: at(0),
        expires_at: at(900),
        revoked_at: None,
    }
}

fn refresh(hash: &str, family: &str, sponsor_id: &str) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash.into(),
        family_id: family.into(),
        sponsor_id: sponsor_id.into(),
        client_id: "sponsor-console".into(),
        scope: "openid offline_access".into(),
        issued_at: at(0),
        expires_at: at(86_400),
    }
}

pub async fn signing_keys_rotate_and_stay_published(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert!(s.published_keys(at(0)).await.expect("keys").is_empty());
    let first = generate_signing_key(at(0)).expect("key");
    s.rotate_signing_keys(std::slice::from_ref(&first), at(0), Actor::system())
        .await
        .expect("rotated");
    let second = generate_signing_key(at(10)).expect("key");
    s.rotate_signing_keys(std::slice::from_ref(&second), at(910), Actor::system())
        .await
        .expect("rotated");
    let keys = s.published_keys(at(20)).await.expect("keys");
    assert_eq!(keys.len(), 2, "the old key stays published");
    assert_eq!(keys[0].kid, second.kid, "newest first");
    assert!(keys[0].retired_at.is_none());
    assert_eq!(keys[1].kid, first.kid);
    assert_eq!(keys[1].retired_at, Some(at(10)));
    assert_eq!(keys[1].private_pkcs8, first.private_pkcs8);
    let later = s.published_keys(at(911)).await.expect("keys");
    assert_eq!(later.len(), 1, "until its tokens have expired");
}

pub async fn access_tokens_are_stored_and_revoked_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    s.record_tokens(
        &access("j1", SubjectKind::Sponsor, &alice.id, None),
        None,
        None,
        at(0),
    )
    .await
    .expect("stored");
    let read = s.access_token("j1").await.expect("read").expect("present");
    assert_eq!(read.subject, alice.id);
    assert_eq!(read.subject_kind, SubjectKind::Sponsor);
    assert_eq!(read.expires_at, at(900));
    assert!(read.revoked_at.is_none());
    assert!(s.access_token("j2").await.expect("read").is_none());
    assert!(
        s.revoke_access_token("j1", Actor::sponsor(&alice.id), at(5))
            .await
            .expect("revoked")
    );
    assert!(
        !s.revoke_access_token("j1", Actor::sponsor(&alice.id), at(6))
            .await
            .expect("idempotent"),
        "a second revocation changes nothing"
    );
    let read = s.access_token("j1").await.expect("read").expect("present");
    assert_eq!(read.revoked_at, Some(at(5)));
    let revoked = s
        .audit_tail(&AuditScope::All, 5)
        .await
        .expect("tail")
        .iter()
        .filter(|e| e.event.action == "token.revoked")
        .count();
    assert_eq!(revoked, 1);
}

pub async fn refresh_tokens_rotate_and_reuse_revokes_the_family(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    s.record_tokens(
        &access("a1", SubjectKind::Sponsor, &alice.id, Some("fam")),
        Some(&refresh("r1", "fam", &alice.id)),
        None,
        at(0),
    )
    .await
    .expect("stored");
    assert_eq!(
        s.refresh_token_sponsor("r1").await.expect("read"),
        Some(alice.id.clone())
    );
    assert_eq!(s.refresh_token_sponsor("nope").await.expect("read"), None);
    let rotated = s
        .use_refresh_token(
            "r1",
            "sponsor-console",
            &refresh("r2", "ignored", &alice.id),
            &access("a2", SubjectKind::Sponsor, &alice.id, None),
            at(60),
        )
        .await
        .expect("rotated");
    assert!(
        matches!(rotated, RefreshOutcome::Rotated { ref sponsor_id } if *sponsor_id == alice.id)
    );
    let a2 = s.access_token("a2").await.expect("read").expect("stored");
    assert_eq!(
        a2.family_id.as_deref(),
        Some("fam"),
        "the successor joins the family"
    );
    // Another client presenting it: invalid, and nothing changes.
    let other = s
        .use_refresh_token(
            "r2",
            "another-client",
            &refresh("r3", "x", &alice.id),
            &access("a3", SubjectKind::Sponsor, &alice.id, None),
            at(61),
        )
        .await
        .expect("answered");
    assert!(matches!(other, RefreshOutcome::Invalid));
    // The used one again: reuse, and the family dies.
    let reused = s
        .use_refresh_token(
            "r1",
            "sponsor-console",
            &refresh("r4", "x", &alice.id),
            &access("a4", SubjectKind::Sponsor, &alice.id, None),
            at(62),
        )
        .await
        .expect("answered");
    assert!(matches!(reused, RefreshOutcome::Reused));
    for jti in ["a1", "a2"] {
        let t = s.access_token(jti).await.expect("read").expect("stored");
        assert!(t.revoked_at.is_some(), "{jti} revoked with its family");
    }
    assert!(s.access_token("a4").await.expect("read").is_none());
    let after = s
        .use_refresh_token(
            "r2",
            "sponsor-console",
            &refresh("r5", "x", &alice.id),
            &access("a5", SubjectKind::Sponsor, &alice.id, None),
            at(63),
        )
        .await
        .expect("answered");
    assert!(matches!(after, RefreshOutcome::Invalid));

    // RFC 7009 on a live family.
    s.record_tokens(
        &access("b1", SubjectKind::Sponsor, &alice.id, Some("fam2")),
        Some(&refresh("q1", "fam2", &alice.id)),
        None,
        at(100),
    )
    .await
    .expect("stored");
    assert!(
        !s.revoke_refresh_family("q1", "another-client", Actor::system(), at(101))
            .await
            .expect("answered")
    );
    assert!(
        s.revoke_refresh_family("q1", "sponsor-console", Actor::system(), at(101))
            .await
            .expect("answered")
    );
    let b1 = s.access_token("b1").await.expect("read").expect("stored");
    assert!(b1.revoked_at.is_some());
    assert!(
        !s.revoke_refresh_family("unknown", "sponsor-console", Actor::system(), at(102))
            .await
            .expect("answered")
    );
}

pub async fn assertions_and_agent_tokens_are_single_use(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &["read:x"]).await;
    assert!(s.consume_assertion(&a, "x1", at(60)).await.expect("fresh"));
    assert!(!s.consume_assertion(&a, "x1", at(60)).await.expect("replay"));
    // Forgotten only once expired: until then the jti stays a replay.
    assert_eq!(s.forget_expired_assertions(at(60)).await.expect("swept"), 0);
    assert!(!s.consume_assertion(&a, "x1", at(60)).await.expect("replay"));
    assert!(
        s.consume_assertion("did:mesh:other", "x1", at(60))
            .await
            .expect("another issuer's jti is its own")
    );
    let token = access("t1", SubjectKind::Agent, &a, None);
    assert!(
        s.issue_agent_token("x2", at(60), &token, &[], at(2))
            .await
            .expect("issued")
    );
    let second = access("t2", SubjectKind::Agent, &a, None);
    assert!(
        !s.issue_agent_token("x2", at(60), &second, &[], at(3))
            .await
            .expect("answered"),
        "a replayed assertion gets no token"
    );
    assert!(s.access_token("t2").await.expect("read").is_none());
    assert_eq!(
        code(
            s.issue_agent_token("x3", at(60), &second, &["grt_gone".to_owned()], at(3))
                .await
        ),
        "grant_ended"
    );
    s.suspend(
        SuspendTarget::Agent(a.clone()),
        "test",
        false,
        Actor::system(),
        at(4),
    )
    .await
    .expect("suspended");
    let t1 = s.access_token("t1").await.expect("read").expect("stored");
    assert_eq!(
        t1.revoked_at,
        Some(at(4)),
        "suspension revokes the agent's tokens"
    );
    assert_eq!(
        code(s.issue_agent_token("x4", at(60), &second, &[], at(5)).await),
        "agent_inactive"
    );
    // Past their expiry every client's assertions are forgotten (x1 twice, x2 once).
    assert_eq!(s.forget_expired_assertions(at(61)).await.expect("swept"), 3);
    assert!(
        s.consume_assertion(&a, "x1", at(120))
            .await
            .expect("forgotten")
    );
}

/// Issuances that arrive together (and may share a transaction) are each checked on their
/// own: every assertion is used once however many callers race with it, a suspended agent's
/// callers are refused and consume nothing, and the chain holds one event per token.
pub async fn agent_tokens_issued_at_once_are_each_checked(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let active = agent(s, 1, &alice.id, &["read:x"]).await;
    let suspended = agent(s, 2, &alice.id, &["read:x"]).await;
    s.suspend(
        SuspendTarget::Agent(suspended.clone()),
        "test",
        false,
        Actor::system(),
        at(1),
    )
    .await
    .expect("suspended");
    let mut calls = Vec::new();
    // Assertions x0..x29 once each, x0..x9 a second time, and five of the suspended agent's.
    let burst = (0..30)
        .map(|i| (active.clone(), format!("x{i}"), format!("t{i}")))
        .chain((0..10).map(|i| (active.clone(), format!("x{i}"), format!("again{i}"))))
        .chain((0..5).map(|i| (suspended.clone(), format!("y{i}"), format!("s{i}"))));
    for (agent, assertion, jti) in burst {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            let token = access(&jti, SubjectKind::Agent, &agent, None);
            let answer = store
                .issue_agent_token(&assertion, at(60), &token, &[], at(2))
                .await;
            (assertion, jti, code(answer))
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("the call ran"));
    }
    for i in 0..30 {
        let assertion = format!("x{i}");
        let uses: Vec<&str> = answers
            .iter()
            .filter(|(a, _, _)| *a == assertion)
            .map(|(_, _, answer)| answer.as_str())
            .collect();
        assert_eq!(
            uses.iter().filter(|u| **u == "ok: true").count(),
            1,
            "{assertion}: {uses:?}"
        );
        assert!(uses.iter().all(|u| *u == "ok: true" || *u == "ok: false"));
    }
    for (assertion, jti, answer) in &answers {
        let stored = s.access_token(jti).await.expect("read").is_some();
        assert_eq!(stored, answer == "ok: true", "{assertion} {jti}: {answer}");
        if assertion.starts_with('y') {
            assert_eq!(answer, "agent_inactive");
            assert!(
                s.consume_assertion(&suspended, assertion, at(60))
                    .await
                    .expect("answered"),
                "a refused issuance consumed {assertion}"
            );
        }
    }
    let events = s
        .audit_page(&AuditScope::All, 0, 1000)
        .await
        .expect("events");
    let mut verifier = ChainVerifier::default();
    for event in &events {
        verifier.push(event).expect("the chain verifies");
    }
    let issued = events
        .iter()
        .filter(|e| e.event.action == "token.issued")
        .count();
    assert_eq!(issued, 30);
}
