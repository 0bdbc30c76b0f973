//! The state the audit chain records, and its comparison with the tables: `audit verify
//! --state`. Replaying every event from the first rebuilds who is suspended, what each agent
//! holds standing, who sponsors it and who its parent is, every grant, every revoked token and
//! refresh-token family, each sponsor's roles, and each action request's status. A direct edit
//! of a table that bypassed the server (an agent un-suspended, a grant extended, a token
//! un-revoked, capabilities widened, a role given, an action approved) then shows as a
//! difference, because no event records it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::action::{RegisteredBy, TakenDown};
use crate::protocol::audit::{ActorKind, AuditAction, AuditEvent, StateDifference};
use crate::protocol::requests::RequestKind;

/// One agent, as either side holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    pub status: AgentStatus,
    pub capabilities: BTreeSet<String>,
    /// Sponsor ids.
    pub sponsors: BTreeSet<String>,
    pub parent: Option<String>,
}

/// One grant, as either side holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantState {
    pub agent: String,
    pub capabilities: BTreeSet<String>,
    pub not_after: DateTime<Utc>,
    pub revoked: bool,
    /// It ran out and the sweep recorded that.
    pub ended: bool,
}

/// The governed state: what the tables hold, or what the chain records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSnapshot {
    pub agents: BTreeMap<String, AgentState>,
    /// Sponsor id → roles.
    pub sponsors: BTreeMap<String, BTreeSet<String>>,
    pub grants: BTreeMap<String, GrantState>,
    /// Access tokens revoked, by `jti`.
    pub revoked_tokens: BTreeSet<String>,
    /// Refresh-token families revoked.
    pub revoked_families: BTreeSet<String>,
    /// Action requests (AGT approvals) by id: their status (`pending`, `approved`, `denied`,
    /// `expired`), so an approval written into the table without a sponsor's decision shows.
    pub actions: BTreeMap<String, String>,
}

/// Replays the chain, one event at a time, oldest first.
#[derive(Debug, Default)]
pub struct Replay {
    state: StateSnapshot,
    /// Some revocation did not name its tokens (written before they were named): tokens revoked
    /// in the tables but not on the record cannot be told from those.
    unnamed_revocations: bool,
    unreadable: Vec<StateDifference>,
}

impl Replay {
    pub fn apply(&mut self, event: &AuditEvent) {
        let e = &event.event;
        let action = match event.action() {
            Ok(action) => action,
            Err(err) => {
                self.unreadable.push(difference(
                    "chain",
                    &e.seq.to_string(),
                    "event",
                    "readable",
                    &format!("unreadable ({err})"),
                ));
                return;
            }
        };
        let state = &mut self.state;
        match action {
            AuditAction::SponsorAdded(s) | AuditAction::SponsorUpdated(s) => {
                state
                    .sponsors
                    .insert(e.subject.clone(), s.roles.into_iter().collect());
            }
            AuditAction::AgentRegistered(a) => {
                let (sponsors, parent) = match &a.by {
                    RegisteredBy::Sponsor { .. } if e.actor.kind == ActorKind::Sponsor => {
                        (BTreeSet::from([e.actor.id.clone()]), None)
                    }
                    RegisteredBy::Sponsor { .. } => (BTreeSet::new(), None),
                    RegisteredBy::Agent { registered_by, .. } => {
                        let sponsors = state
                            .agents
                            .get(registered_by)
                            .map(|p| p.sponsors.clone())
                            .unwrap_or_default();
                        // A proposed child is linked from the start; before children were
                        // proposed, the link came with the approval.
                        let linked = a.status == Some(AgentStatus::Proposed);
                        (sponsors, linked.then(|| registered_by.clone()))
                    }
                };
                state.agents.insert(
                    e.subject.clone(),
                    AgentState {
                        status: a.status.unwrap_or(AgentStatus::Active),
                        capabilities: a.capabilities.into_iter().collect(),
                        sponsors,
                        parent,
                    },
                );
            }
            AuditAction::AgentSuspended(t) => self.take_down(&e.subject, AgentStatus::Suspended, t),
            AuditAction::AgentRevoked(t) => self.take_down(&e.subject, AgentStatus::Revoked, t),
            AuditAction::AgentReactivated(_) => {
                if let Some(agent) = state.agents.get_mut(&e.subject) {
                    agent.status = AgentStatus::Active;
                }
            }
            AuditAction::RequestApproved(a) => {
                if a.kind == RequestKind::Delegation
                    && let Some(child) = state.agents.get_mut(&a.grantee)
                {
                    child.parent = Some(e.subject.clone());
                    if child.status == AgentStatus::Proposed {
                        child.status = AgentStatus::Active;
                    }
                }
                for g in a.grants {
                    state.grants.insert(
                        g.id,
                        GrantState {
                            agent: a.grantee.clone(),
                            capabilities: g.capabilities.into_iter().collect(),
                            not_after: g.not_after,
                            revoked: false,
                            ended: false,
                        },
                    );
                }
            }
            AuditAction::GrantRevoked(g) => {
                self.revoke_grants(&g.grants_revoked);
                self.revoke_tokens(g.revoked_tokens);
            }
            AuditAction::GrantExpired(g) => {
                if let Some(grant) = state.grants.get_mut(&g.grant_id) {
                    grant.ended = true;
                }
            }
            AuditAction::TokenRevoked(_) => {
                state.revoked_tokens.insert(e.subject.clone());
            }
            AuditAction::TokenFamilyRevoked(f) => {
                let family = f.family_id.unwrap_or_else(|| e.subject.clone());
                state.revoked_families.insert(family);
                self.revoke_tokens(f.revoked_tokens);
            }
            // Events that change none of the compared state.
            AuditAction::SigningKeyRotated(_)
            | AuditAction::SponsorSignedIn(_)
            | AuditAction::DeviceApproved(_)
            | AuditAction::DeviceDenied(_)
            | AuditAction::TokenIssued(_)
            | AuditAction::RequestSubmitted(_)
            | AuditAction::RequestApprovalRecorded(_)
            | AuditAction::RequestDenied(_)
            | AuditAction::RequestExpired(_)
            | AuditAction::RequestCancelled(_)
            | AuditAction::StateMismatch(_)
            | AuditAction::EntraDecided(_)
            | AuditAction::ActionRedelivered(_)
            | AuditAction::ClientAdded(_)
            | AuditAction::ClientRemoved(_) => {}
            AuditAction::ActionSubmitted(a) => {
                state
                    .actions
                    .insert(a.approval_request_id, "pending".into());
            }
            AuditAction::ActionApproved(a) => {
                state
                    .actions
                    .insert(a.approval_request_id, "approved".into());
            }
            AuditAction::ActionDenied(a) => {
                state.actions.insert(a.approval_request_id, "denied".into());
            }
            AuditAction::ActionExpired(a) => {
                state
                    .actions
                    .insert(a.approval_request_id, "expired".into());
            }
        }
    }

    fn take_down(&mut self, did: &str, status: AgentStatus, t: TakenDown) {
        if let Some(agent) = self.state.agents.get_mut(did) {
            agent.status = status;
        }
        self.revoke_grants(&t.grants_revoked);
        self.revoke_tokens(t.revoked_tokens);
    }

    fn revoke_grants(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(grant) = self.state.grants.get_mut(id) {
                grant.revoked = true;
            }
        }
    }

    fn revoke_tokens(&mut self, jtis: Option<Vec<String>>) {
        match jtis {
            Some(jtis) => self.state.revoked_tokens.extend(jtis),
            None => self.unnamed_revocations = true,
        }
    }

    /// Every difference between the replayed record and `tables`, in a stable order, and what
    /// could not be compared.
    pub fn compare(&self, tables: &StateSnapshot) -> (Vec<StateDifference>, Option<String>) {
        let record = &self.state;
        let mut out = self.unreadable.clone();
        compare_agents(&record.agents, &tables.agents, &mut out);
        compare_maps(
            "sponsor",
            &record.sponsors,
            &tables.sponsors,
            |id, r, t, out| {
                if r != t {
                    out.push(difference("sponsor", id, "roles", &list(r), &list(t)));
                }
            },
            &mut out,
        );
        compare_grants(&record.grants, &tables.grants, &mut out);
        for jti in record.revoked_tokens.difference(&tables.revoked_tokens) {
            out.push(difference("token", jti, "revoked", "yes", "no"));
        }
        if !self.unnamed_revocations {
            for jti in tables.revoked_tokens.difference(&record.revoked_tokens) {
                out.push(difference("token", jti, "revoked", "no", "yes"));
            }
        }
        for (family, r, t) in symmetric(&record.revoked_families, &tables.revoked_families) {
            out.push(difference("refresh_family", family, "revoked", r, t));
        }
        compare_maps(
            "action",
            &record.actions,
            &tables.actions,
            |id, r, t, out| {
                if r != t {
                    out.push(difference("action", id, "status", r, t));
                }
            },
            &mut out,
        );
        let note = self.unnamed_revocations.then(|| {
            "some token revocations on the record predate naming their tokens: only tokens \
             the record revoked are checked, not tokens revoked beyond it"
                .to_owned()
        });
        (out, note)
    }
}

fn difference(area: &str, id: &str, field: &str, record: &str, table: &str) -> StateDifference {
    StateDifference {
        area: area.into(),
        id: id.into(),
        field: field.into(),
        record: record.into(),
        table: table.into(),
    }
}

fn list(items: &BTreeSet<String>) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Members of one set only: (member, on the record, in the tables).
fn symmetric<'a>(
    record: &'a BTreeSet<String>,
    tables: &'a BTreeSet<String>,
) -> impl Iterator<Item = (&'a String, &'static str, &'static str)> {
    record
        .difference(tables)
        .map(|m| (m, "yes", "no"))
        .chain(tables.difference(record).map(|m| (m, "no", "yes")))
}

/// Walks the union of keys: presence first, then `fields` on both.
fn compare_maps<V>(
    area: &str,
    record: &BTreeMap<String, V>,
    tables: &BTreeMap<String, V>,
    fields: impl Fn(&str, &V, &V, &mut Vec<StateDifference>),
    out: &mut Vec<StateDifference>,
) {
    let ids: BTreeSet<&String> = record.keys().chain(tables.keys()).collect();
    for id in ids {
        match (record.get(id), tables.get(id)) {
            (Some(r), Some(t)) => fields(id, r, t, out),
            (Some(_), None) => out.push(difference(area, id, "presence", "present", "absent")),
            (None, Some(_)) => out.push(difference(area, id, "presence", "absent", "present")),
            (None, None) => {}
        }
    }
}

fn compare_agents(
    record: &BTreeMap<String, AgentState>,
    tables: &BTreeMap<String, AgentState>,
    out: &mut Vec<StateDifference>,
) {
    compare_maps(
        "agent",
        record,
        tables,
        |id, r, t, out| {
            if r.status != t.status {
                let (rs, ts) = (r.status.as_str(), t.status.as_str());
                out.push(difference("agent", id, "status", rs, ts));
            }
            if r.capabilities != t.capabilities {
                let (rc, tc) = (list(&r.capabilities), list(&t.capabilities));
                out.push(difference("agent", id, "capabilities", &rc, &tc));
            }
            if r.sponsors != t.sponsors {
                let (rs, ts) = (list(&r.sponsors), list(&t.sponsors));
                out.push(difference("agent", id, "sponsors", &rs, &ts));
            }
            if r.parent != t.parent {
                let none = || "none".to_owned();
                let (rp, tp) = (
                    r.parent.clone().unwrap_or_else(none),
                    t.parent.clone().unwrap_or_else(none),
                );
                out.push(difference("agent", id, "parent", &rp, &tp));
            }
        },
        out,
    );
}

fn compare_grants(
    record: &BTreeMap<String, GrantState>,
    tables: &BTreeMap<String, GrantState>,
    out: &mut Vec<StateDifference>,
) {
    compare_maps(
        "grant",
        record,
        tables,
        |id, r, t, out| {
            if r.agent != t.agent {
                out.push(difference("grant", id, "agent", &r.agent, &t.agent));
            }
            if r.capabilities != t.capabilities {
                let (rc, tc) = (list(&r.capabilities), list(&t.capabilities));
                out.push(difference("grant", id, "capabilities", &rc, &tc));
            }
            // Both sides keep milliseconds.
            if r.not_after.timestamp_millis() != t.not_after.timestamp_millis() {
                let f = crate::protocol::time::format;
                out.push(difference(
                    "grant",
                    id,
                    "not_after",
                    &f(&r.not_after),
                    &f(&t.not_after),
                ));
            }
            if r.revoked != t.revoked {
                let (rr, tr) = (yes(r.revoked), yes(t.revoked));
                out.push(difference("grant", id, "revoked", rr, tr));
            }
            if r.ended != t.ended {
                let (re, te) = (yes(r.ended), yes(t.ended));
                out.push(difference("grant", id, "ended", re, te));
            }
        },
        out,
    );
}

#[cfg(test)]
mod tests;
