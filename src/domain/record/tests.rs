use chrono::TimeZone;

use super::*;
use crate::protocol::audit::action::{self, GrantMade};
use crate::protocol::audit::{Actor, UnhashedEvent};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0)
        .single()
        .expect("a valid time")
}

fn event(seq: i64, actor: Actor, subject: &str, action: AuditAction) -> AuditEvent {
    let (action, details) = action.into_parts().expect("parts");
    AuditEvent {
        event: UnhashedEvent {
            seq,
            at: at(seq),
            actor,
            action,
            subject: subject.into(),
            details,
            prev_hash: String::new(),
        },
        hash: String::new(),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A sponsor registers a parent, which proposes a child, approved with one grant; then the
/// parent is suspended (revoking a grant and a token).
fn chain() -> Vec<AuditEvent> {
    let changed = action::SponsorChanged {
        username: "alice".into(),
        roles: vec!["sponsor".into()],
        source: "config".into(),
    };
    let registered = |caps: &[&str], status, by| {
        AuditAction::AgentRegistered(action::AgentRegistered {
            name: "bot".into(),
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            model: None,
            runtime: None,
            status: Some(status),
            by,
        })
    };
    vec![
        event(1, Actor::system(), "s1", AuditAction::SponsorAdded(changed)),
        event(
            2,
            Actor::sponsor("s1"),
            "p",
            registered(
                &["read:x"],
                AgentStatus::Active,
                RegisteredBy::Sponsor {
                    entra_object_id: None,
                },
            ),
        ),
        event(
            3,
            Actor::agent("p"),
            "c",
            registered(
                &[],
                AgentStatus::Proposed,
                RegisteredBy::Agent {
                    registered_by: "p".into(),
                    trust_score: 400,
                },
            ),
        ),
        event(
            4,
            Actor::sponsor("s1"),
            "p",
            AuditAction::RequestApproved(action::Approved {
                request_id: "r1".into(),
                kind: RequestKind::Delegation,
                grantee: "c".into(),
                grants: vec![GrantMade {
                    id: "g1".into(),
                    capabilities: vec!["read:x".into()],
                    not_after: at(600),
                }],
                duration_seconds: 600,
                justification: "ok".into(),
                approvers: vec!["s1".into()],
                trust_score: 500,
            }),
        ),
        event(
            5,
            Actor::sponsor("s1"),
            "c",
            AuditAction::AgentSuspended(TakenDown {
                reason: "alert".into(),
                security: false,
                grants_revoked: vec!["g1".into()],
                requests_cancelled: Vec::new(),
                tokens_revoked: 1,
                revoked_tokens: Some(vec!["jti-1".into()]),
                trust_score: 299,
            }),
        ),
    ]
}

/// What the tables hold after `chain()`, untouched.
fn tables() -> StateSnapshot {
    let agent = |status, caps: &[&str], parent: Option<&str>| AgentState {
        status,
        capabilities: set(caps),
        sponsors: set(&["s1"]),
        parent: parent.map(str::to_owned),
    };
    StateSnapshot {
        agents: BTreeMap::from([
            ("p".into(), agent(AgentStatus::Active, &["read:x"], None)),
            ("c".into(), agent(AgentStatus::Suspended, &[], Some("p"))),
        ]),
        sponsors: BTreeMap::from([("s1".into(), set(&["sponsor"]))]),
        grants: BTreeMap::from([(
            "g1".into(),
            GrantState {
                agent: "c".into(),
                capabilities: set(&["read:x"]),
                not_after: at(600),
                revoked: true,
                ended: false,
            },
        )]),
        revoked_tokens: set(&["jti-1"]),
        revoked_families: BTreeSet::new(),
        actions: BTreeMap::new(),
    }
}

fn replayed() -> Replay {
    let mut replay = Replay::default();
    for e in &chain() {
        replay.apply(e);
    }
    replay
}

#[test]
fn untouched_tables_agree_with_the_record() {
    assert_eq!(replayed().compare(&tables()), (Vec::new(), None));
}

#[test]
fn each_direct_edit_is_a_difference() {
    let mut edited = tables();
    let c = edited.agents.get_mut("c").expect("c");
    c.status = AgentStatus::Active; // un-suspended
    let p = edited.agents.get_mut("p").expect("p");
    p.capabilities.insert("admin:*".into()); // widened
    let g = edited.grants.get_mut("g1").expect("g1");
    g.revoked = false; // revived
    g.not_after = at(600 + 365 * 86_400); // and extended
    edited.revoked_tokens.clear(); // un-revoked
    edited
        .sponsors
        .insert("s1".into(), set(&["sponsor", "admin"])); // promoted
    let (found, note) = replayed().compare(&edited);
    assert_eq!(note, None);
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "agent c: status is active in the tables, suspended on the record",
            "agent p: capabilities is admin:* read:x in the tables, read:x on the record",
            "sponsor s1: roles is admin sponsor in the tables, sponsor on the record",
            "grant g1: not_after is 2028-01-15T08:10:00.000Z in the tables, 2027-01-15T08:10:00.000Z on the record",
            "grant g1: revoked is no in the tables, yes on the record",
            "token jti-1: revoked is no in the tables, yes on the record",
        ]
    );
}

#[test]
fn rows_nobody_recorded_are_differences() {
    let mut edited = tables();
    let ghost = edited.agents["p"].clone();
    edited.agents.insert("ghost".into(), ghost);
    edited.revoked_tokens.insert("jti-2".into());
    edited.agents.remove("c");
    let (found, _) = replayed().compare(&edited);
    let found: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|d| (d.area.as_str(), d.id.as_str(), d.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("agent", "c", "presence"),
            ("agent", "ghost", "presence"),
            ("token", "jti-2", "revoked"),
        ]
    );
}

#[test]
fn unnamed_revocations_check_one_way_and_say_so() {
    let mut replay = replayed();
    replay.apply(&event(
        6,
        Actor::sponsor("s1"),
        "g9",
        AuditAction::GrantRevoked(action::GrantRevoked {
            grant_id: "g9".into(),
            reason: "old".into(),
            grants_revoked: vec!["g9".into()],
            tokens_revoked: 3,
            revoked_tokens: None,
        }),
    ));
    let mut edited = tables();
    edited.revoked_tokens.insert("jti-old".into());
    let (found, note) = replay.compare(&edited);
    assert!(found.is_empty(), "{found:?}");
    assert!(note.is_some());
}

#[test]
fn an_unreadable_event_is_a_difference() {
    let mut replay = replayed();
    let mut odd = event(
        6,
        Actor::system(),
        "x",
        AuditAction::TokenRevoked(action::TokenRevoked {
            token_type: "access_token".into(),
        }),
    );
    odd.event.action = "agent.teleported".into();
    replay.apply(&odd);
    let (found, _) = replay.compare(&tables());
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].area.as_str(), found[0].id.as_str()),
        ("chain", "6")
    );
}
