//! Action requests in the inbox, beside the governance server's requests and Entra's rows:
//! approvals the Agent Governance Toolkit asks for through the webhook, each for one execution
//! of one action (no duration, nothing to narrow). Loaded on start and refresh, kept live by
//! the event stream; a failed load keeps the rows it had and never touches the local inbox.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Utc};

use super::dialog::{Confirm, Dialog, FieldId, Row, Rule, TextField};
use super::inbox::Item;
use super::{Effect, EffectError, Modal, Screen, State};
use crate::console::safe_text::one_line;
use crate::protocol::actions::{Action as ActionRequest, ActionStatus};
use crate::protocol::audit::AuditEvent;
use crate::protocol::requests::Decision;

/// How many settled action requests are kept, so an open detail can still show the outcome.
const SETTLED: usize = 64;

/// The action requests waiting on me, and what the console knows about them.
#[derive(Debug, Clone, Default)]
pub struct ActionInbox {
    /// Pending action requests.
    pub rows: Vec<ActionRequest>,
    /// Lower-cased search text per row, kept in step with `rows`.
    pub(super) search: Vec<String>,
    /// Rows with a decision under way (the row stays until the server answers).
    pub deciding: BTreeSet<String>,
    /// Recently decided or expired, newest last.
    pub settled: VecDeque<ActionRequest>,
    /// Why the last load failed, while no later load succeeded.
    pub error: Option<String>,
}

/// Who asks, unescaped: the agent's name when the server knows it, else the `agent_id` as the
/// caller sent it; with the integration it came through.
pub fn action_who(a: &ActionRequest) -> String {
    let who = a.agent_name.as_deref().unwrap_or(&a.agent_id);
    match &a.integration {
        Some(via) => format!("{who} via {via}"),
        None => who.to_owned(),
    }
}

/// What it would do, unescaped: the operation, and on what.
pub fn action_what(a: &ActionRequest) -> String {
    match &a.target_resource {
        Some(target) => format!("{} @ {target}", a.operation),
        None => a.operation.clone(),
    }
}

fn search_text(a: &ActionRequest) -> String {
    let mut s = String::with_capacity(128);
    for part in [
        Some("action"),
        Some(a.id.as_str()),
        Some(a.agent_id.as_str()),
        a.agent_name.as_deref(),
        a.agent_did.as_deref(),
        a.integration.as_deref(),
        a.subject_id.as_deref(),
        Some(a.operation.as_str()),
        a.target_resource.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(part);
        s.push(' ');
    }
    s.to_lowercase()
}

/// The HTTP status of a failure the server answered.
fn status(e: &EffectError) -> Option<u16> {
    match e {
        EffectError::Client(c) => c.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// Whether a failure only says this server has no `/v1/actions` (or not this one).
fn not_found(e: &EffectError) -> bool {
    status(e) == Some(404)
}

impl ActionInbox {
    /// The pending row, else a settled one.
    pub fn get(&self, id: &str) -> Option<&ActionRequest> {
        self.rows
            .iter()
            .find(|a| a.id == id)
            .or_else(|| self.settled.iter().rev().find(|a| a.id == id))
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.rows.iter().position(|a| a.id == id)
    }

    fn replace(&mut self, rows: Vec<ActionRequest>) {
        self.rows = rows
            .into_iter()
            .filter(|a| a.status == ActionStatus::Pending)
            .collect();
        self.search = self.rows.iter().map(search_text).collect();
        let ids: BTreeSet<&str> = self.rows.iter().map(|a| a.id.as_str()).collect();
        self.deciding.retain(|id| ids.contains(id.as_str()));
    }

    fn settle(&mut self, action: ActionRequest) {
        self.settled.retain(|a| a.id != action.id);
        self.settled.push_back(action);
        while self.settled.len() > SETTLED {
            self.settled.pop_front();
        }
    }

    /// Inserts or updates a pending row; a settled one leaves the rows.
    fn upsert(&mut self, action: ActionRequest) {
        let pos = self.position(&action.id);
        match (pos, action.status == ActionStatus::Pending) {
            (Some(i), true) => {
                self.search[i] = search_text(&action);
                self.rows[i] = action;
            }
            (None, true) => {
                self.search.push(search_text(&action));
                self.rows.push(action);
            }
            (Some(i), false) => {
                self.rows.swap_remove(i);
                self.search.swap_remove(i);
                self.deciding.remove(&action.id);
                self.settle(action);
            }
            (None, false) => self.settle(action),
        }
    }

    /// Takes a row out without an outcome (gone, or not mine to see).
    fn forget(&mut self, id: &str) {
        if let Some(i) = self.position(id) {
            self.rows.swap_remove(i);
            self.search.swap_remove(i);
        }
        self.deciding.remove(id);
    }

    /// Takes a row out as `status` (the event stream said so, or its time passed).
    fn remove_as(&mut self, id: &str, status: ActionStatus) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        let mut action = self.rows.swap_remove(i);
        self.search.swap_remove(i);
        self.deciding.remove(id);
        action.status = status;
        self.settle(action);
        true
    }
}

impl State {
    /// The action request with id `id`: pending, or recently settled.
    pub fn action_request(&self, id: &str) -> Option<&ActionRequest> {
        self.actions.get(id)
    }

    /// The pending action request selected in the inbox.
    pub fn selected_action(&self) -> Option<&ActionRequest> {
        match self.selected_item()? {
            Item::Action(i) => self.actions.rows.get(i),
            _ => None,
        }
    }

    /// The pending action request an acting key applies to: the open detail, else the inbox
    /// selection.
    pub(super) fn target_action(&self) -> Option<&ActionRequest> {
        match self.modals.last() {
            Some(Modal::Detail { id, .. }) => self.actions.rows.iter().find(|a| a.id == *id),
            _ if self.screen == Screen::Inbox => self.selected_action(),
            _ => None,
        }
    }

    /// A load of every pending action request. A server without `/v1/actions` (404) has none;
    /// any other failure keeps the rows and says why.
    pub(super) fn on_action_requests(
        &mut self,
        result: Result<Vec<ActionRequest>, EffectError>,
        now: DateTime<Utc>,
    ) {
        let keep = self.selected_key();
        match result {
            Ok(rows) => {
                self.actions.error = None;
                self.actions.replace(rows);
            }
            Err(e) if not_found(&e) => {
                self.actions.error = None;
                self.actions.replace(Vec::new());
            }
            Err(e) => {
                self.flash(format!("loading action requests failed: {e}"), true, now);
                self.actions.error = Some(e.to_string());
                return;
            }
        }
        self.refresh_inbox(keep);
    }

    /// One action request read again (the event stream named it, or a decision conflicted).
    pub(super) fn on_action_request(
        &mut self,
        id: &str,
        result: Result<ActionRequest, EffectError>,
        now: DateTime<Utc>,
    ) {
        let keep = self.selected_key();
        match result {
            Ok(action) => self.actions.upsert(action),
            // Gone, or not mine to see: it is not in my inbox.
            Err(e) if matches!(status(&e), Some(403 | 404)) => self.actions.forget(id),
            Err(e) => {
                self.flash(format!("reading action request {id}: {e}"), true, now);
                return;
            }
        }
        self.refresh_inbox(keep);
    }

    /// Opens the decide dialog of a pending action request: the exact action, a required
    /// justification, no duration and nothing to narrow (it is for one execution).
    pub(super) fn open_action_decide(
        &mut self,
        action: &ActionRequest,
        decision: Decision,
        now: DateTime<Utc>,
    ) {
        if self.actions.deciding.contains(&action.id) {
            self.flash("A decision on this action is already under way.", true, now);
            return;
        }
        let (verb, label, meaning) = match decision {
            Decision::Approve => (
                "Approve",
                "Approve once",
                "Approving lets the agent run this exact action once; nothing else is granted.",
            ),
            Decision::Deny => (
                "Deny",
                "Deny",
                "Denying answers the agent's held call with a denial.",
            ),
        };
        let rows = vec![
            Row::Line(format!(
                "{} asks to run {}",
                action_who(action),
                action_what(action)
            )),
            Row::Line(format!("action digest {}", action.action_digest)),
            Row::Blank,
            Row::Heading(meaning.into()),
            Row::Blank,
            Row::Text(TextField::new(
                FieldId::Justification,
                "Justification",
                Rule::Required,
            )),
            Row::Blank,
        ];
        let title = format!("{verb} the action of {}", one_line(&action_who(action)));
        self.modals.push(Modal::Dialog(Dialog::new(
            title,
            rows,
            label,
            Confirm::DecideAction {
                id: action.id.clone(),
                decision,
            },
        )));
    }

    /// The server's answer to a decision: the row settles; a conflict (decided or expired
    /// meanwhile) shows the server's message and reads the row again.
    pub(super) fn on_action_decided(
        &mut self,
        id: &str,
        result: Result<ActionRequest, EffectError>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        self.actions.deciding.remove(id);
        let what = self
            .actions
            .get(id)
            .map(|a| format!("{} for {}", action_what(a), action_who(a)))
            .unwrap_or_else(|| id.to_owned());
        match result {
            Ok(action) => {
                let text = match action.status {
                    ActionStatus::Approved => format!("Approved once: {what}"),
                    ActionStatus::Denied => format!("Denied: {what}"),
                    other => format!("{what}: {}", other.as_str()),
                };
                self.flash(text, false, now);
                let keep = self.selected_key();
                self.actions.upsert(action);
                self.refresh_inbox(keep);
                Vec::new()
            }
            Err(e) if status(&e) == Some(409) => {
                self.flash(format!("Not decided: {what}: {e}"), true, now);
                vec![Effect::LoadAction(id.to_owned())]
            }
            Err(e) => {
                self.flash(format!("Not decided: {what}: {e}"), true, now);
                let keep = self.selected_key();
                self.refresh_inbox(keep);
                Vec::new()
            }
        }
    }

    /// What an `action.*` audit event on the stream does to the inbox.
    pub(super) fn on_action_event(&mut self, event: &AuditEvent) -> Vec<Effect> {
        let action = event.event.action.as_str();
        let Some(id) = event.event.details["approval_request_id"].as_str() else {
            return Vec::new();
        };
        let settled = match action {
            "action.submitted" => {
                if self.screen != Screen::Inbox {
                    self.badge += 1;
                }
                let what = event.event.details["operation"]
                    .as_str()
                    .map(|op| format!(" to run {op}"))
                    .unwrap_or_default();
                return vec![
                    Effect::LoadAction(id.to_owned()),
                    Effect::Notify {
                        title: "New action request".into(),
                        body: format!("{} asks{what}", event.event.subject),
                    },
                ];
            }
            "action.redelivered" => return vec![Effect::LoadAction(id.to_owned())],
            "action.approved" => ActionStatus::Approved,
            "action.denied" => ActionStatus::Denied,
            "action.expired" => ActionStatus::Expired,
            _ => return Vec::new(),
        };
        let keep = self.selected_key();
        self.actions.remove_as(id, settled);
        self.refresh_inbox(keep);
        // An open detail shows who decided and why: read it again.
        let open = self
            .modals
            .iter()
            .any(|m| matches!(m, Modal::Detail { id: open, .. } if open == id));
        if open && settled != ActionStatus::Expired {
            vec![Effect::LoadAction(id.to_owned())]
        } else {
            Vec::new()
        }
    }

    /// Action requests past their time leave the inbox even before the server says so.
    pub(super) fn drop_expired_actions(&mut self, now: DateTime<Utc>) {
        let expired: Vec<String> = self
            .actions
            .rows
            .iter()
            .filter(|a| a.expires_at <= now)
            .map(|a| a.id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        let keep = self.selected_key();
        for id in expired {
            self.actions.remove_as(&id, ActionStatus::Expired);
        }
        self.refresh_inbox(keep);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn action(n: usize, status: ActionStatus) -> ActionRequest {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        ActionRequest {
            id: format!("ar_{n:032x}"),
            agent_id: "*".into(),
            agent_did: None,
            agent_name: None,
            integration: Some("agt".into()),
            subject_id: None,
            operation: "deploy".into(),
            target_resource: None,
            policy_decision_id: "pd".into(),
            policy_version: "v1".into(),
            approval_chain_id: "c".into(),
            approval_chain_version: "1".into(),
            action_digest: "d".into(),
            input_digest: "i".into(),
            status,
            created_at: at,
            expires_at: at,
            decided_at: None,
            approver_id: None,
            approver_username: None,
            justification: None,
        }
    }

    #[test]
    fn rows_hold_only_pending_ones_and_settled_ones_are_kept_a_while() {
        let mut inbox = ActionInbox::default();
        inbox.replace(vec![
            action(1, ActionStatus::Pending),
            action(2, ActionStatus::Approved),
        ]);
        assert_eq!(inbox.rows.len(), 1);
        assert_eq!(inbox.search.len(), 1);
        assert!(inbox.search[0].contains("action") && inbox.search[0].contains("agt"));
        inbox.deciding.insert(action(1, ActionStatus::Pending).id);
        inbox.upsert(action(1, ActionStatus::Denied));
        assert!(inbox.rows.is_empty() && inbox.deciding.is_empty());
        assert_eq!(
            inbox
                .get(&action(1, ActionStatus::Denied).id)
                .map(|a| a.status),
            Some(ActionStatus::Denied)
        );
        // An answer about one never pending here is kept for its detail, not shown as a row.
        inbox.upsert(action(3, ActionStatus::Expired));
        assert!(inbox.rows.is_empty());
        for n in 10..(10 + SETTLED) {
            inbox.upsert(action(n, ActionStatus::Approved));
        }
        assert_eq!(inbox.settled.len(), SETTLED);
        assert!(
            inbox.get(&action(1, ActionStatus::Denied).id).is_none(),
            "the oldest went"
        );
    }

    #[test]
    fn who_and_what_say_the_name_or_the_agent_id_as_sent() {
        let mut a = action(1, ActionStatus::Pending);
        assert_eq!(action_who(&a), "* via agt");
        assert_eq!(action_what(&a), "deploy");
        a.agent_name = Some("deployer".into());
        a.integration = None;
        a.target_resource = Some("prod".into());
        assert_eq!(action_who(&a), "deployer");
        assert_eq!(action_what(&a), "deploy @ prod");
    }
}
