//! Conformance: device authorizations, consents, failed attempts.

use std::sync::Arc;

use sponsor_console::domain::role::Role;
use sponsor_console::protocol::oauth::SubjectKind;
use sponsor_console::server::store::{
    AuthorizationCode, CodeRedemption, Consent, DevicePoll, DeviceRecord, DeviceStatus, Store,
};

use super::tokens::access;
use super::{at, code, sponsor};

fn device(hash: &str, user_code: &str) -> DeviceRecord {
    DeviceRecord {
        device_code_hash: hash.into(),
        user_code: user_code.into(),
        client_id: "sponsor-console".into(),
        scope: "openid governance".into(),
        status: DeviceStatus::Pending,
        sponsor_id: None,
        interval_seconds: 5,
        expires_at: at(600),
        approved_at: None,
    }
}

pub async fn device_codes_poll_decide_and_redeem_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    s.create_device_authorization(&device("h1", "CDFG-HJKM"), at(0))
        .await
        .expect("created");
    assert_eq!(
        code(
            s.create_device_authorization(&device("h2", "CDFG-HJKM"), at(0))
                .await
        ),
        "store:duplicate",
        "a user code in use is refused"
    );
    let found = s
        .device_by_user_code("CDFG-HJKM")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(found.status, DeviceStatus::Pending);
    assert!(
        s.device_by_user_code("XXXX-XXXX")
            .await
            .expect("read")
            .is_none()
    );

    let poll = |hash: &'static str, client: &'static str, seconds: i64| {
        let store = store.clone();
        async move {
            store
                .poll_device(hash, client, at(seconds))
                .await
                .expect("poll")
        }
    };
    assert_eq!(
        poll("nope", "sponsor-console", 1).await,
        DevicePoll::Unknown
    );
    assert_eq!(poll("h1", "other-client", 1).await, DevicePoll::Unknown);
    assert_eq!(poll("h1", "sponsor-console", 1).await, DevicePoll::Pending);
    assert_eq!(
        poll("h1", "sponsor-console", 2).await,
        DevicePoll::SlowDown {
            interval_seconds: 10
        }
    );
    assert_eq!(poll("h1", "sponsor-console", 20).await, DevicePoll::Pending);

    let decided = s
        .decide_device("CDFG-HJKM", &alice.id, true, at(21))
        .await
        .expect("approved");
    assert_eq!(decided.status, DeviceStatus::Approved);
    assert_eq!(decided.sponsor_id.as_deref(), Some(alice.id.as_str()));
    assert_eq!(
        code(s.decide_device("CDFG-HJKM", &alice.id, false, at(22)).await),
        "already_decided"
    );
    assert_eq!(
        poll("h1", "sponsor-console", 40).await,
        DevicePoll::Redeemed {
            sponsor_id: alice.id.clone(),
            scope: "openid governance".into(),
            approved_at: Some(at(21)),
        }
    );
    assert_eq!(
        poll("h1", "sponsor-console", 60).await,
        DevicePoll::AlreadyRedeemed
    );

    // Another code: denied, then expired.
    s.create_device_authorization(&device("h3", "MNPQ-RTWX"), at(0))
        .await
        .expect("created");
    s.decide_device("MNPQ-RTWX", &alice.id, false, at(1))
        .await
        .expect("denied");
    assert_eq!(poll("h3", "sponsor-console", 30).await, DevicePoll::Denied);
    assert_eq!(
        poll("h3", "sponsor-console", 600).await,
        DevicePoll::Expired
    );
    s.create_device_authorization(&device("h4", "YYYY-3467"), at(0))
        .await
        .expect("created");
    assert_eq!(
        code(s.decide_device("YYYY-3467", &alice.id, true, at(600)).await),
        "expired_token"
    );
    assert_eq!(
        code(s.decide_device("NONE-NONE", &alice.id, true, at(1)).await),
        "store:not_found"
    );
}

pub async fn consents_are_taken_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let consent = |hash: &str, expires: i64| Consent {
        consent_hash: hash.into(),
        sponsor_id: alice.id.clone(),
        user_code: "CDFG-HJKM".into(),
        expires_at: at(expires),
    };
    s.put_consent(&consent("c1", 300), at(0))
        .await
        .expect("kept");
    s.put_consent(&consent("c2", 10), at(0))
        .await
        .expect("kept");
    let taken = s.take_consent("c1", at(5)).await.expect("read");
    assert_eq!(taken, Some(consent("c1", 300)));
    assert_eq!(
        s.take_consent("c1", at(6)).await.expect("read"),
        None,
        "once"
    );
    assert_eq!(
        s.take_consent("c2", at(10)).await.expect("read"),
        None,
        "an expired consent is not given out"
    );
    assert_eq!(s.take_consent("unknown", at(1)).await.expect("read"), None);
}

pub async fn failures_count_in_their_window(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for i in 0..3 {
        s.record_failure("pass:10.0.0.1", at(i * 10))
            .await
            .expect("recorded");
    }
    s.record_failure("user:alice", at(0))
        .await
        .expect("recorded");
    assert_eq!(
        s.failures_since("pass:10.0.0.1", at(-1))
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        s.failures_since("pass:10.0.0.1", at(5))
            .await
            .expect("count"),
        2
    );
    assert_eq!(
        s.failures_since("pass:10.0.0.1", at(20))
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        s.failures_since("user:alice", at(-1)).await.expect("count"),
        1
    );
    assert_eq!(
        s.failures_since("user:bob", at(-1)).await.expect("count"),
        0
    );
}

/// Authorization codes: redeemed once, by their client, before they expire; a second use
/// revokes the tokens the first one gave.
pub async fn authorization_codes_are_redeemed_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let issued = |hash: &str, expires: i64| AuthorizationCode {
        code_hash: hash.into(),
        client_id: "script".into(),
        redirect_uri: "http://127.0.0.1:8400/callback".into(),
        scope: "openid governance".into(),
        sponsor_id: alice.id.clone(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: at(0),
        expires_at: at(expires),
    };
    s.create_authorization_code(&issued("c1", 60), at(0))
        .await
        .expect("kept");
    s.create_authorization_code(&issued("c2", 60), at(0))
        .await
        .expect("kept");
    let redeem = |hash: &'static str, client: &'static str, family: &'static str, when: i64| {
        let store = store.clone();
        async move {
            store
                .redeem_authorization_code(hash, client, family, at(when))
                .await
                .expect("answered")
        }
    };
    assert_eq!(
        redeem("nope", "script", "f0", 1).await,
        CodeRedemption::Invalid
    );
    assert_eq!(
        redeem("c1", "other", "f0", 1).await,
        CodeRedemption::Invalid
    );
    assert_eq!(
        redeem("c1", "script", "f1", 2).await,
        CodeRedemption::Redeemed(issued("c1", 60))
    );
    s.record_tokens(
        &access("a1", SubjectKind::Sponsor, &alice.id, Some("f1")),
        None,
        None,
        at(2),
    )
    .await
    .expect("stored");
    let head = s.audit_head().await.expect("head");
    assert_eq!(
        redeem("c1", "script", "f9", 3).await,
        CodeRedemption::Reused
    );
    let a1 = s.access_token("a1").await.expect("read").expect("stored");
    assert!(
        a1.revoked_at.is_some(),
        "the first use's tokens are revoked"
    );
    assert_eq!(
        s.audit_head().await.expect("head"),
        head + 1,
        "one token.family_revoked event"
    );
    // Expired: refused, and still usable by nobody.
    assert_eq!(
        redeem("c2", "script", "f2", 60).await,
        CodeRedemption::Invalid
    );
    assert_eq!(
        redeem("c2", "script", "f2", 30).await,
        CodeRedemption::Redeemed(issued("c2", 60))
    );
}
