//! Limits on the shape of the fleet: how many agents a sponsor holds, how deep a delegation
//! chain goes, that a chain never loops and a child has one parent, and approval fatigue.

use super::{Invalid, Refusal};

/// A sponsor who already holds `held` (not revoked) agents may register one more only below
/// `max`.
pub fn agent_limit(held: i64, max: u32) -> Result<(), Refusal> {
    if held >= i64::from(max) {
        return Err(Refusal::conflict(
            "agent_limit_reached",
            format!("you already sponsor {held} agents, the most this server allows ({max})"),
        ));
    }
    Ok(())
}

/// A new delegated child is sponsored by each of its parent's sponsors, so it counts against
/// each of them: `held` is what each of those sponsors holds now.
pub fn new_child(held: &[i64], max: u32) -> Result<(), Refusal> {
    if held.iter().any(|n| *n >= i64::from(max)) {
        return Err(Refusal::conflict(
            "agent_limit_reached",
            "a sponsor of this agent already holds the most agents this server allows",
        ));
    }
    Ok(())
}

/// A child of a parent at `parent_depth` sits one deeper, at most `max_depth`.
pub fn depth(parent_depth: i64, max_depth: i64) -> Result<(), Invalid> {
    if parent_depth + 1 > max_depth {
        return Err(Invalid::new(
            "delegation_too_deep",
            format!(
                "the child would be at depth {}, beyond the limit of {max_depth}",
                parent_depth + 1
            ),
        ));
    }
    Ok(())
}

/// An existing agent may become `parent`'s child only if it is not `parent` itself or one of
/// its ancestors (`ancestors`: the parent's chain upwards), and has no other parent.
pub fn existing_child(
    child: &str,
    child_parent: Option<&str>,
    parent: &str,
    ancestors: &[String],
) -> Result<(), Refusal> {
    if child == parent {
        return Err(Invalid::new("invalid_child", "an agent cannot delegate to itself").into());
    }
    if child_parent.is_some_and(|p| p != parent) {
        return Err(Refusal::conflict(
            "child_has_other_parent",
            "the child was delegated to by another agent",
        ));
    }
    if ancestors.iter().any(|a| a == child) {
        return Err(Invalid::new(
            "delegation_cycle",
            "the child is an ancestor of the delegating agent",
        )
        .into());
    }
    Ok(())
}

/// Approval fatigue: an agent that made `recent` requests within the window may not make
/// another beyond `limit`; the new one is denied at once.
pub fn fatigued(recent: i64, limit: u32) -> bool {
    recent >= i64::from(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(r: Result<T, Refusal>) -> &'static str {
        r.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn agent_limit_counts_up_to_the_maximum() {
        assert_eq!(code(agent_limit(9, 10)), "ok");
        assert_eq!(code(agent_limit(10, 10)), "agent_limit_reached");
        assert_eq!(code(new_child(&[3, 9], 10)), "ok");
        assert_eq!(code(new_child(&[3, 10], 10)), "agent_limit_reached");
        assert_eq!(code(new_child(&[], 0)), "ok");
    }

    #[test]
    fn depth_limit() {
        assert!(depth(2, 3).is_ok());
        assert_eq!(depth(3, 3).map_err(|e| e.code), Err("delegation_too_deep"));
    }

    #[test]
    fn children_one_by_one() {
        let chain = vec!["did:mesh:p1".to_owned(), "did:mesh:p0".to_owned()];
        assert_eq!(
            code(existing_child("did:mesh:c", None, "did:mesh:p", &chain)),
            "ok"
        );
        assert_eq!(
            code(existing_child(
                "did:mesh:c",
                Some("did:mesh:p"),
                "did:mesh:p",
                &chain
            )),
            "ok"
        );
        assert_eq!(
            code(existing_child("did:mesh:p", None, "did:mesh:p", &chain)),
            "invalid_child"
        );
        assert_eq!(
            code(existing_child(
                "did:mesh:c",
                Some("did:mesh:x"),
                "did:mesh:p",
                &chain
            )),
            "child_has_other_parent"
        );
        assert_eq!(
            code(existing_child("did:mesh:p0", None, "did:mesh:p", &chain)),
            "delegation_cycle"
        );
    }

    #[test]
    fn fatigue_starts_at_the_limit() {
        assert!(!fatigued(4, 5));
        assert!(fatigued(5, 5));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A chain accepts a child exactly when it is neither the parent, one of its ancestors,
        /// nor another agent's child; the limit accepts exactly below the maximum.
        #[test]
        fn children_and_limits(
            chain_len in 0usize..6,
            pick in 0usize..8,
            other_parent in any::<bool>(),
            held in 0i64..20,
            max in 0u32..20,
        ) {
            let chain: Vec<String> = (0..chain_len).map(|i| format!("did:mesh:a{i}")).collect();
            let candidates: Vec<String> = std::iter::once("did:mesh:p".to_owned())
                .chain(chain.iter().cloned())
                .chain(["did:mesh:x".to_owned(), "did:mesh:y".to_owned()])
                .collect();
            let child = &candidates[pick % candidates.len()];
            let child_parent = other_parent.then_some("did:mesh:q");
            let ok = existing_child(child, child_parent, "did:mesh:p", &chain).is_ok();
            let forbidden = child == "did:mesh:p" || chain.contains(child) || other_parent;
            prop_assert_eq!(ok, !forbidden);
            prop_assert_eq!(agent_limit(held, max).is_ok(), held < i64::from(max));
            prop_assert_eq!(new_child(&[held], max).is_ok(), held < i64::from(max));
        }
    }
}
