//! Effective capabilities: the standing set plus active grants (nothing at all when the agent
//! is not active). What a token carries, and until when.

use chrono::{DateTime, Utc};

use super::capability::{self, Capability};
use super::{Invalid, Refusal};
use crate::protocol::agents::AgentStatus;

/// An active grant, as far as token issuance cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    pub id: String,
    pub capabilities: Vec<Capability>,
    pub not_after: DateTime<Utc>,
}

/// What a token will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    pub capabilities: Vec<Capability>,
    /// The grants the token depends on: revoking one makes the token inactive.
    pub grant_ids: Vec<String>,
    /// The token must not outlive this (the earliest end among those grants).
    pub not_after: Option<DateTime<Utc>>,
}

/// Checked again as a token is stored: an agent that is no longer active gets no token, and a
/// grant the token would carry must still be live (a suspension or revocation that committed
/// meanwhile wins).
pub fn may_issue(status: Option<AgentStatus>, grants_live: bool) -> Result<(), Refusal> {
    if status != Some(AgentStatus::Active) {
        return Err(Refusal::forbidden(
            "agent_inactive",
            "the agent is not active",
        ));
    }
    if !grants_live {
        return Err(Refusal::conflict(
            "grant_ended",
            "a grant ended while the token was being issued; ask again",
        ));
    }
    Ok(())
}

/// Standing ∪ grants, narrowed to `wanted` when given (which must be covered).
pub fn token_scope(
    standing: &[Capability],
    grants: &[LiveGrant],
    wanted: Option<&[Capability]>,
    now: DateTime<Utc>,
) -> Result<TokenScope, Invalid> {
    let live: Vec<&LiveGrant> = grants.iter().filter(|g| g.not_after > now).collect();
    let mut held: Vec<Capability> = standing.to_vec();
    for g in &live {
        held.extend(g.capabilities.iter().cloned());
    }
    let chosen: Vec<Capability> = match wanted {
        None => held.clone(),
        Some(w) => {
            if !capability::is_subset(w, &held) {
                return Err(Invalid::new(
                    "invalid_scope",
                    "the requested scope is more than the agent holds",
                ));
            }
            w.to_vec()
        }
    };
    let mut out: Vec<Capability> = Vec::new();
    let mut grant_ids: Vec<String> = Vec::new();
    let mut not_after: Option<DateTime<Utc>> = None;
    for cap in chosen {
        if out.contains(&cap) {
            continue;
        }
        if !standing.iter().any(|s| s.covers(&cap)) {
            // Carried by a grant: the longest-lasting one that covers it.
            if let Some(g) = live
                .iter()
                .filter(|g| g.capabilities.iter().any(|c| c.covers(&cap)))
                .max_by_key(|g| g.not_after)
            {
                if !grant_ids.contains(&g.id) {
                    grant_ids.push(g.id.clone());
                }
                not_after = Some(not_after.map_or(g.not_after, |n| n.min(g.not_after)));
            }
        }
        out.push(cap);
    }
    out.sort();
    Ok(TokenScope {
        capabilities: out,
        grant_ids,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn cap(s: &str) -> Capability {
        Capability::parse(s).expect("a valid capability")
    }

    #[test]
    fn grants_add_capabilities_and_bound_the_token() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let grants = vec![
            LiveGrant {
                id: "a".into(),
                capabilities: vec![cap("write:crm:x")],
                not_after: now + Duration::minutes(30),
            },
            LiveGrant {
                id: "old".into(),
                capabilities: vec![cap("delete:x:y")],
                not_after: now,
            },
        ];
        let s = token_scope(&[cap("read:crm:*")], &grants, None, now)
            .expect("standing and grants cover the scope");
        assert_eq!(s.capabilities, vec![cap("read:crm:*"), cap("write:crm:x")]);
        assert_eq!(s.grant_ids, vec!["a".to_owned()]);
        assert_eq!(s.not_after, Some(now + Duration::minutes(30)));
        let narrow = token_scope(
            &[cap("read:crm:*")],
            &grants,
            Some(&[cap("read:crm:a")]),
            now,
        )
        .expect("a narrower scope is covered");
        assert!(narrow.grant_ids.is_empty() && narrow.not_after.is_none());
        assert!(
            token_scope(
                &[cap("read:crm:*")],
                &grants,
                Some(&[cap("delete:x:y")]),
                now
            )
            .is_err()
        );
    }
}
