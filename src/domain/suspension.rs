//! The kill switch (DESIGN §3, Suspension): exactly what a take-down touches. From the roots
//! (one agent, or every agent of a sponsor) it reaches every delegated descendant; each agent
//! that changes status loses its live grants and every grant delegated from them, its pending
//! requests (made by it or delegating to it) are cancelled, and its tokens and the tokens
//! carrying those grants stop working. Also: who may lift a suspension, and early revocation of
//! one grant with what was delegated from it.

use std::collections::{HashMap, HashSet, VecDeque};

use super::Refusal;
use super::role::Role;
use crate::protocol::agents::AgentStatus;

/// An agent and its place in the delegation tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentNode {
    pub did: String,
    pub parent_did: Option<String>,
    pub status: AgentStatus,
}

/// A grant that is neither revoked nor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    pub id: String,
    pub agent_did: String,
    /// The parent's grant this one was delegated from.
    pub source_grant_id: Option<String>,
}

/// A pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: String,
    pub agent_did: String,
    pub child_did: Option<String>,
}

/// What a take-down does to each agent it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeDown {
    /// Active agents become suspended.
    Suspend,
    /// Every agent not yet revoked becomes revoked, for good.
    Revoke,
}

impl TakeDown {
    pub fn status(self) -> AgentStatus {
        match self {
            TakeDown::Suspend => AgentStatus::Suspended,
            TakeDown::Revoke => AgentStatus::Revoked,
        }
    }

    /// Whether an agent now in `status` changes.
    pub fn changes(self, status: AgentStatus) -> bool {
        match self {
            TakeDown::Suspend => status == AgentStatus::Active,
            TakeDown::Revoke => status != AgentStatus::Revoked,
        }
    }

    /// The reason recorded on the requests it cancels and on the trust event.
    pub fn reason_code(self) -> &'static str {
        match self {
            TakeDown::Suspend => "agent_suspended",
            TakeDown::Revoke => "agent_revoked",
        }
    }
}

/// The agents reached from `roots` in order: each root, then its descendants breadth first,
/// each once. `children` lists every agent that has a parent, in a stable order.
pub fn reach(roots: &[String], children: &[AgentNode]) -> Vec<String> {
    let mut by_parent: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in children {
        if let Some(p) = &c.parent_did {
            by_parent
                .entry(p.as_str())
                .or_default()
                .push(c.did.as_str());
        }
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for root in roots {
        let mut queue = VecDeque::from([root.as_str()]);
        while let Some(did) = queue.pop_front() {
            if !seen.insert(did) {
                continue;
            }
            out.push(did.to_owned());
            if let Some(kids) = by_parent.get(did) {
                queue.extend(kids.iter().copied());
            }
        }
    }
    out
}

/// What a take-down does to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentTakeDown {
    pub did: String,
    /// Its live grants and every live grant delegated from them, transitively.
    pub grants: Vec<String>,
    /// Pending requests it made or that delegate to it.
    pub requests: Vec<String>,
}

/// The exact set a take-down touches. Tokens follow: every live token whose subject is one of
/// the agents, and every live token carrying one of the grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub agents: Vec<AgentTakeDown>,
}

impl Plan {
    pub fn dids(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.did.clone()).collect()
    }
}

/// Plans a take-down of the `reached` agents (in reach order, with their status), given the
/// live grants and pending requests that involve them. A grant or request belongs to the first
/// agent whose take-down ends it.
pub fn plan(
    take_down: TakeDown,
    reached: &[AgentNode],
    grants: &[LiveGrant],
    requests: &[PendingRequest],
) -> Plan {
    let mut revoked: HashSet<&str> = HashSet::new();
    let mut cancelled: HashSet<&str> = HashSet::new();
    let mut plan = Plan::default();
    for agent in reached {
        if !take_down.changes(agent.status) {
            continue;
        }
        let held: Vec<&str> = grants
            .iter()
            .filter(|g| g.agent_did == agent.did)
            .map(|g| g.id.as_str())
            .collect();
        let mut mine = Vec::new();
        for id in cascade(&held, grants) {
            if revoked.insert(id) {
                mine.push(id.to_owned());
            }
        }
        let mut reqs = Vec::new();
        for r in requests {
            let involved = r.agent_did == agent.did || r.child_did.as_deref() == Some(&agent.did);
            if involved && cancelled.insert(r.id.as_str()) {
                reqs.push(r.id.clone());
            }
        }
        plan.agents.push(AgentTakeDown {
            did: agent.did.clone(),
            grants: mine,
            requests: reqs,
        });
    }
    plan
}

/// `roots` and every live grant delegated from them, transitively, depth first from the last
/// root (the order the audit events of earlier versions list them in).
pub fn cascade<'a>(roots: &[&'a str], grants: &'a [LiveGrant]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(g) = grants.iter().find(|g| g.id == id) {
            out.push(g.id.as_str());
        }
        stack.extend(
            grants
                .iter()
                .filter(|g| g.source_grant_id.as_deref() == Some(id))
                .map(|g| g.id.as_str()),
        );
    }
    out
}

/// What the kill switch lets a human do to one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Suspend,
    Reactivate,
    Revoke,
}

/// Whether someone with `roles`, who does or does not sponsor the agent, may `act` on it. Its
/// sponsors always may; on-call staff may suspend any agent; security leads and admins may do
/// anything to any agent.
pub fn may_act(act: Act, roles: &[Role], sponsors_agent: bool) -> bool {
    let any = |wanted: &[Role]| roles.iter().any(|r| wanted.contains(r));
    sponsors_agent
        || match act {
            Act::Suspend => any(&[Role::OnCall, Role::SecurityLead, Role::Admin]),
            Act::Reactivate | Act::Revoke => any(&[Role::SecurityLead, Role::Admin]),
        }
}

/// Whether someone with `roles` may suspend every agent of another sponsor.
pub fn may_suspend_others(roles: &[Role]) -> bool {
    may_act(Act::Suspend, roles, false)
}

/// Whether someone with `roles` may lift a suspension made for a security reason.
pub fn may_lift_security(roles: &[Role]) -> bool {
    roles.contains(&Role::SecurityLead)
}

/// Only an active agent asks: checked inside the transaction that stores a request, so a
/// suspension that committed first always wins.
pub fn may_ask(status: AgentStatus) -> Result<(), Refusal> {
    match status {
        AgentStatus::Active => Ok(()),
        other => Err(Refusal::forbidden(
            "agent_inactive",
            format!("the agent is {}", other.as_str()),
        )),
    }
}

/// Whether a grant may be revoked early: only while it is live.
pub fn grant_revocable(revoked: bool, ended: bool) -> Result<(), Refusal> {
    if revoked {
        return Err(Refusal::conflict(
            "already_revoked",
            "this grant is no longer active",
        ));
    }
    if ended {
        return Err(Refusal::conflict(
            "grant_ended",
            "this grant is no longer active",
        ));
    }
    Ok(())
}

/// Whether an agent in `status` may be reactivated by a caller who may (or may not) lift a
/// suspension made for a security reason.
pub fn may_reactivate(
    status: AgentStatus,
    security: bool,
    may_lift_security: bool,
) -> Result<(), Refusal> {
    match status {
        AgentStatus::Suspended => {}
        AgentStatus::Revoked => {
            return Err(Refusal::conflict(
                "agent_revoked",
                "a revoked agent stays revoked; register a new identity",
            ));
        }
        AgentStatus::Active | AgentStatus::Proposed => {
            return Err(Refusal::conflict(
                "not_suspended",
                "the agent is not suspended",
            ));
        }
    }
    if security && !may_lift_security {
        return Err(Refusal::forbidden(
            "security_suspension",
            "this suspension was for a security reason; only a security lead may lift it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(did: &str, parent: Option<&str>, status: AgentStatus) -> AgentNode {
        AgentNode {
            did: did.into(),
            parent_did: parent.map(Into::into),
            status,
        }
    }

    fn grant(id: &str, agent: &str, source: Option<&str>) -> LiveGrant {
        LiveGrant {
            id: id.into(),
            agent_did: agent.into(),
            source_grant_id: source.map(Into::into),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reach_is_the_roots_then_their_descendants_once() {
        let children = vec![
            node("b", Some("a"), AgentStatus::Active),
            node("c", Some("b"), AgentStatus::Active),
            node("d", Some("a"), AgentStatus::Active),
            node("x", Some("y"), AgentStatus::Active),
        ];
        assert_eq!(
            reach(&strings(&["a"]), &children),
            strings(&["a", "b", "d", "c"])
        );
        assert_eq!(
            reach(&strings(&["b", "a"]), &children),
            strings(&["b", "c", "a", "d"])
        );
        assert_eq!(reach(&strings(&["z"]), &children), strings(&["z"]));
    }

    #[test]
    fn a_suspension_ends_grants_delegated_requests_and_skips_the_inactive() {
        let reached = vec![
            node("a", None, AgentStatus::Active),
            node("b", Some("a"), AgentStatus::Active),
            node("c", Some("b"), AgentStatus::Suspended),
        ];
        let grants = vec![
            grant("g1", "a", None),
            grant("g2", "b", Some("g1")),
            grant("g3", "b", None),
            grant("g4", "c", Some("g3")),
            grant("other", "z", None),
        ];
        let requests = vec![
            PendingRequest {
                id: "r1".into(),
                agent_did: "a".into(),
                child_did: Some("b".into()),
            },
            PendingRequest {
                id: "r2".into(),
                agent_did: "z".into(),
                child_did: Some("b".into()),
            },
        ];
        let plan = plan(TakeDown::Suspend, &reached, &grants, &requests);
        assert_eq!(plan.dids(), strings(&["a", "b"]));
        assert_eq!(plan.agents[0].grants, strings(&["g1", "g2"]));
        assert_eq!(plan.agents[0].requests, strings(&["r1"]));
        // b's own grant and what was delegated from it, even to a suspended grandchild.
        assert_eq!(plan.agents[1].grants, strings(&["g3", "g4"]));
        assert_eq!(plan.agents[1].requests, strings(&["r2"]));
        // Revocation also reaches the suspended agent.
        let revoke = super::plan(TakeDown::Revoke, &reached, &grants, &requests);
        assert_eq!(revoke.dids(), strings(&["a", "b", "c"]));
        assert!(revoke.agents[2].grants.is_empty());
    }

    #[test]
    fn nothing_to_do_is_an_empty_plan() {
        let reached = vec![node("a", None, AgentStatus::Revoked)];
        assert_eq!(plan(TakeDown::Suspend, &reached, &[], &[]), Plan::default());
        assert_eq!(plan(TakeDown::Revoke, &reached, &[], &[]), Plan::default());
    }

    #[test]
    fn who_may_act_on_an_agent() {
        use Act::*;
        for act in [Suspend, Reactivate, Revoke] {
            assert!(may_act(act, &[], true), "{act:?}: its sponsors");
            assert!(
                may_act(act, &[Role::SecurityLead], false),
                "{act:?}: a security lead"
            );
            assert!(may_act(act, &[Role::Admin], false), "{act:?}: an admin");
            assert!(
                !may_act(act, &[Role::Sponsor], false),
                "{act:?}: not another sponsor"
            );
        }
        assert!(may_act(Suspend, &[Role::OnCall], false));
        assert!(!may_act(Reactivate, &[Role::OnCall], false));
        assert!(!may_act(Revoke, &[Role::OnCall], false));
        assert!(may_suspend_others(&[Role::OnCall]) && !may_suspend_others(&[Role::Sponsor]));
        assert!(may_lift_security(&[Role::SecurityLead]) && !may_lift_security(&[Role::Admin]));
    }

    #[test]
    fn lifting_a_suspension() {
        assert!(may_reactivate(AgentStatus::Suspended, false, false).is_ok());
        assert!(may_reactivate(AgentStatus::Suspended, true, true).is_ok());
        let code = |r: Result<(), Refusal>| r.err().map_or("ok", |e| e.code());
        assert_eq!(
            code(may_reactivate(AgentStatus::Suspended, true, false)),
            "security_suspension"
        );
        assert_eq!(
            code(may_reactivate(AgentStatus::Revoked, false, true)),
            "agent_revoked"
        );
        assert_eq!(
            code(may_reactivate(AgentStatus::Active, false, true)),
            "not_suspended"
        );
        assert_eq!(code(grant_revocable(true, true)), "already_revoked");
        assert_eq!(code(grant_revocable(false, true)), "grant_ended");
        assert_eq!(code(grant_revocable(false, false)), "ok");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every agent reached that was active is suspended, nothing outside the reach is
        /// touched, and no grant or request is ended twice.
        #[test]
        fn plans_touch_exactly_the_reach(
            parents in prop::collection::vec(proptest::option::of(0usize..8), 8),
            active in prop::collection::vec(any::<bool>(), 8),
            grant_owner in prop::collection::vec((0usize..8, proptest::option::of(0usize..12)), 12),
            root in 0usize..8,
        ) {
            let did = |i: usize| format!("a{i}");
            // Parents only point to lower indices, so the tree has no cycles.
            let nodes: Vec<AgentNode> = (0..8).map(|i| AgentNode {
                did: did(i),
                parent_did: parents[i].filter(|p| *p < i).map(did),
                status: if active[i] { AgentStatus::Active } else { AgentStatus::Suspended },
            }).collect();
            let children: Vec<AgentNode> =
                nodes.iter().filter(|n| n.parent_did.is_some()).cloned().collect();
            let reached_dids = reach(&[did(root)], &children);
            let reached: Vec<AgentNode> = reached_dids.iter()
                .filter_map(|d| nodes.iter().find(|n| &n.did == d).cloned()).collect();
            let grants: Vec<LiveGrant> = grant_owner.iter().enumerate().map(|(i, (owner, src))| LiveGrant {
                id: format!("g{i}"),
                agent_did: did(*owner),
                source_grant_id: src.filter(|s| *s < i).map(|s| format!("g{s}")),
            }).collect();
            let plan = plan(TakeDown::Suspend, &reached, &grants, &[]);
            let planned = plan.dids();
            for n in &reached {
                prop_assert_eq!(planned.contains(&n.did), n.status == AgentStatus::Active);
            }
            let mut all: Vec<&String> = plan.agents.iter().flat_map(|a| &a.grants).collect();
            let before = all.len();
            all.sort();
            all.dedup();
            prop_assert_eq!(before, all.len());
            // Every grant held by a suspended agent is ended.
            for g in &grants {
                if planned.contains(&g.agent_did) {
                    prop_assert!(all.contains(&&g.id));
                }
            }
        }
    }
}
