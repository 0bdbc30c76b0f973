//! The request detail, and deciding requests: the decide dialog for one request, the deny
//! dialog for one or the marked ones, and what the server answered. Action requests and Entra
//! rows open their own detail and dialogs through the same keys.

use chrono::{DateTime, Utc};

use super::dialog::{self, Checks, Confirm, Dialog, DurationField, FieldId, Row, Rule, TextField};
use super::{Effect, EffectError, Modal, Screen, State};
use crate::console::safe_text::one_line;
use crate::domain::entra::EntraApproval;
use crate::protocol::requests::{Decision, Request, RequestStatus};

impl State {
    pub(super) fn open_detail(&mut self) -> Vec<Effect> {
        if let Some(key) = self.selected_entra().map(EntraApproval::key) {
            self.modals.push(Modal::Detail { id: key, scroll: 0 });
            return Vec::new();
        }
        if let Some(id) = self.selected_action().map(|a| a.id.clone()) {
            self.modals.push(Modal::Detail { id, scroll: 0 });
            return Vec::new();
        }
        let Some(r) = self.selected_request() else {
            return Vec::new();
        };
        let (id, did) = (r.id.clone(), r.agent_did.clone());
        self.modals.push(Modal::Detail { id, scroll: 0 });
        vec![Effect::LoadTrust(did)]
    }

    fn in_detail(&self) -> bool {
        matches!(self.modals.last(), Some(Modal::Detail { .. }))
    }

    /// The request an acting key applies to: the open detail, else the inbox selection.
    pub(super) fn target_request(&self) -> Option<&Request> {
        match self.modals.last() {
            Some(Modal::Detail { id, .. }) => self.request(id),
            _ if self.screen == Screen::Inbox => self.selected_request(),
            _ => None,
        }
    }

    /// Whether an acting key would apply to my own Entra request (which I may not approve).
    pub fn own_entra_target(&self) -> bool {
        self.target_entra()
            .zip(self.entra.as_ref())
            .is_some_and(|(row, entra)| entra.is_own(row))
    }

    /// The Entra row an acting key applies to: the open detail, else the inbox selection.
    fn target_entra(&self) -> Option<&EntraApproval> {
        match self.modals.last() {
            Some(Modal::Detail { id, .. }) => self.entra_row(id),
            _ if self.screen == Screen::Inbox => self.selected_entra(),
            _ => None,
        }
    }

    pub(super) fn open_approve(&mut self, now: DateTime<Utc>) {
        if !self.in_detail() && !self.marks.is_empty() {
            return self.open_bulk_approve(now);
        }
        if let Some(row) = self.target_entra().cloned() {
            return self.open_entra_approve(row, now);
        }
        if let Some(action) = self.target_action().cloned() {
            return self.open_action_decide(&action, Decision::Approve, now);
        }
        if let Some(dialog) = self.target_request().map(decide_dialog) {
            self.modals.push(Modal::Dialog(dialog));
        }
    }

    pub(super) fn open_deny(&mut self, now: DateTime<Utc>) {
        let marked = !self.in_detail() && !self.marks.is_empty();
        if let Some(row) = self.target_entra().cloned().filter(|_| !marked) {
            return self.open_entra_decide(row, Decision::Deny);
        }
        if let Some(action) = self.target_action().cloned().filter(|_| !marked) {
            return self.open_action_decide(&action, Decision::Deny, now);
        }
        let request_ids: Vec<String> = if !self.in_detail() && !self.marks.is_empty() {
            self.marks.iter().cloned().collect()
        } else {
            match self.target_request() {
                Some(r) => vec![r.id.clone()],
                None => return,
            }
        };
        let title = match &request_ids[..] {
            [one] => {
                let name = self
                    .request(one)
                    .map(|r| one_line(&r.agent_name))
                    .unwrap_or_default();
                format!("Deny the request of {name}")
            }
            many => format!("Deny {} marked requests", many.len()),
        };
        let dialog = dialog::reason(title, Confirm::Deny { request_ids });
        self.modals.push(Modal::Dialog(dialog));
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

/// The decide dialog: a duration capped by what policy lets an approver grant, the requested
/// capabilities to narrow, a justification, and a summary of exactly what will be granted.
fn decide_dialog(r: &Request) -> Dialog {
    let rows = vec![
        Row::Duration(DurationField::new(
            r.policy.grantable_seconds(r.duration_seconds),
        )),
        Row::Blank,
        Row::Checks(Checks {
            id: FieldId::Capabilities,
            heading: Some("Capabilities"),
            items: r.capabilities.iter().map(|c| (c.clone(), true)).collect(),
            at_least_one: true,
        }),
        Row::Blank,
        Row::Text(TextField::new(
            FieldId::Justification,
            "Justification",
            Rule::Required,
        )),
        Row::Blank,
        Row::GrantSummary {
            grantee: r.child_name.clone().unwrap_or_else(|| r.agent_name.clone()),
            did: r.child_did.clone().unwrap_or_else(|| r.agent_did.clone()),
        },
    ];
    Dialog::new(
        format!("Approve the request of {}", one_line(&r.agent_name)),
        rows,
        "Confirm",
        Confirm::Approve {
            request_id: r.id.clone(),
        },
    )
}
