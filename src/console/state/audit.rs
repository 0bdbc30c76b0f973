//! The audit screen: the tail of the chain, kept live by the event stream (whose events are
//! audit events), which also tells the other screens what to reload.

use super::{Effect, Screen, State};
use crate::protocol::audit::AuditEvent;

const AUDIT_TAIL: usize = 500;

impl State {
    /// Indices of the audit events shown: filter by agent name or DID, action, actor.
    pub fn visible_audit(&self) -> Vec<usize> {
        (0..self.audit.len())
            .filter(|i| {
                let e = &self.audit[*i].event;
                let name = self
                    .agent(&e.subject)
                    .map(|a| a.name.as_str())
                    .unwrap_or("");
                self.list_match(&[name, &e.subject, &e.action, &e.actor.id])
            })
            .collect()
    }

    pub(super) fn on_event(&mut self, event: AuditEvent) -> Vec<Effect> {
        let mut effects = Vec::new();
        let action = event.event.action.as_str();
        let request_id = event.event.details["request_id"]
            .as_str()
            .map(str::to_owned);
        match action {
            "request.submitted" => {
                if let Some(id) = request_id {
                    effects.push(Effect::LoadRequest(id));
                }
            }
            "request.approved"
            | "request.denied"
            | "request.expired"
            | "request.cancelled"
            | "request.approval_recorded" => {
                if let Some(id) = request_id {
                    effects.push(Effect::LoadRequest(id));
                }
                if action == "request.approved" {
                    effects.push(Effect::LoadGrants);
                }
            }
            // The server found its tables disagreeing with the chain: show the banner.
            "audit.state_mismatch" => effects.push(Effect::LoadRecord),
            "agent.registered" | "agent.suspended" | "agent.revoked" | "agent.reactivated" => {
                effects.push(Effect::LoadAgents);
                if action != "agent.registered" {
                    effects.push(Effect::LoadGrants);
                    effects.push(Effect::LoadRequests);
                }
            }
            "grant.revoked" | "grant.expired" => effects.push(Effect::LoadGrants),
            a if a.starts_with("action.") => effects.extend(self.on_action_event(&event)),
            _ => {}
        }
        if action == "request.submitted" {
            if self.screen != Screen::Inbox {
                self.badge += 1;
            }
            let caps = event.event.details["capabilities"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            effects.push(Effect::Notify {
                title: "New request".into(),
                body: format!("{} asks for {caps}", event.event.subject),
            });
        }
        self.audit.push(event);
        if self.audit.len() > AUDIT_TAIL {
            let excess = self.audit.len() - AUDIT_TAIL;
            self.audit.drain(..excess);
            self.audit_selected = self.audit_selected.saturating_sub(excess);
        }
        effects
    }
}
