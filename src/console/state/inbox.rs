//! The inbox: every pending request, filtered, sorted and marked, with the risk flags each
//! shows; and approving the marked ones together.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use super::dialog::{Confirm, Dialog, FieldId, Row, Rule, TextField};
use super::{EffectError, Load, Modal, RequestsPage, State, human_duration};
use crate::console::safe_text::one_line;
use crate::domain::policy::Sensitivity;
use crate::domain::trust::Tier;
use crate::protocol::requests::{Request, RequestKind, RequestStatus};

/// Inbox sort orders, cycled with the sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Soonest to expire first (the default: what needs a decision first).
    TimeLeft,
    /// Oldest first.
    Age,
    Agent,
    /// Lowest trust first.
    Trust,
    /// Most sensitive first.
    Risk,
}

impl Sort {
    pub fn label(self) -> &'static str {
        match self {
            Sort::TimeLeft => "time left",
            Sort::Age => "age",
            Sort::Agent => "agent",
            Sort::Trust => "trust",
            Sort::Risk => "risk",
        }
    }

    fn next(self) -> Self {
        match self {
            Sort::TimeLeft => Sort::Age,
            Sort::Age => Sort::Agent,
            Sort::Agent => Sort::Trust,
            Sort::Trust => Sort::Risk,
            Sort::Risk => Sort::TimeLeft,
        }
    }
}

/// Longer than the longest duration preset: worth a second look whatever policy allows.
const LONG_SECONDS: i64 = 8 * 3600;

/// Risk flags of a request, shown in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Risk {
    pub critical: bool,
    pub high: bool,
    pub low_trust: bool,
    pub delegation: bool,
    pub unusual_duration: bool,
}

impl Risk {
    pub fn of(r: &Request) -> Self {
        Self {
            critical: r.policy.sensitivity == Sensitivity::Critical,
            high: r.policy.sensitivity == Sensitivity::High,
            low_trust: Tier::of(r.trust_score) < Tier::Standard,
            delegation: r.kind == RequestKind::Delegation,
            unusual_duration: r.policy.grantable_seconds(r.duration_seconds) < r.duration_seconds
                || r.duration_seconds > LONG_SECONDS,
        }
    }

    /// Short text flags (colour is never the only signal).
    pub fn labels(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.critical {
            out.push("CRIT");
        } else if self.high {
            out.push("high");
        }
        if self.low_trust {
            out.push("trust↓");
        }
        if self.delegation {
            out.push("deleg");
        }
        if self.unusual_duration {
            out.push("long");
        }
        out
    }

    fn rank(self) -> u8 {
        u8::from(self.critical) * 4 + u8::from(self.high) * 2 + u8::from(self.low_trust)
    }
}

fn search_text(r: &Request) -> String {
    let mut s = String::with_capacity(128);
    s.push_str(&r.agent_name);
    s.push(' ');
    s.push_str(r.kind.as_str());
    for c in &r.capabilities {
        s.push(' ');
        s.push_str(c);
    }
    if let Some(child) = &r.child_name {
        s.push(' ');
        s.push_str(child);
    }
    if let Some(t) = &r.ticket {
        s.push(' ');
        s.push_str(t);
    }
    s.push(' ');
    s.push_str(&r.agent_did);
    s.to_lowercase()
}

impl State {
    pub fn selected_request(&self) -> Option<&Request> {
        self.inbox
            .get(self.inbox_selected)
            .and_then(|i| self.requests.get(*i))
    }

    pub fn request(&self, id: &str) -> Option<&Request> {
        self.requests.iter().find(|r| r.id == id)
    }

    /// Replaces all pending requests (keeps the selection on the same request if it is still
    /// there).
    pub fn set_requests(&mut self, requests: Vec<Request>) {
        let keep = self.selected_request().map(|r| r.id.clone());
        self.requests = requests
            .into_iter()
            .filter(|r| r.status == RequestStatus::Pending)
            .collect();
        self.search = self.requests.iter().map(search_text).collect();
        let ids: BTreeSet<&String> = self.requests.iter().map(|r| &r.id).collect();
        self.marks.retain(|m| ids.contains(m));
        self.refresh_inbox(keep);
    }

    /// A page of a background load of every pending request: the first replaces the list, the
    /// rest join it (skipping any the event stream brought in meanwhile); pages of an older
    /// load are dropped. The inbox stays usable throughout.
    pub(super) fn on_requests_page(
        &mut self,
        load: u64,
        page: Result<RequestsPage, EffectError>,
        now: DateTime<Utc>,
    ) {
        if load < self.pending_load {
            return;
        }
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                self.pending_paging = false;
                if matches!(self.requests_load, Load::Ready) {
                    self.flash(format!("loading pending requests stopped: {e}"), true, now);
                } else {
                    self.requests_load = Load::Failed(e);
                }
                return;
            }
        };
        if page.first {
            self.pending_load = load;
            self.pending_total = page.total;
            self.requests_load = Load::Ready;
            self.set_requests(page.requests);
        } else if load == self.pending_load {
            let keep = self.selected_request().map(|r| r.id.clone());
            let known: HashSet<String> = self.requests.iter().map(|r| r.id.clone()).collect();
            for request in page.requests {
                if request.status == RequestStatus::Pending && !known.contains(&request.id) {
                    self.search.push(search_text(&request));
                    self.requests.push(request);
                }
            }
            self.refresh_inbox(keep);
        }
        self.pending_paging = !page.done;
    }

    /// Inserts, updates or (when no longer pending) removes one request.
    pub(super) fn upsert_request(&mut self, request: Request) {
        let keep = self.selected_request().map(|r| r.id.clone());
        let pos = self.requests.iter().position(|r| r.id == request.id);
        match (pos, request.status == RequestStatus::Pending) {
            (Some(i), true) => {
                self.search[i] = search_text(&request);
                self.requests[i] = request;
            }
            (Some(i), false) => {
                self.requests.swap_remove(i);
                self.search.swap_remove(i);
                self.marks.remove(&request.id);
            }
            (None, true) => {
                self.search.push(search_text(&request));
                self.requests.push(request);
            }
            (None, false) => {}
        }
        self.refresh_inbox(keep);
    }

    /// Requests past their TTL leave the inbox even before the server says so.
    pub(super) fn drop_expired(&mut self, now: DateTime<Utc>) {
        if self.requests.iter().any(|r| r.expires_at <= now) {
            let keep: Vec<Request> = self
                .requests
                .iter()
                .filter(|r| r.expires_at > now)
                .cloned()
                .collect();
            self.set_requests(keep);
        }
    }

    /// Re-applies filter and sort. Linear in the number of requests plus the sort.
    pub fn refresh_inbox(&mut self, keep: Option<String>) {
        let needle = self.filter.to_lowercase();
        let terms: Vec<&str> = needle.split_whitespace().collect();
        let mut view: Vec<usize> = (0..self.requests.len())
            .filter(|i| terms.iter().all(|t| self.search[*i].contains(t)))
            .collect();
        let reqs = &self.requests;
        match self.sort {
            Sort::TimeLeft => view.sort_by_key(|i| (reqs[*i].expires_at, reqs[*i].created_at)),
            Sort::Age => view.sort_by_key(|i| reqs[*i].created_at),
            Sort::Agent => view.sort_by(|a, b| {
                reqs[*a]
                    .agent_name
                    .cmp(&reqs[*b].agent_name)
                    .then(reqs[*a].expires_at.cmp(&reqs[*b].expires_at))
            }),
            Sort::Trust => view.sort_by_key(|i| (reqs[*i].trust_score, reqs[*i].expires_at)),
            Sort::Risk => view.sort_by_key(|i| {
                (
                    std::cmp::Reverse(Risk::of(&reqs[*i]).rank()),
                    reqs[*i].expires_at,
                )
            }),
        }
        self.inbox = view;
        self.inbox_selected = keep
            .and_then(|id| self.inbox.iter().position(|i| self.requests[*i].id == id))
            .unwrap_or(self.inbox_selected)
            .min(self.inbox.len().saturating_sub(1));
    }

    pub(super) fn toggle_mark(&mut self) {
        if let Some(id) = self.selected_request().map(|r| r.id.clone()) {
            if !self.marks.remove(&id) {
                self.marks.insert(id);
            }
            self.move_selection(1);
        }
    }

    pub(super) fn cycle_sort(&mut self, now: DateTime<Utc>) {
        self.sort = self.sort.next();
        let keep = self.selected_request().map(|r| r.id.clone());
        self.refresh_inbox(keep);
        self.flash(format!("sorted by {}", self.sort.label()), false, now);
    }

    /// Approving marked requests together: only those policy and trust make routine; the set
    /// is shown again before anything is sent.
    pub(super) fn open_bulk_approve(&mut self, now: DateTime<Utc>) {
        let marked: Vec<&Request> = self
            .requests
            .iter()
            .filter(|r| self.marks.contains(&r.id))
            .collect();
        let blocked: Vec<String> = marked
            .iter()
            .filter(|r| !r.policy.allows_bulk_approval(Tier::of(r.trust_score)))
            .map(|r| one_line(&r.agent_name))
            .collect();
        if !blocked.is_empty() {
            self.flash(
                format!(
                    "bulk approve is only for low-sensitivity requests from agents at standard trust or above; not: {}",
                    blocked.join(", ")
                ),
                true,
                now,
            );
            return;
        }
        let count = marked.len();
        let mut rows = vec![Row::Heading(
            "Each of these is approved as asked (capped by policy):".into(),
        )];
        rows.extend(marked.iter().map(|r| {
            Row::Bullet(format!(
                "{} → {} for {}",
                one_line(&r.agent_name),
                r.capabilities.join(", "),
                human_duration(r.policy.grantable_seconds(r.duration_seconds))
            ))
        }));
        rows.push(Row::Blank);
        rows.push(Row::Text(TextField::new(
            FieldId::Justification,
            "Justification",
            Rule::Required,
        )));
        let request_ids = marked.iter().map(|r| r.id.clone()).collect();
        self.modals.push(Modal::Dialog(Dialog::new(
            format!("Approve {count} marked requests"),
            rows,
            format!("Approve {count}"),
            Confirm::ApproveMarked { request_ids },
        )));
    }
}
