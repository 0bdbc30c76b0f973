//! A fixture audit chain, written by the code as it stood before the audit records were typed
//! (`tests/fixtures/audit_chain.json`). It must keep verifying, and the same scenario run today
//! must write the same events: every action, actor, subject and detail, byte for byte, once the
//! ids that are random on every run (DIDs, request, grant and token ids, user codes) are
//! replaced by stable placeholders.
//!
//! `UPDATE_AUDIT_FIXTURE=1 cargo test audit_fixture` rewrites the fixture; do that only when
//! an event's shape changes on purpose, and say so in the commit.

use std::collections::HashMap;
use std::path::PathBuf;

use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::domain::audit::ChainVerifier;
use sponsor_console::protocol::audit::{Actor, AuditEvent};
use sponsor_console::protocol::requests::{DelegationBody, NewChild};
use sponsor_console::server::store::SponsorUpsert;

use crate::common::{CLIENT_ID, PASSWORD, TestServer, approve, browser, deny, elevation, query};

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit_chain.json")
}

/// Every kind of event the server writes, in one deterministic story; the server it ran on and
/// the chain it wrote.
pub(crate) async fn scenario() -> (TestServer, Vec<AuditEvent>) {
    // The story predates the rule that only low-sensitivity capabilities may be held
    // standing; its policy lets `write:*` stand so that it writes the same events.
    let mut story = crate::common::settings();
    let mut policy = sponsor_console::domain::policy::Policy::shipped().expect("shipped policy");
    for rule in &mut policy.capabilities {
        if rule.pattern.as_str() == "write:*" {
            rule.standing = Some(true);
        }
    }
    story.policy = Some(policy);
    let t = TestServer::start_with(story).await;

    // Sign-ins: approved, denied, refresh reuse, revocation of a refresh and an access token.
    let alice_tokens = t.sign_in("alice").await;
    let alice = t.client.with_token(&alice_tokens.access_token);
    let auth = t
        .client
        .device_authorization(CLIENT_ID, None)
        .await
        .expect("device authorization");
    browser(&t.client, &auth.user_code, "bob", PASSWORD, "deny").await;
    t.advance(60);
    let first_refresh = alice_tokens.refresh_token.clone().expect("refresh token");
    t.client
        .refresh(CLIENT_ID, &first_refresh)
        .await
        .expect("rotate");
    t.advance(1);
    assert!(t.client.refresh(CLIENT_ID, &first_refresh).await.is_err());
    let bob_tokens = t.sign_in("bob").await;
    t.client
        .revoke(
            CLIENT_ID,
            bob_tokens.refresh_token.as_deref().expect("refresh"),
            Some("refresh_token"),
        )
        .await
        .expect("revoke refresh");
    let alice_tokens = t.sign_in("alice").await;
    let alice = {
        drop(alice);
        t.client.with_token(&alice_tokens.access_token)
    };
    let spare = t.sign_in("bob").await;
    t.client
        .revoke(CLIENT_ID, &spare.access_token, None)
        .await
        .expect("revoke access");

    // An agent, its token, and each way a request ends.
    let (key, agent) = t
        .agent(&alice, "ledger-bot", &["read:ledger", "write:ledger"])
        .await;
    let bot = t.as_agent(&key).await;
    let approved = bot
        .request_elevation(&elevation(&["write:crm"], 3600), None)
        .await
        .expect("submit");
    alice
        .decide(&approved.id, &approve(Some(1800), None))
        .await
        .expect("approve");
    let denied = bot
        .request_elevation(&elevation(&["send:email"], 3600), None)
        .await
        .expect("submit");
    alice.decide(&denied.id, &deny()).await.expect("deny");
    let cancelled = bot
        .request_elevation(&elevation(&["execute:job"], 600), None)
        .await
        .expect("submit");
    bot.cancel_request(&cancelled.id, "task finished")
        .await
        .expect("cancel");
    t.advance(700);
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let bot = t.as_agent(&key).await;
    let two = bot
        .request_elevation(&elevation(&["delete:tmp"], 1800), None)
        .await
        .expect("submit");
    alice
        .decide(&two.id, &approve(None, None))
        .await
        .expect("first approval");
    sam.decide(&two.id, &approve(Some(900), None))
        .await
        .expect("second approval");
    let late = bot
        .request_elevation(&elevation(&["read:pii:customers"], 600), None)
        .await
        .expect("submit");
    t.advance(3601);
    t.sweep().await;

    // Delegation to a new child, approved; the grant revoked early.
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let otto = t.as_user("otto").await;
    assert_eq!(
        alice.get_request(&late.id).await.expect("read").status,
        sponsor_console::protocol::requests::RequestStatus::Expired
    );
    let bot = t.as_agent(&key).await;
    let child_key = AgentKey::generate();
    let delegated = bot
        .request_delegation(
            &DelegationBody {
                child_did: None,
                new_child: Some(NewChild {
                    public_key: child_key.public_key(),
                    name: "ledger-helper".into(),
                    model: Some("small".into()),
                    runtime: Some("tests".into()),
                }),
                capabilities: vec!["read:ledger".into()],
                duration_seconds: 1200,
                justification: "split the reconciliation".into(),
                ticket: None,
                context: None,
            },
            None,
        )
        .await
        .expect("delegate");
    alice
        .decide(&delegated.id, &approve(None, None))
        .await
        .expect("approve delegation");
    let grants = alice
        .grants(&query(&format!("agent={}", child_key.did())))
        .await
        .expect("grants");
    let active = grants.iter().find(|g| g.active).expect("an active grant");
    alice
        .revoke_grant(&active.id, "no longer needed")
        .await
        .expect("revoke grant");

    // Approval fatigue.
    let (noisy_key, _) = t.agent(&alice, "noisy-bot", &["read:x"]).await;
    let noisy = t.as_agent(&noisy_key).await;
    for i in 0..6 {
        noisy
            .request_elevation(&elevation(&[&format!("read:thing-{i}")], 600), None)
            .await
            .expect("submit");
    }

    // The kill switch: suspend, reactivate, revoke.
    otto.suspend(&agent.did, "odd traffic", true)
        .await
        .expect("suspend");
    sam.reactivate(&agent.did, "explained")
        .await
        .expect("reactivate");
    sam.revoke_agent(&agent.did, "retired")
        .await
        .expect("revoke agent");

    // Operator actions: a sponsor's roles change, keys rotate.
    let store = t.server.state.store.clone();
    store
        .upsert_sponsor(
            &SponsorUpsert {
                username: "bob".into(),
                display_name: "Bob".into(),
                roles: vec![sponsor_console::domain::role::Role::Sponsor],
                password_hash: "unused".into(),
                source: "cli".into(),
            },
            Actor::system(),
            t.clock_now(),
        )
        .await
        .expect("upsert");
    sponsor_console::server::rotate_keys(store.as_ref(), &t.server.state.settings, t.clock_now())
        .await
        .expect("rotate keys");

    let events = sam.audit_export().await.expect("export");
    (t, events)
}

/// Replaces each random id by a placeholder numbered by first appearance, so two runs of the
/// scenario compare equal exactly when they wrote the same events.
#[derive(Default)]
struct Normalizer {
    seen: HashMap<String, usize>,
}

impl Normalizer {
    fn id(&mut self, raw: &str) -> String {
        let n = self.seen.len();
        let n = *self.seen.entry(raw.to_owned()).or_insert(n);
        format!("<id{n}>")
    }

    /// Hex runs of 16 or more (with the dashes of a UUID) are ids; so is a user code.
    fn text(&mut self, s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let run = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit() || **b == b'-')
                .count();
            let hex = bytes[i..i + run]
                .iter()
                .filter(|b| b.is_ascii_hexdigit())
                .count();
            if hex >= 16 {
                let token = &s[i..i + run];
                out.push_str(&self.id(token));
                i += run;
            } else {
                let c = s[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    fn value(&mut self, key: Option<&str>, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) if matches!(key, Some("user_code" | "kid")) => {
                Value::String(self.id(s))
            }
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.value(None, i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.value(Some(k), v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The event without its hashes and seq, ids replaced.
    fn event(&mut self, e: &AuditEvent) -> serde_json::Value {
        let mut v = serde_json::to_value(&e.event).expect("event serializes");
        if let Some(map) = v.as_object_mut() {
            // The links follow from the content; the order is compared, not the numbers
            // (events of newer actions sit between them).
            map.remove("prev_hash");
            map.remove("seq");
        }
        self.value(None, &v)
    }
}

fn normalized(events: &[AuditEvent]) -> Vec<serde_json::Value> {
    let mut n = Normalizer::default();
    // The signing key's kid appears as a subject; treat it as an id as well.
    events
        .iter()
        .map(|e| {
            let mut v = n.event(e);
            if e.event.action == "signing_key.rotated"
                && let Some(s) = v.get_mut("subject")
            {
                *s = serde_json::Value::String(n.id(&e.event.subject));
            }
            v
        })
        .collect()
}

/// (action, detail) added since the fixture: the tokens a revocation revoked, by `jti`, and the
/// status an agent is registered with (a delegation's new child is `proposed`).
const ADDED_SINCE_THE_FIXTURE: &[(&str, &str)] = &[
    ("agent.registered", "status"),
    ("agent.suspended", "revoked_tokens"),
    ("agent.revoked", "revoked_tokens"),
    ("grant.revoked", "revoked_tokens"),
    ("token.family_revoked", "revoked_tokens"),
];

fn load_fixture() -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(fixture_path()).expect("fixture present");
    serde_json::from_str(&text).expect("fixture parses")
}

#[tokio::test]
async fn the_fixture_chain_still_verifies() {
    let chain = load_fixture();
    assert!(chain.len() > 40, "the fixture holds the whole story");
    let mut verifier = ChainVerifier::default();
    for event in &chain {
        verifier.push(event).expect("fixture chain verifies");
    }
    // Each event's action and details read into the typed record and write back unchanged: the
    // typed code writes exactly what the untyped code wrote.
    for event in &chain {
        let typed = event
            .action()
            .unwrap_or_else(|e| panic!("seq {}: {e}", event.event.seq));
        let (action, details) = typed.into_parts().expect("splits");
        assert_eq!(action, event.event.action, "seq {}", event.event.seq);
        assert_eq!(
            serde_jcs::to_string(&details).expect("canonical"),
            serde_jcs::to_string(&event.event.details).expect("canonical"),
            "seq {}",
            event.event.seq
        );
    }
    // Each event re-serializes to exactly the bytes it was hashed from.
    for event in &chain {
        let again: AuditEvent =
            serde_json::from_str(&serde_json::to_string(event).expect("serializes"))
                .expect("parses");
        assert_eq!(&again, event);
    }
}

#[tokio::test]
async fn todays_code_writes_the_fixture_events() {
    let (server, events) = scenario().await;
    let mut verifier = ChainVerifier::default();
    for event in &events {
        verifier.push(event).expect("today's chain verifies");
    }
    // The RSA keys that sign ID tokens came after the fixture: their `signing_key.rotated`
    // events (one beside each Ed25519 key's) are new events, left out of the comparison.
    let rsa_kids: std::collections::HashSet<String> = server
        .server
        .state
        .store
        .published_keys(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .await
        .expect("keys")
        .into_iter()
        .filter(|k| k.alg == sponsor_console::server::store::SigningAlg::RS256)
        .map(|k| k.kid)
        .collect();
    assert_eq!(rsa_kids.len(), 2, "the first RSA key and its rotation");
    if std::env::var_os("UPDATE_AUDIT_FIXTURE").is_some() {
        let text = serde_json::to_string_pretty(&events).expect("serializes");
        std::fs::write(fixture_path(), text + "\n").expect("fixture written");
    }
    let fixture = load_fixture();
    // Events of the actions the fixture knows are written exactly as before; actions added
    // since (a grant running out, say) are new events and are left out of the comparison.
    let known: std::collections::HashSet<&str> =
        fixture.iter().map(|e| e.event.action.as_str()).collect();
    let mut events: Vec<AuditEvent> = events
        .into_iter()
        .filter(|e| known.contains(e.event.action.as_str()))
        .filter(|e| {
            !(e.event.action == "signing_key.rotated" && rsa_kids.contains(&e.event.subject))
        })
        .collect();
    // Fields added to known actions since the fixture was written; every other field is
    // written exactly as before.
    for event in &mut events {
        for (action, field) in ADDED_SINCE_THE_FIXTURE {
            if event.event.action == *action
                && let Some(details) = event.event.details.as_object_mut()
            {
                assert!(
                    details.remove(*field).is_some(),
                    "seq {}: {action} writes {field}",
                    event.event.seq
                );
            }
        }
    }
    let want = normalized(&fixture);
    let got = normalized(&events);
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w, g, "event {} differs from the fixture", i + 1);
    }
    assert_eq!(want.len(), got.len(), "as many events as the fixture");
    // Every action the server knows appears in the story.
    let mut actions: Vec<&str> = fixture.iter().map(|e| e.event.action.as_str()).collect();
    actions.sort_unstable();
    actions.dedup();
    assert_eq!(
        actions,
        [
            "agent.reactivated",
            "agent.registered",
            "agent.revoked",
            "agent.suspended",
            "device.approved",
            "device.denied",
            "grant.revoked",
            "request.approval_recorded",
            "request.approved",
            "request.cancelled",
            "request.denied",
            "request.expired",
            "request.submitted",
            "signing_key.rotated",
            "sponsor.added",
            "sponsor.signed_in",
            "sponsor.updated",
            "token.family_revoked",
            "token.issued",
            "token.revoked",
        ]
    );
}
