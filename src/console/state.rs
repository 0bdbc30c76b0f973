//! The console's state and its one update function: `update(action, now) -> effects`. It is
//! synchronous and does no I/O; anything slow is an `Effect` that a task runs and answers with
//! an `Action`. Approvals are always two steps: a command opens a dialog whose focus starts on
//! Cancel, and only confirming submits.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::{Command, Context, Keymap, LineCommand, parse_line};
use super::login::LoginError;
use crate::client::ClientError;
use crate::domain::policy::Sensitivity;
use crate::domain::trust::Tier;
use crate::protocol::agents::{Agent, AgentStatus};
use crate::protocol::audit::{AuditEvent, VerifyReport};
use crate::protocol::requests::{
    Decision, DecisionBody, Grant, Request, RequestKind, RequestStatus, Suspension, TrustReport,
};

/// Top-level screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Inbox,
    Agents,
    Grants,
    Audit,
}

impl Screen {
    pub const ALL: [Screen; 4] = [Screen::Inbox, Screen::Agents, Screen::Grants, Screen::Audit];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Inbox => "Inbox",
            Screen::Agents => "Agents",
            Screen::Grants => "Grants",
            Screen::Audit => "Audit",
        }
    }

    fn context(self) -> Context {
        match self {
            Screen::Inbox => Context::Inbox,
            Screen::Agents => Context::Agents,
            Screen::Grants => Context::Grants,
            Screen::Audit => Context::Audit,
        }
    }
}

/// Why an effect failed; the console shows its message.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// The server refused, or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The session could not be renewed, so nothing was sent.
    #[error("session: {0}")]
    Session(#[from] LoginError),
    /// A failure below HTTP, shown as the system words it (`connection refused`).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the server closed the stream")]
    StreamClosed,
}

/// The event stream's state, shown in the status bar.
#[derive(Debug)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting { attempt: u32, error: EffectError },
}

/// Something loaded from the server.
#[derive(Debug)]
pub enum Load {
    Loading,
    Ready,
    Failed(EffectError),
}

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

/// Where the focus is in a dialog. Every dialog opens on `Cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Presets,
    Custom,
    Capability(usize),
    Text,
    Toggle,
    Cancel,
    Confirm,
}

/// Duration presets of the decide dialog, in seconds.
pub const PRESETS: [(i64, &str); 4] = [(900, "15m"), (3600, "1h"), (14_400, "4h"), (28_800, "8h")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecideForm {
    pub request_id: String,
    pub agent: String,
    pub grantee: String,
    /// min(requested, policy max).
    pub max_seconds: i64,
    /// Index into `PRESETS`, or `PRESETS.len()` for custom.
    pub preset: usize,
    pub custom: String,
    pub capabilities: Vec<(String, bool)>,
    pub justification: String,
    pub focus: Focus,
    pub error: Option<String>,
}

impl DecideForm {
    /// The duration chosen, if valid.
    pub fn seconds(&self) -> Result<i64, String> {
        let secs = if self.preset < PRESETS.len() {
            PRESETS[self.preset].0
        } else {
            let d = humantime::parse_duration(self.custom.trim())
                .map_err(|_| "type a duration such as 45m or 2h".to_owned())?;
            i64::try_from(d.as_secs()).map_err(|_| "too long".to_owned())?
        };
        if secs < 60 {
            return Err("at least one minute".into());
        }
        if secs > self.max_seconds {
            return Err(format!("at most {}", human_duration(self.max_seconds)));
        }
        Ok(secs)
    }

    pub fn chosen(&self) -> Vec<String> {
        self.capabilities
            .iter()
            .filter(|(_, on)| *on)
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn preset_allowed(&self, i: usize) -> bool {
        i >= PRESETS.len() || PRESETS[i].0 <= self.max_seconds
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonKind {
    Deny,
    Reactivate,
    RevokeGrant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonForm {
    pub kind: ReasonKind,
    /// Request ids (deny), a DID (reactivate) or a grant id.
    pub targets: Vec<String>,
    pub title: String,
    pub reason: String,
    pub focus: Focus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendForm {
    pub did: String,
    pub name: String,
    pub reason: String,
    pub security: bool,
    /// What the suspension will revoke, as far as the console knows.
    pub consequences: Vec<String>,
    pub focus: Focus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendAllForm {
    pub count: usize,
    pub typed: String,
    pub reason: String,
    pub focus: Focus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkApproveForm {
    pub request_ids: Vec<String>,
    pub lines: Vec<String>,
    pub justification: String,
    pub focus: Focus,
    pub error: Option<String>,
}

/// Layers over the current screen; `Esc` closes the top one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Help,
    Detail { id: String, scroll: u16 },
    Decide(DecideForm),
    Reason(ReasonForm),
    Suspend(SuspendForm),
    SuspendAll(SuspendAllForm),
    BulkApprove(BulkApproveForm),
    Filter(String),
    CommandLine(String),
}

/// What the state asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    LoadRequests,
    LoadRequest(String),
    LoadAgents,
    LoadGrants,
    LoadAudit,
    LoadTrust(String),
    Decide {
        id: String,
        body: DecisionBody,
    },
    Suspend {
        did: String,
        reason: String,
        security: bool,
    },
    SuspendAll {
        reason: String,
        expected: usize,
    },
    Reactivate {
        did: String,
        reason: String,
    },
    RevokeGrant {
        id: String,
        reason: String,
    },
    Verify,
    /// A new request arrived: bell, OSC 9/777, desktop notification (each if enabled).
    Notify {
        title: String,
        body: String,
    },
    Quit,
}

/// What happened.
#[derive(Debug)]
pub enum Action {
    Key(KeyEvent),
    Tick,
    Requests(Result<Vec<Request>, EffectError>),
    Request(Result<Request, EffectError>),
    Agents(Result<Vec<Agent>, EffectError>),
    Grants(Result<Vec<Grant>, EffectError>),
    Audit(Result<Vec<AuditEvent>, EffectError>),
    Trust(String, TrustReport),
    Event(Box<AuditEvent>),
    Connection(Connection),
    Decided(Result<Request, EffectError>),
    Suspended(Result<Suspension, EffectError>),
    Reactivated(Result<Agent, EffectError>),
    GrantRevoked(Result<Suspension, EffectError>),
    Verified(Result<VerifyReport, EffectError>),
    TokenExpiry(DateTime<Utc>),
}

/// A transient message at the bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    pub until: DateTime<Utc>,
}

/// Who is signed in where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub server: String,
    /// `production` gets a red frame.
    pub environment: String,
    pub embedded: bool,
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

#[derive(Debug)]
pub struct State {
    pub identity: Identity,
    pub keymap: Keymap,
    pub read_only: bool,
    pub screen: Screen,
    pub modals: Vec<Modal>,
    pub connection: Connection,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub flash: Option<Flash>,
    /// New requests since the inbox was last looked at.
    pub badge: usize,
    pub quit: bool,

    pub requests: Vec<Request>,
    /// Lower-cased search text per request, kept in step with `requests`.
    search: Vec<String>,
    /// Indices into `requests` after filter and sort.
    pub inbox: Vec<usize>,
    pub inbox_selected: usize,
    pub filter: String,
    /// The filter of the agents, grants and audit screens (by name, DID, action…).
    pub list_filter: String,
    pub sort: Sort,
    pub marks: BTreeSet<String>,
    pub requests_load: Load,

    pub agents: Vec<Agent>,
    pub agents_selected: usize,
    pub agents_load: Load,
    pub grants: Vec<Grant>,
    pub grants_selected: usize,
    pub grants_load: Load,
    pub audit: Vec<AuditEvent>,
    pub audit_selected: usize,
    pub audit_load: Load,
    pub verify: Option<Result<VerifyReport, EffectError>>,
    pub trust: HashMap<String, TrustReport>,
}

/// `90s` → `1m 30s`, `5400` → `1h 30m`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

const AUDIT_TAIL: usize = 500;
const PAGE: usize = 10;

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

fn is_text_input(focus: Focus) -> bool {
    matches!(focus, Focus::Text | Focus::Custom)
}

impl State {
    pub fn new(identity: Identity, keymap: Keymap, read_only: bool) -> Self {
        Self {
            identity,
            keymap,
            read_only,
            screen: Screen::Inbox,
            modals: Vec::new(),
            connection: Connection::Connecting,
            token_expires_at: None,
            flash: None,
            badge: 0,
            quit: false,
            requests: Vec::new(),
            search: Vec::new(),
            inbox: Vec::new(),
            inbox_selected: 0,
            filter: String::new(),
            list_filter: String::new(),
            sort: Sort::TimeLeft,
            marks: BTreeSet::new(),
            requests_load: Load::Loading,
            agents: Vec::new(),
            agents_selected: 0,
            agents_load: Load::Loading,
            grants: Vec::new(),
            grants_selected: 0,
            grants_load: Load::Loading,
            audit: Vec::new(),
            audit_selected: 0,
            audit_load: Load::Loading,
            verify: None,
            trust: HashMap::new(),
        }
    }

    /// What to load when the console starts.
    pub fn start(&self) -> Vec<Effect> {
        vec![
            Effect::LoadRequests,
            Effect::LoadAgents,
            Effect::LoadGrants,
            Effect::LoadAudit,
        ]
    }

    /// The keymap context right now.
    pub fn context(&self) -> Context {
        match self.modals.last() {
            Some(Modal::Detail { .. }) => Context::Detail,
            _ => self.screen.context(),
        }
    }

    pub fn selected_request(&self) -> Option<&Request> {
        self.inbox
            .get(self.inbox_selected)
            .and_then(|i| self.requests.get(*i))
    }

    fn list_match(&self, fields: &[&str]) -> bool {
        let needle = self.list_filter.to_lowercase();
        needle
            .split_whitespace()
            .all(|t| fields.iter().any(|f| f.to_lowercase().contains(t)))
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

    /// Indices of the grants shown.
    pub fn visible_grants(&self) -> Vec<usize> {
        (0..self.grants.len())
            .filter(|i| {
                let g = &self.grants[*i];
                let name = self
                    .agent(&g.agent_did)
                    .map(|a| a.name.as_str())
                    .unwrap_or("");
                self.list_match(&[name, &g.agent_did, &g.capabilities.join(" ")])
            })
            .collect()
    }

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

    /// The agent under the cursor on the agents screen.
    pub fn selected_agent(&self) -> Option<&Agent> {
        self.visible_agents()
            .get(self.agents_selected)
            .and_then(|i| self.agents.get(*i))
    }

    /// The grant under the cursor on the grants screen.
    pub fn selected_grant(&self) -> Option<&Grant> {
        self.visible_grants()
            .get(self.grants_selected)
            .and_then(|i| self.grants.get(*i))
    }

    pub fn request(&self, id: &str) -> Option<&Request> {
        self.requests.iter().find(|r| r.id == id)
    }

    pub fn agent(&self, did: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.did == did)
    }

    fn flash(&mut self, text: impl Into<String>, error: bool, now: DateTime<Utc>) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            until: now + Duration::seconds(6),
        });
    }

    // ---- the inbox model ----------------------------------------------------------------

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

    /// Inserts, updates or (when no longer pending) removes one request.
    fn upsert_request(&mut self, request: Request) {
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

    // ---- update -------------------------------------------------------------------------

    pub fn update(&mut self, action: Action, now: DateTime<Utc>) -> Vec<Effect> {
        match action {
            Action::Key(key) => self.on_key(key, now),
            Action::Tick => {
                if self.flash.as_ref().is_some_and(|f| f.until <= now) {
                    self.flash = None;
                }
                // Requests past their TTL leave the inbox even before the server says so.
                if self.requests.iter().any(|r| r.expires_at <= now) {
                    let keep: Vec<Request> = self
                        .requests
                        .iter()
                        .filter(|r| r.expires_at > now)
                        .cloned()
                        .collect();
                    self.set_requests(keep);
                }
                Vec::new()
            }
            Action::Requests(Ok(list)) => {
                self.requests_load = Load::Ready;
                self.set_requests(list);
                Vec::new()
            }
            Action::Requests(Err(e)) => {
                self.requests_load = Load::Failed(e);
                Vec::new()
            }
            Action::Request(Ok(r)) => {
                self.upsert_request(r);
                Vec::new()
            }
            Action::Request(Err(_)) => Vec::new(),
            Action::Agents(result) => {
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
                Vec::new()
            }
            Action::Grants(result) => {
                match result {
                    Ok(list) => {
                        self.grants = list;
                        self.grants_load = Load::Ready;
                        self.grants_selected = self
                            .grants_selected
                            .min(self.grants.len().saturating_sub(1));
                    }
                    Err(e) => self.grants_load = Load::Failed(e),
                }
                Vec::new()
            }
            Action::Audit(result) => {
                match result {
                    Ok(list) => {
                        self.audit = list;
                        self.audit_load = Load::Ready;
                    }
                    Err(e) => self.audit_load = Load::Failed(e),
                }
                Vec::new()
            }
            Action::Trust(did, report) => {
                self.trust.insert(did, report);
                Vec::new()
            }
            Action::Event(event) => self.on_event(*event),
            Action::Connection(c) => {
                let was_down = !matches!(self.connection, Connection::Live);
                self.connection = c;
                if was_down && matches!(self.connection, Connection::Live) {
                    // Back after a gap: the stream resumed from the last seq, but lists may
                    // have been loaded before it started.
                    return vec![Effect::LoadRequests, Effect::LoadAgents, Effect::LoadGrants];
                }
                Vec::new()
            }
            Action::Decided(result) => {
                match result {
                    Ok(r) => {
                        let what = match r.status {
                            RequestStatus::Approved => "approved",
                            RequestStatus::Denied => "denied",
                            RequestStatus::Pending => {
                                "approval recorded; a second approver is needed"
                            }
                            _ => r.status.as_str(),
                        };
                        self.flash(format!("{} {what}", r.agent_name), false, now);
                        self.upsert_request(r);
                        return vec![Effect::LoadGrants];
                    }
                    Err(e) => self.flash(format!("decision refused: {e}"), true, now),
                }
                Vec::new()
            }
            Action::Suspended(result) => {
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
            Action::Reactivated(result) => {
                match result {
                    Ok(a) => self.flash(format!("{} is active again", a.name), false, now),
                    Err(e) => self.flash(format!("reactivation refused: {e}"), true, now),
                }
                vec![Effect::LoadAgents]
            }
            Action::GrantRevoked(result) => {
                match result {
                    Ok(s) => self.flash(
                        format!(
                            "revoked {} grant(s) and {} token(s)",
                            s.grants_revoked.len(),
                            s.tokens_revoked
                        ),
                        false,
                        now,
                    ),
                    Err(e) => self.flash(format!("revocation refused: {e}"), true, now),
                }
                vec![Effect::LoadGrants]
            }
            Action::Verified(result) => {
                self.verify = Some(result);
                Vec::new()
            }
            Action::TokenExpiry(at) => {
                self.token_expires_at = Some(at);
                Vec::new()
            }
        }
    }

    fn on_event(&mut self, event: AuditEvent) -> Vec<Effect> {
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
            "agent.registered" | "agent.suspended" | "agent.revoked" | "agent.reactivated" => {
                effects.push(Effect::LoadAgents);
                if action != "agent.registered" {
                    effects.push(Effect::LoadGrants);
                    effects.push(Effect::LoadRequests);
                }
            }
            "grant.revoked" => effects.push(Effect::LoadGrants),
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

    // ---- keys ---------------------------------------------------------------------------

    fn on_key(&mut self, key: KeyEvent, now: DateTime<Utc>) -> Vec<Effect> {
        // Dialogs and inputs take keys first.
        if let Some(top) = self.modals.last().cloned() {
            match top {
                Modal::Help => {
                    if matches!(
                        key.code,
                        KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?')
                    ) {
                        self.modals.pop();
                    }
                    return Vec::new();
                }
                Modal::Filter(text) => return self.on_filter_key(key, text),
                Modal::CommandLine(text) => return self.on_command_key(key, text, now),
                Modal::Decide(form) => return self.on_decide_key(key, form),
                Modal::Reason(form) => return self.on_reason_key(key, form),
                Modal::Suspend(form) => return self.on_suspend_key(key, form),
                Modal::SuspendAll(form) => return self.on_suspend_all_key(key, form),
                Modal::BulkApprove(form) => return self.on_bulk_key(key, form),
                Modal::Detail { .. } => {}
            }
        }
        let Some(command) = self.keymap.lookup(&key, self.context()) else {
            return Vec::new();
        };
        self.on_command(command, now)
    }

    fn on_command(&mut self, command: Command, now: DateTime<Utc>) -> Vec<Effect> {
        match command {
            Command::Quit => {
                if self.modals.is_empty() {
                    self.quit = true;
                    return vec![Effect::Quit];
                }
                self.modals.pop();
            }
            Command::Back => {
                // Esc backs out and never quits.
                self.modals.pop();
            }
            Command::Help => self.modals.push(Modal::Help),
            Command::Up => self.move_selection(-1),
            Command::Down => self.move_selection(1),
            Command::PageUp => self.move_selection(-(PAGE as i64)),
            Command::PageDown => self.move_selection(PAGE as i64),
            Command::Top => self.move_selection(i64::MIN / 2),
            Command::Bottom => self.move_selection(i64::MAX / 2),
            Command::Inbox => self.go(Screen::Inbox),
            Command::Agents => self.go(Screen::Agents),
            Command::Grants => self.go(Screen::Grants),
            Command::Audit => self.go(Screen::Audit),
            Command::NextScreen => {
                let i = Screen::ALL
                    .iter()
                    .position(|s| *s == self.screen)
                    .unwrap_or(0);
                self.go(Screen::ALL[(i + 1) % Screen::ALL.len()]);
            }
            Command::Filter => {
                let current = if self.screen == Screen::Inbox {
                    self.filter.clone()
                } else {
                    self.list_filter.clone()
                };
                self.modals.push(Modal::Filter(current));
            }
            Command::CommandLine => self.modals.push(Modal::CommandLine(String::new())),
            Command::Refresh => return self.start(),
            Command::Open => {
                if let Some(r) = self.selected_request() {
                    let (id, did) = (r.id.clone(), r.agent_did.clone());
                    self.modals.push(Modal::Detail { id, scroll: 0 });
                    return vec![Effect::LoadTrust(did)];
                }
            }
            Command::Mark => {
                if let Some(id) = self.selected_request().map(|r| r.id.clone()) {
                    if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                    self.move_selection(1);
                }
            }
            Command::ClearMarks => self.marks.clear(),
            Command::Sort => {
                self.sort = self.sort.next();
                let keep = self.selected_request().map(|r| r.id.clone());
                self.refresh_inbox(keep);
                self.flash(format!("sorted by {}", self.sort.label()), false, now);
            }
            Command::Approve => self.open_approve(now),
            Command::Deny => self.open_deny(),
            Command::Suspend => self.open_suspend(),
            Command::SuspendAll => {
                let count = self
                    .agents
                    .iter()
                    .filter(|a| a.status == AgentStatus::Active)
                    .count();
                self.modals.push(Modal::SuspendAll(SuspendAllForm {
                    count,
                    typed: String::new(),
                    reason: String::new(),
                    focus: Focus::Cancel,
                    error: None,
                }));
            }
            Command::Reactivate => {
                if let Some(a) = self.selected_agent() {
                    if a.status == AgentStatus::Suspended {
                        self.modals.push(Modal::Reason(ReasonForm {
                            kind: ReasonKind::Reactivate,
                            targets: vec![a.did.clone()],
                            title: format!(
                                "Reactivate {}",
                                crate::console::safe_text::one_line(&a.name)
                            ),
                            reason: String::new(),
                            focus: Focus::Cancel,
                            error: None,
                        }));
                    } else {
                        self.flash("only a suspended agent can be reactivated", true, now);
                    }
                }
            }
            Command::RevokeGrant => {
                if let Some(g) = self.selected_grant().filter(|g| g.active) {
                    let name = self
                        .agent(&g.agent_did)
                        .map(|a| a.name.clone())
                        .unwrap_or_else(|| g.agent_did.clone());
                    self.modals.push(Modal::Reason(ReasonForm {
                        kind: ReasonKind::RevokeGrant,
                        targets: vec![g.id.clone()],
                        title: format!(
                            "Revoke {} from {} now",
                            g.capabilities.join(", "),
                            crate::console::safe_text::one_line(&name)
                        ),
                        reason: String::new(),
                        focus: Focus::Cancel,
                        error: None,
                    }));
                }
            }
            Command::Verify => {
                self.verify = None;
                return vec![Effect::Verify];
            }
        }
        Vec::new()
    }

    fn go(&mut self, screen: Screen) {
        self.modals.clear();
        self.screen = screen;
        if screen == Screen::Inbox {
            self.badge = 0;
        }
    }

    fn move_selection(&mut self, delta: i64) {
        if let Some(Modal::Detail { scroll, .. }) = self.modals.last_mut() {
            *scroll = (i64::from(*scroll) + delta).clamp(0, i64::from(u16::MAX)) as u16;
            return;
        }
        let lens = (
            self.visible_agents().len(),
            self.visible_grants().len(),
            self.visible_audit().len(),
        );
        let (selected, len) = match self.screen {
            Screen::Inbox => (&mut self.inbox_selected, self.inbox.len()),
            Screen::Agents => (&mut self.agents_selected, lens.0),
            Screen::Grants => (&mut self.grants_selected, lens.1),
            Screen::Audit => (&mut self.audit_selected, lens.2),
        };
        if len == 0 {
            *selected = 0;
            return;
        }
        let next = (*selected as i64)
            .saturating_add(delta)
            .clamp(0, len as i64 - 1);
        *selected = next as usize;
    }

    /// The request an acting key applies to: the open detail, else the inbox selection.
    fn target_request(&self) -> Option<&Request> {
        match self.modals.last() {
            Some(Modal::Detail { id, .. }) => self.request(id),
            _ if self.screen == Screen::Inbox => self.selected_request(),
            _ => None,
        }
    }

    fn open_approve(&mut self, now: DateTime<Utc>) {
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

    fn open_bulk_approve(&mut self, now: DateTime<Utc>) {
        let marked: Vec<&Request> = self
            .requests
            .iter()
            .filter(|r| self.marks.contains(&r.id))
            .collect();
        let blocked: Vec<String> = marked
            .iter()
            .filter(|r| !r.policy.allows_bulk_approval(Tier::of(r.trust_score)))
            .map(|r| crate::console::safe_text::one_line(&r.agent_name))
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
        let lines = marked
            .iter()
            .map(|r| {
                format!(
                    "{} → {} for {}",
                    crate::console::safe_text::one_line(&r.agent_name),
                    r.capabilities.join(", "),
                    human_duration(r.policy.grantable_seconds(r.duration_seconds))
                )
            })
            .collect();
        let request_ids = marked.iter().map(|r| r.id.clone()).collect();
        self.modals.push(Modal::BulkApprove(BulkApproveForm {
            request_ids,
            lines,
            justification: String::new(),
            focus: Focus::Cancel,
            error: None,
        }));
    }

    fn open_deny(&mut self) {
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

    fn open_suspend(&mut self) {
        let did = match (self.screen, self.modals.last()) {
            (_, Some(Modal::Detail { id, .. })) => self.request(id).map(|r| r.agent_did.clone()),
            (Screen::Inbox, _) => self.selected_request().map(|r| r.agent_did.clone()),
            (Screen::Agents, _) => self.selected_agent().map(|a| a.did.clone()),
            _ => None,
        };
        let Some(did) = did else { return };
        self.open_suspend_did(did);
    }

    fn open_suspend_did(&mut self, did: String) {
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
        // What the console knows will end: the agent's and its descendants' grants and
        // pending requests.
        let mut family = vec![did.clone()];
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
                .map(|a| crate::console::safe_text::one_line(&a.name))
                .unwrap_or_else(|| d.clone());
            if d != &did {
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
        self.modals.push(Modal::Suspend(SuspendForm {
            did,
            name,
            reason: String::new(),
            security: false,
            consequences,
            focus: Focus::Cancel,
            error: None,
        }));
    }

    // ---- inputs and dialogs -------------------------------------------------------------

    fn replace_top(&mut self, modal: Modal) {
        self.modals.pop();
        self.modals.push(modal);
    }

    fn on_filter_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        let inbox = self.screen == Screen::Inbox;
        match key.code {
            KeyCode::Esc => {
                self.modals.pop();
                text.clear();
            }
            KeyCode::Enter => {
                self.modals.pop();
                return Vec::new();
            }
            KeyCode::Backspace => {
                text.pop();
                self.replace_top(Modal::Filter(text.clone()));
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.chars().count() < 200 && !c.is_control() {
                    text.push(c);
                }
                self.replace_top(Modal::Filter(text.clone()));
            }
            _ => return Vec::new(),
        }
        if !inbox {
            self.list_filter = text;
            self.agents_selected = 0;
            self.grants_selected = 0;
            self.audit_selected = 0;
            return Vec::new();
        }
        self.filter = text;
        let keep = self.selected_request().map(|r| r.id.clone());
        self.refresh_inbox(keep);
        Vec::new()
    }

    fn on_command_key(
        &mut self,
        key: KeyEvent,
        mut text: String,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => {
                self.modals.pop();
            }
            KeyCode::Backspace => {
                text.pop();
                self.replace_top(Modal::CommandLine(text));
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.chars().count() < 200 && !c.is_control() {
                    text.push(c);
                }
                self.replace_top(Modal::CommandLine(text));
            }
            KeyCode::Enter => {
                self.modals.pop();
                return self.run_line(&text, now);
            }
            _ => {}
        }
        Vec::new()
    }

    fn run_line(&mut self, line: &str, now: DateTime<Utc>) -> Vec<Effect> {
        match parse_line(line) {
            Ok(None) => Vec::new(),
            Err(unknown) => {
                self.flash(unknown.to_string(), true, now);
                Vec::new()
            }
            Ok(Some(LineCommand {
                command: Command::Suspend,
                arg,
            })) => {
                let did = arg.unwrap_or_default();
                if self.read_only || !self.keymap.has(Command::Suspend) {
                    self.flash("suspending is not available here", true, now);
                } else if crate::domain::did::parse(&did).is_err() {
                    self.flash("usage: suspend did:mesh:…", true, now);
                } else {
                    self.open_suspend_did(did);
                }
                Vec::new()
            }
            Ok(Some(LineCommand {
                command: Command::Verify,
                ..
            })) => {
                // Verifying from anywhere shows the verdict where it is drawn.
                self.go(Screen::Audit);
                self.on_command(Command::Verify, now)
            }
            Ok(Some(LineCommand { command, .. })) => self.on_command(command, now),
        }
    }

    /// Common text editing of a focused input.
    fn edit(text: &mut String, key: &KeyEvent, limit: usize) -> bool {
        match key.code {
            KeyCode::Backspace => {
                text.pop();
                true
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.len() < limit && !c.is_control() {
                    text.push(c);
                }
                true
            }
            _ => false,
        }
    }

    fn on_decide_key(&mut self, key: KeyEvent, mut form: DecideForm) -> Vec<Effect> {
        let order: Vec<Focus> = std::iter::once(Focus::Presets)
            .chain((form.preset == PRESETS.len()).then_some(Focus::Custom))
            .chain((0..form.capabilities.len()).map(Focus::Capability))
            .chain([Focus::Text, Focus::Cancel, Focus::Confirm])
            .collect();
        // Keys only this dialog has: arrows between fields outside text, presets, toggles.
        match key.code {
            KeyCode::Down | KeyCode::Up if !is_text_input(form.focus) => {
                form.focus = cycle(form.focus, &order, key.code == KeyCode::Up);
                return self.keep(Modal::Decide(form));
            }
            KeyCode::Left | KeyCode::Right if form.focus == Focus::Presets => {
                let n = PRESETS.len() + 1;
                let mut next = form.preset;
                for _ in 0..n {
                    next = if key.code == KeyCode::Right {
                        (next + 1) % n
                    } else {
                        (next + n - 1) % n
                    };
                    if form.preset_allowed(next) {
                        break;
                    }
                }
                form.preset = next;
                if form.preset == PRESETS.len() && form.custom.is_empty() {
                    form.custom = human_duration(form.max_seconds);
                }
                return self.keep(Modal::Decide(form));
            }
            KeyCode::Char(' ') if matches!(form.focus, Focus::Capability(_)) => {
                if let Focus::Capability(i) = form.focus {
                    if let Some(c) = form.capabilities.get_mut(i) {
                        c.1 = !c.1;
                    }
                }
                return self.keep(Modal::Decide(form));
            }
            _ => {}
        }
        match navigate(&key, &mut form.focus, &order) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::Decide(form)),
            Nav::Other => {
                match form.focus {
                    Focus::Text => Self::edit(&mut form.justification, &key, 4096),
                    Focus::Custom => Self::edit(&mut form.custom, &key, 32),
                    _ => false,
                };
                self.keep(Modal::Decide(form))
            }
            Nav::Submit => {
                let seconds = form.seconds();
                let caps = form.chosen();
                let error = match (
                    &seconds,
                    caps.is_empty(),
                    form.justification.trim().is_empty(),
                ) {
                    (Err(e), _, _) => Some(format!("duration: {e}")),
                    (_, true, _) => Some("keep at least one capability".to_owned()),
                    (_, _, true) => Some("a justification is required".to_owned()),
                    _ => None,
                };
                if let Some(e) = error {
                    form.error = Some(e);
                    self.replace_top(Modal::Decide(form));
                    return Vec::new();
                }
                self.modals
                    .retain(|m| !matches!(m, Modal::Decide(_) | Modal::Detail { .. }));
                let all = caps.len() == form.capabilities.len();
                vec![Effect::Decide {
                    id: form.request_id,
                    body: DecisionBody {
                        decision: Decision::Approve,
                        duration_seconds: seconds.ok(),
                        capabilities: (!all).then_some(caps),
                        justification: form.justification,
                    },
                }]
            }
        }
    }

    /// Puts the edited dialog back with its error cleared.
    fn keep(&mut self, mut modal: Modal) -> Vec<Effect> {
        match &mut modal {
            Modal::Decide(f) => f.error = None,
            Modal::Reason(f) => f.error = None,
            Modal::Suspend(f) => f.error = None,
            Modal::SuspendAll(f) => f.error = None,
            Modal::BulkApprove(f) => f.error = None,
            _ => {}
        }
        self.replace_top(modal);
        Vec::new()
    }

    fn close_dialog(&mut self) -> Vec<Effect> {
        self.modals.pop();
        Vec::new()
    }

    fn on_reason_key(&mut self, key: KeyEvent, mut form: ReasonForm) -> Vec<Effect> {
        match navigate(
            &key,
            &mut form.focus,
            &[Focus::Text, Focus::Cancel, Focus::Confirm],
        ) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::Reason(form)),
            Nav::Other => {
                if form.focus == Focus::Text {
                    Self::edit(&mut form.reason, &key, 4096);
                }
                self.keep(Modal::Reason(form))
            }
            Nav::Submit => {
                if form.reason.trim().is_empty() {
                    form.error = Some("a reason is required".into());
                    self.replace_top(Modal::Reason(form));
                    return Vec::new();
                }
                self.modals
                    .retain(|m| !matches!(m, Modal::Reason(_) | Modal::Detail { .. }));
                let reason = form.reason;
                match form.kind {
                    ReasonKind::Deny => {
                        self.marks.clear();
                        form.targets
                            .into_iter()
                            .map(|id| Effect::Decide {
                                id,
                                body: DecisionBody {
                                    decision: Decision::Deny,
                                    duration_seconds: None,
                                    capabilities: None,
                                    justification: reason.clone(),
                                },
                            })
                            .collect()
                    }
                    ReasonKind::Reactivate => form
                        .targets
                        .into_iter()
                        .map(|did| Effect::Reactivate {
                            did,
                            reason: reason.clone(),
                        })
                        .collect(),
                    ReasonKind::RevokeGrant => form
                        .targets
                        .into_iter()
                        .map(|id| Effect::RevokeGrant {
                            id,
                            reason: reason.clone(),
                        })
                        .collect(),
                }
            }
        }
    }

    fn on_suspend_key(&mut self, key: KeyEvent, mut form: SuspendForm) -> Vec<Effect> {
        if key.code == KeyCode::Char(' ') && form.focus == Focus::Toggle {
            form.security = !form.security;
            return self.keep(Modal::Suspend(form));
        }
        let order = [Focus::Text, Focus::Toggle, Focus::Cancel, Focus::Confirm];
        match navigate(&key, &mut form.focus, &order) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::Suspend(form)),
            Nav::Other => {
                if form.focus == Focus::Text {
                    Self::edit(&mut form.reason, &key, 4096);
                }
                self.keep(Modal::Suspend(form))
            }
            Nav::Submit => {
                if form.reason.trim().is_empty() {
                    form.error = Some("a reason is required".into());
                    self.replace_top(Modal::Suspend(form));
                    return Vec::new();
                }
                self.modals
                    .retain(|m| !matches!(m, Modal::Suspend(_) | Modal::Detail { .. }));
                vec![Effect::Suspend {
                    did: form.did,
                    reason: form.reason,
                    security: form.security,
                }]
            }
        }
    }

    fn on_suspend_all_key(&mut self, key: KeyEvent, mut form: SuspendAllForm) -> Vec<Effect> {
        let order = [Focus::Custom, Focus::Text, Focus::Cancel, Focus::Confirm];
        match navigate(&key, &mut form.focus, &order) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::SuspendAll(form)),
            Nav::Other => {
                match form.focus {
                    Focus::Custom => Self::edit(&mut form.typed, &key, 8),
                    Focus::Text => Self::edit(&mut form.reason, &key, 4096),
                    _ => false,
                };
                self.keep(Modal::SuspendAll(form))
            }
            Nav::Submit => {
                let error = if form.typed.trim() != form.count.to_string() {
                    Some(format!(
                        "type {} to confirm how many agents stop",
                        form.count
                    ))
                } else if form.reason.trim().is_empty() {
                    Some("a reason is required".into())
                } else {
                    None
                };
                if let Some(e) = error {
                    form.error = Some(e);
                    self.replace_top(Modal::SuspendAll(form));
                    return Vec::new();
                }
                self.modals.pop();
                vec![Effect::SuspendAll {
                    reason: form.reason,
                    expected: form.count,
                }]
            }
        }
    }

    fn on_bulk_key(&mut self, key: KeyEvent, mut form: BulkApproveForm) -> Vec<Effect> {
        match navigate(
            &key,
            &mut form.focus,
            &[Focus::Text, Focus::Cancel, Focus::Confirm],
        ) {
            Nav::Close => self.close_dialog(),
            Nav::Handled => self.keep(Modal::BulkApprove(form)),
            Nav::Other => {
                if form.focus == Focus::Text {
                    Self::edit(&mut form.justification, &key, 4096);
                }
                self.keep(Modal::BulkApprove(form))
            }
            Nav::Submit => {
                if form.justification.trim().is_empty() {
                    form.error = Some("a justification is required".into());
                    self.replace_top(Modal::BulkApprove(form));
                    return Vec::new();
                }
                self.modals.pop();
                self.marks.clear();
                form.request_ids
                    .into_iter()
                    .map(|id| Effect::Decide {
                        id,
                        body: DecisionBody {
                            decision: Decision::Approve,
                            duration_seconds: None,
                            capabilities: None,
                            justification: form.justification.clone(),
                        },
                    })
                    .collect()
            }
        }
    }
}

/// What a key did to a dialog.
enum Nav {
    /// Esc, or Enter on Cancel.
    Close,
    /// Enter on Confirm.
    Submit,
    /// The focus moved.
    Handled,
    /// Not navigation: the focused field gets the key.
    Other,
}

/// The keys every dialog shares: Tab and Shift-Tab move through `order`, ←/→ switch between
/// the buttons, Enter activates the focused button (or moves on from a field), Esc cancels.
fn navigate(key: &KeyEvent, focus: &mut Focus, order: &[Focus]) -> Nav {
    match key.code {
        KeyCode::Esc => Nav::Close,
        KeyCode::Tab => {
            *focus = cycle(*focus, order, false);
            Nav::Handled
        }
        KeyCode::BackTab => {
            *focus = cycle(*focus, order, true);
            Nav::Handled
        }
        KeyCode::Left | KeyCode::Right if matches!(*focus, Focus::Cancel | Focus::Confirm) => {
            *focus = if *focus == Focus::Cancel {
                Focus::Confirm
            } else {
                Focus::Cancel
            };
            Nav::Handled
        }
        KeyCode::Enter => match *focus {
            Focus::Cancel => Nav::Close,
            Focus::Confirm => Nav::Submit,
            _ => {
                *focus = cycle(*focus, order, false);
                Nav::Handled
            }
        },
        _ => Nav::Other,
    }
}

/// The next (or previous) focus in `order`.
fn cycle(focus: Focus, order: &[Focus], back: bool) -> Focus {
    let pos = order.iter().position(|f| *f == focus).unwrap_or(0);
    if back {
        order[(pos + order.len() - 1) % order.len()]
    } else {
        order[(pos + 1) % order.len()]
    }
}
