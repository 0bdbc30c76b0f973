//! The inbox: every pending request, the governance server's, its action requests and (with
//! `[entra]`) Microsoft Entra's approvals waiting on me, filtered, sorted and marked, with the
//! risk flags each shows; and approving the marked ones together.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use super::dialog::{Confirm, Dialog, FieldId, Row, Rule, TextField};
use super::{EffectError, Load, Modal, RequestsPage, State, human_duration};
use crate::console::safe_text::one_line;
use crate::domain::entra::EntraApproval;
use crate::domain::policy::Sensitivity;
use crate::domain::trust::Tier;
use crate::protocol::actions::Action as ActionRequest;
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

/// One inbox row: an index into the governance server's requests, its action requests, or
/// Entra's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Local(usize),
    Action(usize),
    Entra(usize),
}

/// What sorting compares of a row, whatever its source. Action requests and Entra rows have no
/// trust score and sort after every request on trust; an Entra row's time left is the
/// approvers' 24 hours.
struct SortKey<'a> {
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    name: &'a str,
    trust: i64,
    rank: u8,
    /// Breaks ties, so rows that compare equal keep their places from one poll to the next:
    /// the source (local first), then the id.
    tie: (u8, &'a str),
}

impl<'a> SortKey<'a> {
    /// The risk rank only when sorting by risk (it costs a policy lookup).
    fn local(r: &'a Request, with_rank: bool) -> Self {
        Self {
            expires_at: r.expires_at,
            created_at: r.created_at,
            name: &r.agent_name,
            trust: r.trust_score,
            rank: if with_rank { Risk::of(r).rank() } else { 0 },
            tie: (0, &r.id),
        }
    }

    fn action(a: &'a ActionRequest) -> Self {
        Self {
            expires_at: a.expires_at,
            created_at: a.created_at,
            name: a.agent_name.as_deref().unwrap_or(&a.agent_id),
            trust: i64::MAX,
            rank: 0,
            tie: (1, &a.id),
        }
    }

    fn entra(r: &'a EntraApproval) -> Self {
        Self {
            expires_at: r.decide_by().unwrap_or(DateTime::<Utc>::MAX_UTC),
            created_at: r.created_at.unwrap_or(DateTime::<Utc>::MIN_UTC),
            name: r.requester.label(),
            trust: i64::MAX,
            rank: 0,
            tie: (2 + r.source as u8, &r.id),
        }
    }
}

impl State {
    /// Every row before the filter: the requests, action requests and Entra's rows.
    pub fn row_count(&self) -> usize {
        self.requests.len()
            + self.actions.rows.len()
            + self.entra.as_ref().map_or(0, |e| e.rows.len())
    }

    pub fn selected_item(&self) -> Option<Item> {
        self.inbox.get(self.inbox_selected).copied()
    }

    /// The governance server's request selected in the inbox (none on another kind of row).
    pub fn selected_request(&self) -> Option<&Request> {
        match self.selected_item()? {
            Item::Local(i) => self.requests.get(i),
            Item::Action(_) | Item::Entra(_) => None,
        }
    }

    /// The selected row's id: a request's or action request's id, or an Entra row's key
    /// (`role:<id>`).
    pub fn selected_key(&self) -> Option<String> {
        match self.selected_item()? {
            Item::Local(i) => self.requests.get(i).map(|r| r.id.clone()),
            Item::Action(i) => self.actions.rows.get(i).map(|a| a.id.clone()),
            Item::Entra(i) => self
                .entra
                .as_ref()
                .and_then(|e| e.rows.get(i))
                .map(EntraApproval::key),
        }
    }

    /// Whether `item` is the row with id or key `key`.
    fn is_row(&self, item: Item, key: &str) -> bool {
        match item {
            Item::Local(i) => self.requests[i].id == key,
            Item::Action(i) => self.actions.rows[i].id == key,
            Item::Entra(i) => self.entra.as_ref().is_some_and(|e| {
                let r = &e.rows[i];
                key.strip_prefix(r.source.short())
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|id| id == r.id)
            }),
        }
    }

    pub fn request(&self, id: &str) -> Option<&Request> {
        self.requests.iter().find(|r| r.id == id)
    }

    /// Replaces all pending requests (keeps the selection on the same request if it is still
    /// there).
    pub fn set_requests(&mut self, requests: Vec<Request>) {
        let keep = self.selected_key();
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
            let keep = self.selected_key();
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
        let keep = self.selected_key();
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
        let entra_expired = self.entra.as_ref().is_some_and(|e| {
            e.rows
                .iter()
                .any(|r| r.decide_by().is_some_and(|by| by <= now))
        });
        if entra_expired {
            let keep = self.selected_key();
            if let Some(e) = self.entra.as_mut() {
                let mut i = 0;
                while i < e.rows.len() {
                    if e.rows[i].decide_by().is_some_and(|by| by <= now) {
                        e.rows.swap_remove(i);
                        e.search.swap_remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            self.refresh_inbox(keep);
        }
        self.drop_expired_actions(now);
    }

    /// Re-applies filter and sort to every source's rows. Linear in the number of rows plus
    /// the sort.
    pub fn refresh_inbox(&mut self, keep: Option<String>) {
        let needle = self.filter.to_lowercase();
        let terms: Vec<&str> = needle.split_whitespace().collect();
        let matches = |text: &String| terms.iter().all(|t| text.contains(t));
        let sort = self.sort;
        let with_rank = sort == Sort::Risk;
        let mut keyed: Vec<(SortKey, Item)> = (0..self.requests.len())
            .filter(|i| matches(&self.search[*i]))
            .map(|i| (SortKey::local(&self.requests[i], with_rank), Item::Local(i)))
            .collect();
        let actions = &self.actions;
        keyed.extend(
            (0..actions.rows.len())
                .filter(|i| matches(&actions.search[*i]))
                .map(|i| (SortKey::action(&actions.rows[i]), Item::Action(i))),
        );
        if let Some(entra) = &self.entra {
            keyed.extend(
                (0..entra.rows.len())
                    .filter(|i| matches(&entra.search[*i]))
                    .map(|i| (SortKey::entra(&entra.rows[i]), Item::Entra(i))),
            );
        }
        let by_time = |a: &SortKey, b: &SortKey| {
            (a.expires_at, a.created_at).cmp(&(b.expires_at, b.created_at))
        };
        keyed.sort_by(|(a, _), (b, _)| {
            let order = match sort {
                Sort::TimeLeft => by_time(a, b),
                Sort::Age => a.created_at.cmp(&b.created_at),
                Sort::Agent => a.name.cmp(b.name).then(a.expires_at.cmp(&b.expires_at)),
                Sort::Trust => (a.trust, a.expires_at).cmp(&(b.trust, b.expires_at)),
                Sort::Risk => (std::cmp::Reverse(a.rank), a.expires_at)
                    .cmp(&(std::cmp::Reverse(b.rank), b.expires_at)),
            };
            order.then_with(|| a.tie.cmp(&b.tie))
        });
        let view: Vec<Item> = keyed.into_iter().map(|(_, i)| i).collect();
        self.inbox = view;
        self.inbox_selected = keep
            .and_then(|id| self.inbox.iter().position(|i| self.is_row(*i, &id)))
            .unwrap_or(self.inbox_selected)
            .min(self.inbox.len().saturating_sub(1));
    }

    pub(super) fn toggle_mark(&mut self, now: DateTime<Utc>) {
        if self.selected_entra().is_some() || self.selected_action().is_some() {
            let which = if self.selected_action().is_some() {
                "Action requests"
            } else {
                "Entra approvals"
            };
            self.flash(
                format!("{which} are decided one at a time: open it, or press approve or deny"),
                true,
                now,
            );
            return;
        }
        if let Some(id) = self.selected_request().map(|r| r.id.clone()) {
            if !self.marks.remove(&id) {
                self.marks.insert(id);
            }
            self.move_selection(1);
        }
    }

    pub(super) fn cycle_sort(&mut self, now: DateTime<Utc>) {
        self.sort = self.sort.next();
        let keep = self.selected_key();
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
                    "bulk approve is only for low-sensitivity requests that need one approval, from agents at standard trust or above; not: {}",
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
