//! Microsoft Entra's approvals in the inbox, beside the governance server's requests: each
//! source polled on its own schedule (a failing one keeps the rows of its last good poll and
//! never holds up or empties the others), and deciding one. Entra does not let an approver
//! change the window, so the decide dialog shows it fixed with its exact end; a justification
//! is required; one's own request has no approve.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::dialog::{Confirm, Dialog, FieldId, Row, Rule, TextField};
use super::inbox::Item;
use super::{Effect, Modal, State};
use crate::client::graph::{Decision, DecisionOutcome};
use crate::console::safe_text::one_line;
use crate::domain::entra::{EntraApproval, EntraSource, SourceState, may_approve, parse_key};

/// The Entra part of the console's state: who I am there, the rows, each source's polling.
#[derive(Debug, Clone)]
pub struct EntraInbox {
    /// The signed-in person's object id (for "my own request").
    pub me: String,
    pub rows: Vec<EntraApproval>,
    /// Lower-cased search text per row, kept in step with `rows`.
    pub(super) search: Vec<String>,
    pub sources: Vec<SourceState>,
    /// Sources with a poll under way (never two at once for one source).
    polling: BTreeSet<EntraSource>,
    /// Rows with a decision under way (the row stays until Graph answers).
    pub deciding: BTreeSet<String>,
}

/// Why a poll failed: the status bar's reason (with Graph's request-id), and the wait Graph
/// asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollFailure {
    pub reason: String,
    pub retry_after: Option<Duration>,
}

/// What came of a decision Graph answered: its outcome, and for a done one whether the
/// governance server recorded it in the audit chain (the error's text when it did not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraDecided {
    pub outcome: DecisionOutcome,
    pub recorded: Option<Result<(), String>>,
}

pub(super) fn search_text(r: &EntraApproval) -> String {
    let mut s = String::with_capacity(128);
    for part in [
        Some(r.source.label()),
        Some(r.source.short()),
        Some(r.id.as_str()),
        Some(r.requester.label()),
        r.requester.username.as_deref(),
        Some(r.target.label()),
        r.scope.as_deref(),
        r.justification.as_deref(),
        r.ticket.as_ref().and_then(|t| t.number.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(part);
        s.push(' ');
    }
    s.to_lowercase()
}

impl EntraInbox {
    fn new(me: String, every: Duration, now: DateTime<Utc>) -> Self {
        Self {
            me,
            rows: Vec::new(),
            search: Vec::new(),
            sources: EntraSource::ALL
                .into_iter()
                .map(|s| SourceState::new(s, every, now))
                .collect(),
            polling: BTreeSet::new(),
            deciding: BTreeSet::new(),
        }
    }

    /// The row with key `key` (`role:<id>`).
    pub fn row(&self, key: &str) -> Option<&EntraApproval> {
        self.position(key).map(|i| &self.rows[i])
    }

    pub(super) fn position(&self, key: &str) -> Option<usize> {
        let (Some(source), id) = parse_key(key) else {
            return None;
        };
        self.rows
            .iter()
            .position(|r| r.source == source && r.id == id)
    }

    /// Whether `row` is my own (asked by me, or for me).
    pub fn is_own(&self, row: &EntraApproval) -> bool {
        row.is_own(&self.me)
    }

    /// Replaces one source's rows with a new poll's.
    fn replace(&mut self, source: EntraSource, rows: Vec<EntraApproval>) {
        let mut i = 0;
        while i < self.rows.len() {
            if self.rows[i].source == source {
                self.rows.swap_remove(i);
                self.search.swap_remove(i);
            } else {
                i += 1;
            }
        }
        for row in rows.into_iter().filter(|r| r.source == source) {
            self.search.push(search_text(&row));
            self.rows.push(row);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(i) = self.position(key) {
            self.rows.swap_remove(i);
            self.search.swap_remove(i);
        }
    }
}

impl State {
    /// Shows Microsoft Entra's approvals waiting on `me` (an object id) in the inbox, each
    /// source polled at once and then every `every`, jittered.
    pub fn enable_entra(&mut self, me: impl Into<String>, every: Duration, now: DateTime<Utc>) {
        self.entra = Some(EntraInbox::new(me.into(), every, now));
    }

    /// The Entra row with key `key`.
    pub fn entra_row(&self, key: &str) -> Option<&EntraApproval> {
        self.entra.as_ref().and_then(|e| e.row(key))
    }

    /// The Entra row selected in the inbox.
    pub fn selected_entra(&self) -> Option<&EntraApproval> {
        match self.selected_item()? {
            Item::Entra(i) => self.entra.as_ref().and_then(|e| e.rows.get(i)),
            Item::Local(_) | Item::Action(_) => None,
        }
    }

    /// Polls of the sources that are due (each source one at a time).
    pub(super) fn entra_polls(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        let Some(entra) = self.entra.as_mut() else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        for state in &entra.sources {
            if state.due(now) && entra.polling.insert(state.source) {
                effects.push(Effect::PollEntra(state.source));
            }
        }
        effects
    }

    /// `ctrl-r`: every source now (one already being polled is not asked twice).
    pub(super) fn entra_poll_now(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        if let Some(entra) = self.entra.as_mut() {
            for state in &mut entra.sources {
                state.poll_now(now);
            }
        }
        self.entra_polls(now)
    }

    /// A poll's answer: the source's rows replaced, or its failure noted with the rows of its
    /// last good poll kept; the next poll scheduled either way.
    pub(super) fn on_entra_polled(
        &mut self,
        source: EntraSource,
        result: Result<Vec<EntraApproval>, PollFailure>,
        jitter: f64,
        now: DateTime<Utc>,
    ) {
        let keep = self.selected_key();
        let Some(entra) = self.entra.as_mut() else {
            return;
        };
        entra.polling.remove(&source);
        let Some(state) = entra.sources.iter_mut().find(|s| s.source == source) else {
            return;
        };
        match result {
            Ok(rows) => {
                state.synced(now, rows.len(), jitter);
                entra.replace(source, rows);
                self.refresh_inbox(keep);
            }
            Err(failure) => state.failed(now, failure.reason, failure.retry_after, jitter),
        }
    }

    /// Approve on an Entra row: refused at once for my own request; else the dialog with the
    /// window as asked (fixed) and a required justification.
    pub(super) fn open_entra_approve(&mut self, row: EntraApproval, now: DateTime<Utc>) {
        let me = self
            .entra
            .as_ref()
            .map(|e| e.me.clone())
            .unwrap_or_default();
        if may_approve(&row, &me).is_err() {
            self.flash(
                "You cannot approve your own request: someone else must.",
                true,
                now,
            );
            return;
        }
        self.open_entra_decide(row, Decision::Approve);
    }

    pub(super) fn open_entra_decide(&mut self, row: EntraApproval, decision: Decision) {
        let verb = match decision {
            Decision::Approve => "Approve",
            Decision::Deny => "Deny",
        };
        let mut rows = vec![
            Row::Line(format!(
                "{} asks for {}{}",
                row.requester.name_and_upn(),
                row.target.label(),
                row.scope
                    .as_deref()
                    .map(|s| format!(" (scope {s})"))
                    .unwrap_or_default()
            )),
            Row::Blank,
        ];
        if decision == Decision::Approve {
            rows.push(Row::Heading(
                "Window, as requested (Entra does not let an approver change it):".into(),
            ));
            rows.push(Row::EntraWindow(row.window.clone()));
            rows.push(Row::Blank);
        }
        rows.push(Row::Text(TextField::new(
            FieldId::Justification,
            "Justification",
            Rule::Required,
        )));
        rows.push(Row::Blank);
        let title = format!(
            "{verb} the {} request of {}",
            row.source.label(),
            one_line(row.requester.label())
        );
        self.modals.push(Modal::Dialog(Dialog::new(
            title,
            rows,
            format!("{verb} in Entra"),
            Confirm::DecideEntra {
                approval: Box::new(row),
                decision,
            },
        )));
    }

    /// Graph's answer to a decision. Done, or decided by someone else, expired or gone: the
    /// row leaves. Not mine, not my turn, or a failure: it stays, and the person reads why.
    pub(super) fn on_entra_decided(
        &mut self,
        key: String,
        decision: Decision,
        result: Result<EntraDecided, String>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        let keep = self.selected_key();
        // What the person reads first: the role, group or package and whose, not the key.
        let what = match self.entra_row(&key) {
            Some(row) => format!("{} for {}", row.target.label(), row.requester.label()),
            None => key.clone(),
        };
        if let Some(entra) = self.entra.as_mut() {
            entra.deciding.remove(&key);
        }
        let decided = match result {
            Ok(decided) => decided,
            Err(e) => {
                self.flash(format!("Not decided: {what}: {e}"), true, now);
                return Vec::new();
            }
        };
        let leaves = match &decided.outcome {
            DecisionOutcome::Done { .. }
            | DecisionOutcome::DecidedElsewhere { .. }
            | DecisionOutcome::AlreadyDecided { .. }
            | DecisionOutcome::Expired { .. }
            | DecisionOutcome::Gone { .. } => true,
            DecisionOutcome::NotApprover { .. } | DecisionOutcome::NotYourTurn { .. } => false,
        };
        if leaves {
            if let Some(entra) = self.entra.as_mut() {
                entra.remove(&key);
            }
            self.modals
                .retain(|m| !matches!(m, Modal::Detail { id, .. } if *id == key));
            self.refresh_inbox(keep);
        }
        let ids = decided
            .outcome
            .request_id()
            .map(|r| format!(" (request-id {r})"))
            .unwrap_or_default();
        let (text, error) = match (&decided.outcome, &decided.recorded) {
            (DecisionOutcome::Done { .. }, Some(Err(e))) => (
                format!(
                    "{} in Entra: {what}{ids}, but the governance server did not record it: {e}",
                    past(decision)
                ),
                true,
            ),
            (DecisionOutcome::Done { .. }, _) => {
                (format!("{} in Entra: {what}{ids}", past(decision)), false)
            }
            (other, _) => (format!("{what}: {}", other.describe()), true),
        };
        self.flash(text, error, now);
        Vec::new()
    }
}

fn past(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "Approved",
        Decision::Deny => "Denied",
    }
}
