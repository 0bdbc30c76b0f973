//! The console's state and its one update function: `update(action, now) -> effects`. It is
//! synchronous and does no I/O; anything slow is an `Effect` that a task runs and answers with
//! an `Action`. Approvals are always two steps: a command opens a dialog whose focus starts on
//! Cancel, and only confirming submits. Each screen's part lives in its own file; this one
//! holds what they share and the dispatch of actions, keys and commands.

mod actions;
mod agents;
mod audit;
mod detail;
pub mod dialog;
mod entra;
mod grants;
mod help;
mod inbox;
mod keys;
mod prompt;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use crossterm::event::KeyEvent;

use super::keymap::{Context, Keymap};
use crate::client::ClientError;
use crate::client::checkpoint::{AuditVerdict, CheckpointError};
use crate::client::login::LoginError;
use crate::domain::entra::{EntraApproval, EntraSource};
use crate::protocol::actions::{Action as ActionRequest, ActionDecisionBody};
use crate::protocol::agents::Agent;
use crate::protocol::audit::{AuditEvent, StateReport};
use crate::protocol::requests::{DecisionBody, Grant, Request, Suspension, TrustReport};
pub use actions::{ActionInbox, action_what, action_who};
pub use dialog::{Dialog, Focus, PRESETS};
pub use entra::{EntraDecided, EntraInbox, PollFailure};
pub use inbox::{Item, Risk, Sort};

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
    /// The kept checkpoint could not be read or written.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
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

/// Layers over the current screen; `Esc` closes the top one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Help,
    Detail { id: String, scroll: u16 },
    Dialog(Dialog),
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
    /// The server's last check of its tables against the chain.
    LoadRecord,
    /// Has the server check its tables against the chain now.
    CheckRecord,
    /// Every pending action request (AGT's approvals).
    LoadActions,
    /// One action request, read again.
    LoadAction(String),
    /// Approves or denies one action request, for one execution.
    DecideAction {
        id: String,
        body: ActionDecisionBody,
    },
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
    /// Lists one Entra source's approvals waiting on me.
    PollEntra(EntraSource),
    /// Approves or denies an Entra approval in Graph, then records it in the audit chain.
    DecideEntra {
        approval: Box<EntraApproval>,
        decision: crate::protocol::requests::Decision,
        justification: String,
    },
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
    /// One page of a load of every pending request (load number, page).
    RequestsPage(u64, Result<RequestsPage, EffectError>),
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
    Verified(Result<AuditVerdict, EffectError>),
    /// A check of the tables against the chain.
    Record(Result<StateReport, EffectError>),
    /// Every pending action request, or why not.
    ActionRequests(Result<Vec<ActionRequest>, EffectError>),
    /// One action request read again (by id).
    ActionRequest {
        id: String,
        result: Result<ActionRequest, EffectError>,
    },
    /// The server's answer to a decision on an action request (by id).
    ActionDecided {
        id: String,
        result: Result<ActionRequest, EffectError>,
    },
    TokenExpiry(DateTime<Utc>),
    /// One Entra source's poll: its rows, or why not; `jitter` in `[0, 1)` spreads the next.
    EntraPolled {
        source: EntraSource,
        result: Result<Vec<EntraApproval>, PollFailure>,
        jitter: f64,
    },
    /// Graph's answer to an Entra decision (by row key), or why it was not made.
    EntraDecided {
        key: String,
        decision: crate::protocol::requests::Decision,
        result: Result<EntraDecided, String>,
    },
}

/// One page of the pending requests, as a background load brings them in.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestsPage {
    pub requests: Vec<Request>,
    /// The first page of its load: it replaces the list.
    pub first: bool,
    /// The last page of its load.
    pub done: bool,
    /// How many pending requests there are in all (the first page says).
    pub total: Option<u64>,
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
    /// Microsoft Entra's approvals waiting on me, when `[entra]` is set.
    pub entra: Option<EntraInbox>,
    /// Action requests (AGT's approvals) waiting on me.
    pub actions: ActionInbox,
    /// The rows shown (requests, action requests and Entra rows) after filter and sort.
    pub inbox: Vec<Item>,
    pub inbox_selected: usize,
    pub filter: String,
    /// The filter of the agents, grants and audit screens (by name, DID, action…).
    pub list_filter: String,
    pub sort: Sort,
    pub marks: BTreeSet<String>,
    pub requests_load: Load,
    /// The load of pending requests the list comes from, and whether pages are still coming.
    pub pending_load: u64,
    pub pending_paging: bool,
    /// How many pending requests the server counted when the load began.
    pub pending_total: Option<u64>,

    pub agents: Vec<Agent>,
    pub agents_selected: usize,
    pub agents_load: Load,
    pub grants: Vec<Grant>,
    pub grants_selected: usize,
    pub grants_load: Load,
    pub audit: Vec<AuditEvent>,
    pub audit_selected: usize,
    pub audit_load: Load,
    pub verify: Option<Result<AuditVerdict, EffectError>>,
    /// The last check of the server's tables against the chain; a difference shows a banner.
    pub record: Option<StateReport>,
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

const PAGE: usize = 10;

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
            entra: None,
            actions: ActionInbox::default(),
            inbox: Vec::new(),
            inbox_selected: 0,
            filter: String::new(),
            list_filter: String::new(),
            sort: Sort::TimeLeft,
            marks: BTreeSet::new(),
            requests_load: Load::Loading,
            pending_load: 0,
            pending_paging: false,
            pending_total: None,
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
            record: None,
            trust: HashMap::new(),
        }
    }

    /// What to load when the console starts.
    pub fn start(&self) -> Vec<Effect> {
        vec![
            Effect::LoadRequests,
            Effect::LoadActions,
            Effect::LoadAgents,
            Effect::LoadGrants,
            Effect::LoadAudit,
            Effect::LoadRecord,
        ]
    }

    /// The keymap context right now.
    pub fn context(&self) -> Context {
        match self.modals.last() {
            Some(Modal::Detail { .. }) => Context::Detail,
            Some(Modal::Dialog(_)) => Context::Dialog,
            _ => self.screen.context(),
        }
    }

    /// Whether every whitespace-separated term of the list filter is in one of `fields`.
    fn list_match(&self, fields: &[&str]) -> bool {
        let needle = self.list_filter.to_lowercase();
        needle
            .split_whitespace()
            .all(|t| fields.iter().any(|f| f.to_lowercase().contains(t)))
    }

    fn flash(&mut self, text: impl Into<String>, error: bool, now: DateTime<Utc>) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            until: now + Duration::seconds(6),
        });
    }

    pub fn update(&mut self, action: Action, now: DateTime<Utc>) -> Vec<Effect> {
        match action {
            Action::Key(key) => self.on_key(key, now),
            Action::Tick => {
                if self.flash.as_ref().is_some_and(|f| f.until <= now) {
                    self.flash = None;
                }
                self.drop_expired(now);
                self.entra_polls(now)
            }
            Action::Requests(result) => {
                match result {
                    Ok(list) => {
                        self.requests_load = Load::Ready;
                        self.set_requests(list);
                    }
                    Err(e) => self.requests_load = Load::Failed(e),
                }
                Vec::new()
            }
            Action::RequestsPage(load, result) => {
                self.on_requests_page(load, result, now);
                Vec::new()
            }
            Action::Request(Ok(r)) => {
                self.upsert_request(r);
                Vec::new()
            }
            Action::Request(Err(_)) => Vec::new(),
            Action::Agents(result) => {
                self.set_agents(result);
                Vec::new()
            }
            Action::Grants(result) => {
                self.set_grants(result);
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
                    return vec![
                        Effect::LoadRequests,
                        Effect::LoadActions,
                        Effect::LoadAgents,
                        Effect::LoadGrants,
                    ];
                }
                Vec::new()
            }
            Action::Decided(result) => self.on_decided(result, now),
            Action::Suspended(result) => self.on_suspended(result, now),
            Action::Reactivated(result) => self.on_reactivated(result, now),
            Action::GrantRevoked(result) => self.on_grant_revoked(result, now),
            Action::Verified(result) => {
                self.verify = Some(result);
                Vec::new()
            }
            Action::Record(Ok(report)) => {
                self.record = Some(report);
                Vec::new()
            }
            Action::Record(Err(e)) => {
                self.flash(
                    format!("checking the tables against the chain: {e}"),
                    true,
                    now,
                );
                Vec::new()
            }
            Action::ActionRequests(result) => {
                self.on_action_requests(result, now);
                Vec::new()
            }
            Action::ActionRequest { id, result } => {
                self.on_action_request(&id, result, now);
                Vec::new()
            }
            Action::ActionDecided { id, result } => self.on_action_decided(&id, result, now),
            Action::TokenExpiry(at) => {
                self.token_expires_at = Some(at);
                Vec::new()
            }
            Action::EntraPolled {
                source,
                result,
                jitter,
            } => {
                self.on_entra_polled(source, result, jitter, now);
                Vec::new()
            }
            Action::EntraDecided {
                key,
                decision,
                result,
            } => self.on_entra_decided(key, decision, result, now),
        }
    }
}
