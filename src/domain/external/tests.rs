//! Each refusal, one by one, and the mapping.

use chrono::TimeZone;

use super::*;

const TID: &str = "7B1D6C4E-2F3A-4E5B-9C8D-0A1B2C3D4E5F";
const OID: &str = "d96ea738-3b95-4ae7-9e19-78a083066d5b";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
        .single()
        .unwrap()
}

fn rule() -> IssuerRule {
    let app = BTreeMap::from([
        ("Governance.Sponsor".to_owned(), "sponsor".to_owned()),
        (
            "Governance.SecurityLead".to_owned(),
            "security-lead".to_owned(),
        ),
    ]);
    let groups = BTreeMap::from([(
        "3C2B1A09-0000-0000-0000-000000000000".to_owned(),
        "on-call".to_owned(),
    )]);
    IssuerRule {
        issuer: "https://login.example/tid/v2.0".into(),
        audience: "api-app".into(),
        tenant_id: TID.to_ascii_lowercase(),
        scope: "governance".into(),
        mapping: RoleMapping::new(&app, &groups).unwrap(),
    }
}

fn claims() -> EntraAccessClaims {
    let at = now().timestamp();
    EntraAccessClaims {
        iss: "https://login.example/tid/v2.0".into(),
        aud: "api-app".into(),
        exp: at + 3600,
        nbf: Some(at),
        iat: Some(at),
        tid: Some(TID.into()),
        oid: Some(OID.into()),
        scp: Some("governance other".into()),
        roles: vec!["Governance.Sponsor".into()],
        name: Some("Adele Vance".into()),
        preferred_username: Some("adele@contoso.example".into()),
        azp: Some("console".into()),
        uti: Some("AbC-12_x".into()),
        ..EntraAccessClaims::default()
    }
}

#[test]
fn a_good_token_names_the_person_by_tenant_and_object_id() {
    let id = admit(&rule(), &claims(), now()).unwrap();
    assert_eq!(
        id.sponsor_id,
        format!("entra:{}:{OID}", TID.to_ascii_lowercase())
    );
    assert_eq!(id.username, "adele@contoso.example");
    assert_eq!(id.display_name, "Adele Vance");
    assert_eq!(id.roles, vec![Role::Sponsor]);
    assert!(id.scoped);
    assert_eq!(id.client_id, "console");
    assert_eq!(id.token_id.as_deref(), Some("AbC-12_x"));
}

#[test]
fn each_wrong_claim_is_refused_on_its_own() {
    let r = rule();
    let cases: Vec<(EntraAccessClaims, Rejected)> = vec![
        (
            EntraAccessClaims {
                iss: "https://other/v2.0".into(),
                ..claims()
            },
            Rejected::Issuer,
        ),
        (
            EntraAccessClaims {
                aud: "graph".into(),
                ..claims()
            },
            Rejected::Audience,
        ),
        (
            EntraAccessClaims {
                tid: Some("another-tenant".into()),
                ..claims()
            },
            Rejected::Tenant,
        ),
        (
            EntraAccessClaims {
                tid: None,
                ..claims()
            },
            Rejected::Claim("tid"),
        ),
        (
            EntraAccessClaims {
                oid: None,
                ..claims()
            },
            Rejected::Claim("oid"),
        ),
        (
            EntraAccessClaims {
                oid: Some("a:b".into()),
                ..claims()
            },
            Rejected::Claim("oid"),
        ),
        (
            EntraAccessClaims {
                exp: now().timestamp(),
                ..claims()
            },
            Rejected::Expired,
        ),
        (
            EntraAccessClaims {
                nbf: Some(now().timestamp() + 1),
                ..claims()
            },
            Rejected::NotYetValid,
        ),
        (
            EntraAccessClaims {
                roles: vec!["Other.Role".into()],
                ..claims()
            },
            Rejected::NoRole,
        ),
    ];
    for (c, want) in cases {
        assert_eq!(admit(&r, &c, now()), Err(want), "{c:?}");
    }
}

#[test]
fn app_roles_and_groups_map_to_our_roles_and_admin_never_does() {
    let r = rule();
    let c = EntraAccessClaims {
        roles: vec![
            "Governance.SecurityLead".into(),
            "Governance.Sponsor".into(),
        ],
        groups: vec!["3c2b1a09-0000-0000-0000-000000000000".into()],
        scp: Some("User.Read".into()),
        ..claims()
    };
    let id = admit(&r, &c, now()).unwrap();
    assert_eq!(
        id.roles,
        vec![Role::Sponsor, Role::SecurityLead, Role::OnCall]
    );
    assert!(
        !id.scoped,
        "a token without the scope is known but may not act"
    );
    let lower = EntraAccessClaims {
        roles: vec!["governance.sponsor".into()],
        ..claims()
    };
    assert_eq!(
        admit(&r, &lower, now()),
        Err(Rejected::NoRole),
        "app role values are exact"
    );
    let admin = BTreeMap::from([("X".to_owned(), "admin".to_owned())]);
    assert!(RoleMapping::new(&admin, &BTreeMap::new()).is_err());
    assert!(RoleMapping::new(&BTreeMap::new(), &BTreeMap::new()).is_err());
    let unknown = BTreeMap::from([("X".to_owned(), "owner".to_owned())]);
    assert!(RoleMapping::new(&unknown, &BTreeMap::new()).is_err());
}

#[test]
fn names_fall_back_to_what_is_safe_and_local_usernames_cannot_take_the_form() {
    let c = EntraAccessClaims {
        name: Some("Evil\u{202E}Name".into()),
        preferred_username: None,
        upn: None,
        ..claims()
    };
    let id = admit(&rule(), &c, now()).unwrap();
    assert_eq!(id.display_name, OID);
    assert_eq!(id.username, OID);
    assert!(is_reserved_username("entra:t:o"));
    assert!(is_reserved_username(" ENTRA:x"));
    assert!(!is_reserved_username("alice"));
    assert!(!is_reserved_username("entrance"));
}

#[test]
fn roles_follow_the_token_when_they_differ() {
    assert!(needs_sync(None, &[Role::Sponsor]));
    assert!(!needs_sync(Some(&[Role::Sponsor]), &[Role::Sponsor]));
    assert!(needs_sync(
        Some(&[Role::Sponsor]),
        &[Role::Sponsor, Role::OnCall]
    ));
    assert!(!needs_sync(
        Some(&[Role::OnCall, Role::Sponsor, Role::Sponsor]),
        &[Role::Sponsor, Role::OnCall]
    ));
}
