//! The revocation index: what makes a validly signed, unexpired token no longer good. Revoked
//! token ids, agents that are not active, and each sponsor's current roles, held in memory and
//! checked in O(1) on every authenticated request. It is loaded from the tables at start and
//! then follows the audit chain, whose events name every revocation (a token's `jti`, the tokens
//! a suspension, grant revocation or family revocation revoked), every status change and every
//! role change. Following the chain is also how another server instance on the same database
//! learns of a change.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::domain::role::Role;
use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::{AuditAction, AuditEvent};
use crate::protocol::oauth::SubjectKind;

/// Why a token that verifies is refused anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the token has been revoked")]
    Revoked,
    #[error("the agent is {}", .0.as_str())]
    Inactive(AgentStatus),
    #[error("the sponsor is unknown to this server")]
    UnknownSponsor,
}

#[derive(Debug, Clone)]
pub struct RevocationIndex {
    /// Revoked token ids, each with when it can be forgotten (its expiry, or later).
    revoked: HashMap<String, DateTime<Utc>>,
    /// Agents that are not active (proposed, suspended, revoked).
    inactive: HashMap<String, AgentStatus>,
    /// Each sponsor's roles now.
    roles: HashMap<String, Vec<Role>>,
    /// The newest audit event applied.
    seq: i64,
    /// The longest any token lives: a revoked `jti` named by an event is forgotten this long
    /// after the event, when the token has expired whatever it was.
    lifetime: Duration,
}

impl RevocationIndex {
    /// An empty index as of audit `seq`.
    pub fn new(seq: i64, lifetime: Duration) -> Self {
        Self {
            revoked: HashMap::new(),
            inactive: HashMap::new(),
            roles: HashMap::new(),
            seq,
            lifetime,
        }
    }

    pub fn seq(&self) -> i64 {
        self.seq
    }

    pub fn revoke(&mut self, jti: String, forget_after: DateTime<Utc>) {
        let at = self.revoked.entry(jti).or_insert(forget_after);
        *at = (*at).max(forget_after);
    }

    pub fn set_status(&mut self, did: String, status: AgentStatus) {
        if status == AgentStatus::Active {
            self.inactive.remove(&did);
        } else {
            self.inactive.insert(did, status);
        }
    }

    pub fn set_roles(&mut self, sponsor_id: String, roles: Vec<Role>) {
        self.roles.insert(sponsor_id, roles);
    }

    /// A sponsor's roles now, if the index knows the sponsor.
    pub fn roles_of(&self, sponsor_id: &str) -> Option<&[Role]> {
        self.roles.get(sponsor_id).map(Vec::as_slice)
    }

    /// Applies one audit event (events at or before `seq` are skipped: applying is idempotent
    /// and in order).
    pub fn apply(&mut self, event: &AuditEvent) {
        let e = &event.event;
        if e.seq <= self.seq {
            return;
        }
        self.seq = e.seq;
        // An event this build cannot read changes nothing here; the state check reports it.
        let Ok(action) = event.action() else {
            return;
        };
        let forget = e.at + self.lifetime;
        let revoke = |index: &mut Self, jtis: Option<Vec<String>>| {
            for jti in jtis.unwrap_or_default() {
                index.revoke(jti, forget);
            }
        };
        match action {
            AuditAction::TokenRevoked(_) => self.revoke(e.subject.clone(), forget),
            AuditAction::TokenFamilyRevoked(f) => revoke(self, f.revoked_tokens),
            AuditAction::GrantRevoked(g) => revoke(self, g.revoked_tokens),
            AuditAction::AgentSuspended(t) => {
                self.set_status(e.subject.clone(), AgentStatus::Suspended);
                revoke(self, t.revoked_tokens);
            }
            AuditAction::AgentRevoked(t) => {
                self.set_status(e.subject.clone(), AgentStatus::Revoked);
                revoke(self, t.revoked_tokens);
            }
            AuditAction::AgentReactivated(_) => {
                self.set_status(e.subject.clone(), AgentStatus::Active);
            }
            AuditAction::AgentRegistered(a) => {
                let status = a.status.unwrap_or(AgentStatus::Active);
                self.set_status(e.subject.clone(), status);
            }
            // A proposed child becomes active with the approval of its delegation.
            AuditAction::RequestApproved(a)
                if self.inactive.get(&a.grantee) == Some(&AgentStatus::Proposed) =>
            {
                self.set_status(a.grantee, AgentStatus::Active);
            }
            AuditAction::SponsorAdded(s) | AuditAction::SponsorUpdated(s) => {
                let roles = s.roles.iter().filter_map(|r| Role::parse(r).ok()).collect();
                self.set_roles(e.subject.clone(), roles);
            }
            _ => {}
        }
    }

    /// Whether a token that verified may act, and with which roles: not revoked, its agent
    /// active, its sponsor's roles those the token claims *and* the sponsor holds now (a role
    /// taken away takes effect at once; one given takes effect at the next sign-in).
    pub fn admit(
        &self,
        kind: SubjectKind,
        subject: &str,
        jti: &str,
        claimed: &[Role],
    ) -> Result<Vec<Role>, Refused> {
        if self.revoked.contains_key(jti) {
            return Err(Refused::Revoked);
        }
        match kind {
            SubjectKind::Agent => match self.inactive.get(subject) {
                Some(status) => Err(Refused::Inactive(*status)),
                None => Ok(Vec::new()),
            },
            SubjectKind::Sponsor => {
                let held = self.roles.get(subject).ok_or(Refused::UnknownSponsor)?;
                Ok(claimed
                    .iter()
                    .copied()
                    .filter(|r| held.contains(r))
                    .collect())
            }
        }
    }

    /// Forgets revoked ids whose tokens have expired.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.revoked.retain(|_, forget_after| *forget_after > now);
    }

    /// How many revoked ids are held.
    pub fn revoked_len(&self) -> usize {
        self.revoked.len()
    }
}

#[cfg(test)]
mod tests;
