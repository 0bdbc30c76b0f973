//! The request detail, and deciding requests: the decide dialog for one request, the deny
//! dialog for one or the marked ones, and what the server answered.

use chrono::{DateTime, Utc};

use super::{
    DecideForm, Effect, EffectError, Focus, Modal, PRESETS, ReasonForm, ReasonKind, Screen, State,
    human_duration,
};
use crate::protocol::requests::{Request, RequestStatus};

impl State {
    pub(super) fn open_detail(&mut self) -> Vec<Effect> {
        let Some(r) = self.selected_request() else {
            return Vec::new();
        };
        let (id, did) = (r.id.clone(), r.agent_did.clone());
        self.modals.push(Modal::Detail { id, scroll: 0 });
        vec![Effect::LoadTrust(did)]
    }

    /// The request an acting key applies to: the open detail, else the inbox selection.
    pub(super) fn target_request(&self) -> Option<&Request> {
        match self.modals.last() {
            Some(Modal::Detail { id, .. }) => self.request(id),
            _ if self.screen == Screen::Inbox => self.selected_request(),
            _ => None,
        }
    }

    pub(super) fn open_approve(&mut self, now: DateTime<Utc>) {
        let in_detail = matches!(self.modals.last(), Some(Modal::Detail { .. }));
        if !in_detail && !self.marks.is_empty() {
            return self.open_bulk_approve(now);
        }
        let Some(r) = self.target_request() else {
            return;
        };
        let max_seconds = r.policy.grantable_seconds(r.duration_seconds);
        let preset = (0..PRESETS.len())
            .rev()
            .find(|i| PRESETS[*i].0 <= max_seconds)
            .unwrap_or(PRESETS.len());
        let form = DecideForm {
            request_id: r.id.clone(),
            agent: r.agent_name.clone(),
            grantee: r.child_name.clone().unwrap_or_else(|| r.agent_name.clone()),
            max_seconds,
            preset,
            custom: if preset == PRESETS.len() {
                human_duration(max_seconds)
            } else {
                String::new()
            },
            capabilities: r.capabilities.iter().map(|c| (c.clone(), true)).collect(),
            justification: String::new(),
            focus: Focus::Cancel,
            error: None,
        };
        self.modals.push(Modal::Decide(form));
    }

    pub(super) fn open_deny(&mut self) {
        let in_detail = matches!(self.modals.last(), Some(Modal::Detail { .. }));
        let targets: Vec<String> = if !in_detail && !self.marks.is_empty() {
            self.marks.iter().cloned().collect()
        } else {
            match self.target_request() {
                Some(r) => vec![r.id.clone()],
                None => return,
            }
        };
        let title = if targets.len() == 1 {
            let name = self
                .request(&targets[0])
                .map(|r| crate::console::safe_text::one_line(&r.agent_name))
                .unwrap_or_default();
            format!("Deny the request of {name}")
        } else {
            format!("Deny {} marked requests", targets.len())
        };
        self.modals.push(Modal::Reason(ReasonForm {
            kind: ReasonKind::Deny,
            targets,
            title,
            reason: String::new(),
            focus: Focus::Cancel,
            error: None,
        }));
    }

    pub(super) fn on_decided(
        &mut self,
        result: Result<Request, EffectError>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        match result {
            Ok(r) => {
                let what = match r.status {
                    RequestStatus::Approved => "approved",
                    RequestStatus::Denied => "denied",
                    RequestStatus::Pending => "approval recorded; a second approver is needed",
                    _ => r.status.as_str(),
                };
                self.flash(format!("{} {what}", r.agent_name), false, now);
                self.upsert_request(r);
                vec![Effect::LoadGrants]
            }
            Err(e) => {
                self.flash(format!("decision refused: {e}"), true, now);
                Vec::new()
            }
        }
    }
}
