//! The agents screen: my agents, suspending one (with what it will revoke), suspending all of
//! them (the count typed), and reactivating.

use chrono::{DateTime, Utc};

use super::dialog::{self, Checks, Confirm, Dialog, FieldId, Row, Rule, TextField};
use super::{Effect, EffectError, Load, Modal, Screen, State};
use crate::console::safe_text::one_line;
use crate::protocol::agents::{Agent, AgentStatus};
use crate::protocol::requests::Suspension;

impl State {
    pub fn agent(&self, did: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.did == did)
    }

    /// Indices of the agents shown (after the list filter).
    pub fn visible_agents(&self) -> Vec<usize> {
        (0..self.agents.len())
            .filter(|i| {
                let a = &self.agents[*i];
                self.list_match(&[&a.name, &a.did, a.status.as_str()])
            })
            .collect()
    }

    /// The agent under the cursor on the agents screen.
    pub fn selected_agent(&self) -> Option<&Agent> {
        self.visible_agents()
            .get(self.agents_selected)
            .and_then(|i| self.agents.get(*i))
    }

    pub(super) fn set_agents(&mut self, result: Result<Vec<Agent>, EffectError>) {
        match result {
            Ok(list) => {
                self.agents = list;
                self.agents_load = Load::Ready;
                self.agents_selected = self
                    .agents_selected
                    .min(self.agents.len().saturating_sub(1));
            }
            Err(e) => self.agents_load = Load::Failed(e),
        }
    }

    pub(super) fn open_suspend(&mut self) {
        let did = match (self.screen, self.modals.last()) {
            (_, Some(Modal::Detail { id, .. })) => self
                .request(id)
                .map(|r| r.agent_did.clone())
                .or_else(|| self.action_request(id).and_then(|a| a.agent_did.clone())),
            (Screen::Inbox, _) => self
                .selected_request()
                .map(|r| r.agent_did.clone())
                .or_else(|| self.selected_action().and_then(|a| a.agent_did.clone())),
            (Screen::Agents, _) => self.selected_agent().map(|a| a.did.clone()),
            _ => None,
        };
        if let Some(did) = did {
            self.open_suspend_did(did);
        }
    }

    pub(super) fn open_suspend_did(&mut self, did: String) {
        let name = self
            .agent(&did)
            .map(|a| a.name.clone())
            .or_else(|| {
                self.requests
                    .iter()
                    .find(|r| r.agent_did == did)
                    .map(|r| r.agent_name.clone())
            })
            .unwrap_or_else(|| did.clone());
        let mut rows = vec![Row::Heading("This will, at once and in one step:".into())];
        rows.extend(self.consequences(&did).into_iter().map(Row::Bullet));
        rows.extend([
            Row::Blank,
            Row::Text(TextField::new(FieldId::Reason, "Reason", Rule::Required)),
            Row::Checks(Checks {
                id: FieldId::Security,
                heading: None,
                items: vec![(
                    "security incident (only a security lead may lift it)".into(),
                    false,
                )],
                at_least_one: false,
            }),
        ]);
        let title = format!("Suspend {} ({did})", one_line(&name));
        let dialog = Dialog::new(title, rows, "Suspend", Confirm::Suspend { did });
        self.modals.push(Modal::Dialog(dialog));
    }

    /// What the console knows will end: the agent's and its descendants' grants and pending
    /// requests, and its tokens.
    fn consequences(&self, did: &str) -> Vec<String> {
        let mut family = vec![did.to_owned()];
        let mut i = 0;
        while i < family.len() {
            let parent = family[i].clone();
            for a in &self.agents {
                if a.parent_did.as_deref() == Some(parent.as_str()) && !family.contains(&a.did) {
                    family.push(a.did.clone());
                }
            }
            i += 1;
        }
        let mut consequences = Vec::new();
        for d in &family {
            let label = self
                .agent(d)
                .map(|a| one_line(&a.name))
                .unwrap_or_else(|| d.clone());
            if d != did {
                consequences.push(format!("descendant {label} is suspended too"));
            }
            for g in self.grants.iter().filter(|g| &g.agent_did == d && g.active) {
                consequences.push(format!(
                    "grant of {} to {label} is revoked",
                    g.capabilities.join(", ")
                ));
            }
            let pending = self
                .requests
                .iter()
                .filter(|r| &r.agent_did == d || r.child_did.as_deref() == Some(d.as_str()))
                .count();
            if pending > 0 {
                consequences.push(format!(
                    "{pending} pending request(s) of {label} are cancelled"
                ));
            }
        }
        consequences.push("every token it holds stops working at once".into());
        consequences
    }

    pub(super) fn open_suspend_all(&mut self) {
        let count = self
            .agents
            .iter()
            .filter(|a| a.status == AgentStatus::Active)
            .count();
        let rows = vec![
            Row::Line(format!(
                "Every one of your {count} active agents stops at once: grants revoked, requests cancelled, tokens dead."
            )),
            Row::Blank,
            Row::Text(TextField::new(
                FieldId::Count,
                format!("Type {count} to confirm"),
                Rule::Count(count),
            )),
            Row::Text(TextField::new(FieldId::Reason, "Reason", Rule::Required)),
        ];
        let dialog = Dialog::new(
            "Suspend ALL my agents",
            rows,
            "Suspend all",
            Confirm::SuspendAll { count },
        );
        self.modals.push(Modal::Dialog(dialog));
    }

    pub(super) fn open_reactivate(&mut self, now: DateTime<Utc>) {
        let Some(a) = self.selected_agent() else {
            return;
        };
        if a.status != AgentStatus::Suspended {
            return self.flash("only a suspended agent can be reactivated", true, now);
        }
        let dialog = dialog::reason(
            format!("Reactivate {}", one_line(&a.name)),
            Confirm::Reactivate { did: a.did.clone() },
        );
        self.modals.push(Modal::Dialog(dialog));
    }

    pub(super) fn on_suspended(
        &mut self,
        result: Result<Suspension, EffectError>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        match result {
            Ok(s) if s.agents.is_empty() => {
                self.flash("nothing was suspended: already out of service", false, now);
            }
            Ok(s) => self.flash(
                format!(
                    "suspended {} agent(s); revoked {} grant(s), cancelled {} request(s), {} token(s)",
                    s.agents.len(),
                    s.grants_revoked.len(),
                    s.requests_cancelled.len(),
                    s.tokens_revoked
                ),
                false,
                now,
            ),
            Err(e) => self.flash(format!("suspension refused: {e}"), true, now),
        }
        vec![Effect::LoadAgents, Effect::LoadGrants, Effect::LoadRequests]
    }

    pub(super) fn on_reactivated(
        &mut self,
        result: Result<Agent, EffectError>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        match result {
            Ok(a) => self.flash(format!("{} is active again", a.name), false, now),
            Err(e) => self.flash(format!("reactivation refused: {e}"), true, now),
        }
        vec![Effect::LoadAgents]
    }
}
