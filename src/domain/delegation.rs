//! Delegation rules (DESIGN §3), checked when a parent agent asks and again when a human
//! approves: the child gets only a subset of the parent's effective capabilities (wildcards
//! never broaden), the chain stays within the depth limit, the child's trust never exceeds the
//! parent's, and no delegated capability outlives the parent's source of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::capability::Capability;
use super::{Invalid, Refusal, limits};
use crate::protocol::agents::AgentStatus;

/// A capability the parent holds through a grant that ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    pub grant_id: String,
    pub capabilities: Vec<Capability>,
    pub not_after: DateTime<Utc>,
}

/// What the parent holds right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub depth: i64,
    pub trust: i64,
    pub standing: Vec<Capability>,
    pub grants: Vec<HeldGrant>,
}

/// Where each delegated capability comes from: the parent's standing set (`None`) or one of its
/// grants, whose end bounds the child's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub capability: Capability,
    pub source: Option<(String, DateTime<Utc>)>,
}

/// Checks a delegation of `capabilities` for `duration_seconds` from `parent` to a child whose
/// trust is `child_trust`. Returns each capability with its source.
pub fn check(
    parent: &Parent,
    child_trust: i64,
    capabilities: &[Capability],
    duration_seconds: i64,
    max_depth: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Sourced>, Invalid> {
    limits::depth(parent.depth, max_depth)?;
    if child_trust > parent.trust {
        return Err(Invalid::new(
            "delegation_trust_exceeds_parent",
            format!(
                "the child's trust ({child_trust}) is above the parent's ({})",
                parent.trust
            ),
        ));
    }
    let ends = now + Duration::seconds(duration_seconds);
    let mut out = Vec::with_capacity(capabilities.len());
    for cap in capabilities {
        if parent.standing.iter().any(|h| h.covers(cap)) {
            out.push(Sourced {
                capability: cap.clone(),
                source: None,
            });
            continue;
        }
        let best = parent
            .grants
            .iter()
            .filter(|g| g.not_after > now && g.capabilities.iter().any(|h| h.covers(cap)))
            .max_by_key(|g| g.not_after);
        let Some(grant) = best else {
            return Err(Invalid::new(
                "delegation_not_subset",
                format!("the parent does not hold {cap}, so it cannot delegate it"),
            ));
        };
        if ends > grant.not_after {
            return Err(Invalid::new(
                "delegation_outlives_source",
                format!(
                    "the parent holds {cap} only until {}; ask for at most {} seconds",
                    crate::protocol::time::format(&grant.not_after),
                    (grant.not_after - now).num_seconds().max(0)
                ),
            ));
        }
        out.push(Sourced {
            capability: cap.clone(),
            source: Some((grant.grant_id.clone(), grant.not_after)),
        });
    }
    Ok(out)
}

/// Whether a delegation that ended as `status` retires the child it proposed: every ending but
/// an approval does, so a proposed child never outlives the request that named it.
pub fn retires_proposed_child(status: crate::protocol::requests::RequestStatus) -> bool {
    status != crate::protocol::requests::RequestStatus::Approved
}

/// One grant an approved delegation creates for the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedGrant {
    /// The parent's grant the capabilities come from (`None`: its standing set).
    pub source_grant_id: Option<String>,
    pub capabilities: Vec<Capability>,
    pub not_after: DateTime<Utc>,
}

/// Checked again when a human approves: both agents still active, and [`check`] against what
/// the parent holds now. Returns the child's grants, one per source (standing first, then by
/// grant id), each ending no later than its source.
#[allow(clippy::too_many_arguments)]
pub fn approve(
    parent: &Parent,
    parent_status: AgentStatus,
    child_status: AgentStatus,
    child_trust: i64,
    capabilities: &[Capability],
    duration_seconds: i64,
    max_depth: i64,
    now: DateTime<Utc>,
) -> Result<Vec<DelegatedGrant>, Refusal> {
    if parent_status != AgentStatus::Active {
        return Err(Refusal::conflict(
            "parent_inactive",
            format!("the delegating agent is {}", parent_status.as_str()),
        ));
    }
    // A child the request proposed becomes active with the approval.
    if !matches!(child_status, AgentStatus::Active | AgentStatus::Proposed) {
        return Err(Refusal::conflict(
            "child_inactive",
            format!("the child agent is {}", child_status.as_str()),
        ));
    }
    let sourced = check(
        parent,
        child_trust,
        capabilities,
        duration_seconds,
        max_depth,
        now,
    )?;
    let ends = now + Duration::seconds(duration_seconds);
    let mut groups: BTreeMap<Option<String>, DelegatedGrant> = BTreeMap::new();
    for s in sourced {
        let (key, end) = match s.source {
            Some((id, until)) => (Some(id), until.min(ends)),
            None => (None, ends),
        };
        let grant = groups.entry(key.clone()).or_insert(DelegatedGrant {
            source_grant_id: key,
            capabilities: Vec::new(),
            not_after: end,
        });
        grant.capabilities.push(s.capability);
        grant.not_after = grant.not_after.min(end);
    }
    Ok(groups.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        Capability::parse(s).expect("a valid capability")
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn parent() -> Parent {
        Parent {
            depth: 0,
            trust: 600,
            standing: vec![cap("read:crm:*")],
            grants: vec![HeldGrant {
                grant_id: "g1".into(),
                capabilities: vec![cap("write:crm:accounts")],
                not_after: now() + Duration::hours(1),
            }],
        }
    }

    fn code<T>(r: Result<T, Invalid>) -> &'static str {
        r.err().map(|e| e.code).unwrap_or("ok")
    }

    #[test]
    fn subsets_are_sourced() {
        let got = check(
            &parent(),
            500,
            &[cap("read:crm:leads"), cap("write:crm:accounts")],
            1800,
            3,
            now(),
        )
        .unwrap_or_default();
        assert_eq!(got[0].source, None);
        assert_eq!(got[1].source.as_ref().map(|s| s.0.as_str()), Some("g1"));
    }

    #[test]
    fn an_approval_groups_by_source_and_needs_both_agents_active() {
        let grants = approve(
            &parent(),
            AgentStatus::Active,
            AgentStatus::Active,
            500,
            &[
                cap("read:crm:leads"),
                cap("write:crm:accounts"),
                cap("read:crm:x"),
            ],
            1800,
            3,
            now(),
        )
        .unwrap_or_default();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].source_grant_id, None);
        assert_eq!(grants[0].capabilities.len(), 2);
        assert_eq!(grants[1].source_grant_id.as_deref(), Some("g1"));
        assert_eq!(grants[1].not_after, now() + Duration::seconds(1800));
        let code = |r: Result<Vec<DelegatedGrant>, Refusal>| r.err().map_or("ok", |e| e.code());
        let caps = [cap("read:crm:x")];
        let go = |p, c| approve(&parent(), p, c, 500, &caps, 60, 3, now());
        assert_eq!(
            code(go(AgentStatus::Suspended, AgentStatus::Active)),
            "parent_inactive"
        );
        assert_eq!(
            code(go(AgentStatus::Active, AgentStatus::Revoked)),
            "child_inactive"
        );
    }

    #[test]
    fn the_four_refusals() {
        assert_eq!(
            code(check(&parent(), 500, &[cap("read:*")], 60, 3, now())),
            "delegation_not_subset"
        );
        assert_eq!(
            code(check(&parent(), 500, &[cap("delete:crm:x")], 60, 3, now())),
            "delegation_not_subset"
        );
        let deep = Parent {
            depth: 3,
            ..parent()
        };
        assert_eq!(
            code(check(&deep, 500, &[cap("read:crm:x")], 60, 3, now())),
            "delegation_too_deep"
        );
        assert_eq!(
            code(check(&parent(), 601, &[cap("read:crm:x")], 60, 3, now())),
            "delegation_trust_exceeds_parent"
        );
        assert_eq!(
            code(check(
                &parent(),
                500,
                &[cap("write:crm:accounts")],
                3601,
                3,
                now()
            )),
            "delegation_outlives_source"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn cap() -> impl Strategy<Value = Capability> {
        prop::sample::select(vec![
            "read:*",
            "read:crm:*",
            "read:crm:accounts",
            "read:crm:leads",
            "read:web:*",
            "read:web:docs",
            "write:crm:*",
            "write:crm:accounts",
            "send:email",
            "delete:crm:old",
        ])
        .prop_map(|s| Capability::parse(s).expect("a valid capability"))
    }

    proptest! {
        /// Whatever is accepted is covered by what the parent holds, and each capability's
        /// source outlasts the delegation.
        #[test]
        fn accepted_delegations_never_exceed_the_parent(
            standing in prop::collection::vec(cap(), 0..3),
            granted in prop::collection::vec(cap(), 0..3),
            grant_minutes in 1i64..240,
            wanted in prop::collection::vec(cap(), 1..4),
            minutes in 1i64..240,
        ) {
            let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
            let parent = Parent {
                depth: 0,
                trust: 500,
                standing: standing.clone(),
                grants: vec![HeldGrant {
                    grant_id: "g".into(),
                    capabilities: granted.clone(),
                    not_after: now + Duration::minutes(grant_minutes),
                }],
            };
            let mut held = standing.clone();
            held.extend(granted.clone());
            match check(&parent, 500, &wanted, minutes * 60, 3, now) {
                Ok(sourced) => {
                    prop_assert!(crate::domain::capability::is_subset(&wanted, &held));
                    for s in sourced {
                        if let Some((_, until)) = s.source {
                            prop_assert!(now + Duration::minutes(minutes) <= until);
                        } else {
                            prop_assert!(standing.iter().any(|h| h.covers(&s.capability)));
                        }
                    }
                }
                Err(e) => prop_assert!(
                    !crate::domain::capability::is_subset(&wanted, &held)
                        || e.code == "delegation_outlives_source"
                ),
            }
        }
    }
}
