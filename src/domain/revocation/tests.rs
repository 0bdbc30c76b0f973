use chrono::TimeZone;

use super::*;
use crate::protocol::audit::action::{self, RegisteredBy};
use crate::protocol::audit::{Actor, UnhashedEvent};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0)
        .single()
        .expect("a valid time")
}

fn event(seq: i64, subject: &str, action: AuditAction) -> AuditEvent {
    let (action, details) = action.into_parts().expect("parts");
    AuditEvent {
        event: UnhashedEvent {
            seq,
            at: at(seq),
            actor: Actor::system(),
            action,
            subject: subject.into(),
            details,
            prev_hash: String::new(),
        },
        hash: String::new(),
    }
}

fn index() -> RevocationIndex {
    let mut index = RevocationIndex::new(0, Duration::minutes(15));
    index.set_roles("s1".into(), vec![Role::Sponsor, Role::OnCall]);
    index
}

fn taken_down(jtis: &[&str]) -> action::TakenDown {
    action::TakenDown {
        reason: "alert".into(),
        security: false,
        grants_revoked: Vec::new(),
        requests_cancelled: Vec::new(),
        tokens_revoked: jtis.len() as i64,
        revoked_tokens: Some(jtis.iter().map(|j| (*j).to_owned()).collect()),
        trust_score: 299,
    }
}

#[test]
fn a_suspension_bites_at_once_and_reactivation_does_not_revive_its_tokens() {
    let mut index = index();
    let agent = |i: &RevocationIndex, jti| i.admit(SubjectKind::Agent, "a", jti, &[]);
    assert_eq!(agent(&index, "t1"), Ok(Vec::new()));
    index.apply(&event(
        1,
        "a",
        AuditAction::AgentSuspended(taken_down(&["t1"])),
    ));
    assert_eq!(agent(&index, "t1"), Err(Refused::Revoked));
    assert_eq!(
        agent(&index, "t2"),
        Err(Refused::Inactive(AgentStatus::Suspended)),
        "a token issued at the same instant, not named, is refused by status"
    );
    index.apply(&event(
        2,
        "a",
        AuditAction::AgentReactivated(action::Reactivated {
            reason: "false alarm".into(),
            was_security: false,
        }),
    ));
    assert_eq!(agent(&index, "t2"), Ok(Vec::new()));
    assert_eq!(agent(&index, "t1"), Err(Refused::Revoked));
}

#[test]
fn a_role_taken_away_is_gone_at_once_and_one_given_waits_for_a_new_token() {
    let mut index = index();
    let claimed = [Role::Sponsor, Role::OnCall];
    let admit = |i: &RevocationIndex| i.admit(SubjectKind::Sponsor, "s1", "t", &claimed);
    assert_eq!(admit(&index), Ok(vec![Role::Sponsor, Role::OnCall]));
    let changed = |roles: &[&str]| action::SponsorChanged {
        username: "otto".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        source: "cli".into(),
    };
    index.apply(&event(
        1,
        "s1",
        AuditAction::SponsorUpdated(changed(&["sponsor"])),
    ));
    assert_eq!(admit(&index), Ok(vec![Role::Sponsor]));
    index.apply(&event(
        2,
        "s1",
        AuditAction::SponsorUpdated(changed(&["sponsor", "admin"])),
    ));
    assert_eq!(
        admit(&index),
        Ok(vec![Role::Sponsor]),
        "admin is not in the token"
    );
    assert_eq!(
        index.admit(SubjectKind::Sponsor, "nobody", "t", &claimed),
        Err(Refused::UnknownSponsor)
    );
}

#[test]
fn revocations_of_tokens_families_and_grants_and_proposed_children() {
    let mut index = index();
    index.apply(&event(
        1,
        "t1",
        AuditAction::TokenRevoked(action::TokenRevoked {
            token_type: "access_token".into(),
        }),
    ));
    index.apply(&event(
        2,
        "s1",
        AuditAction::TokenFamilyRevoked(action::FamilyRevoked {
            reason: action::FamilyRevokedReason::RefreshTokenReuse,
            client_id: "sponsor-console".into(),
            family_id: Some("f".into()),
            revoked_tokens: Some(vec!["t2".into()]),
        }),
    ));
    index.apply(&event(
        3,
        "a",
        AuditAction::GrantRevoked(action::GrantRevoked {
            grant_id: "g".into(),
            reason: "done".into(),
            grants_revoked: vec!["g".into()],
            tokens_revoked: 1,
            revoked_tokens: Some(vec!["t3".into()]),
        }),
    ));
    for jti in ["t1", "t2", "t3"] {
        assert_eq!(
            index.admit(SubjectKind::Sponsor, "s1", jti, &[]),
            Err(Refused::Revoked),
            "{jti}"
        );
    }
    // A proposed child is nobody until its delegation is approved.
    index.apply(&event(
        4,
        "c",
        AuditAction::AgentRegistered(action::AgentRegistered {
            name: "c".into(),
            capabilities: Vec::new(),
            model: None,
            runtime: None,
            status: Some(AgentStatus::Proposed),
            by: RegisteredBy::Agent {
                registered_by: "a".into(),
                trust_score: 400,
            },
        }),
    ));
    assert_eq!(
        index.admit(SubjectKind::Agent, "c", "t9", &[]),
        Err(Refused::Inactive(AgentStatus::Proposed))
    );
    // Revoked ids are forgotten once every token they could name has expired.
    assert_eq!(index.revoked_len(), 3);
    index.prune(at(3) + Duration::minutes(15));
    assert_eq!(index.revoked_len(), 0);
    // Replaying an event already applied changes nothing.
    index.apply(&event(
        3,
        "a",
        AuditAction::AgentSuspended(taken_down(&["t3"])),
    ));
    assert_eq!(
        index.admit(SubjectKind::Agent, "a", "t3", &[]),
        Ok(Vec::new())
    );
}
