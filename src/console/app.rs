//! The app loop: terminal in, actions through `State::update`, effects out to tasks, a frame
//! drawn after each batch. The UI never waits on the network: every request runs in a task and
//! comes back as an `Action`; the event stream reconnects on its own with `Last-Event-ID`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{FixedOffset, Local, Utc};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc};

use super::alert::alert;
pub use super::alert::{Alerts, passthrough};
use super::state::{
    Action, Connection, Effect, EffectError, EntraDecided, PollFailure, RequestsPage, State,
};
use super::theme::Theme;
use super::view::{self, Frame2};
use crate::client::ApiClient;
use crate::client::checkpoint::{self, CheckpointStore};
use crate::client::entra::{EntraTokens, Resource};
use crate::client::graph::{self, ApprovalSource, Decision, EntraApprovals, entra_sources};
use crate::client::login::{self, LoginError};
use crate::client::session::{Session, SessionStore};
use crate::clock::SharedClock;
use crate::domain::entra::{EntraApproval, EntraSource};
use crate::protocol::actions::ActionQuery;
use crate::protocol::query::RequestQuery;

/// Keeps the access token fresh: the server's own session, refreshed (and, when it came from
/// the session store, saved) shortly before it expires; or the Entra sign-in's token for the
/// governance server's API scope.
#[derive(Debug, Clone)]
pub struct Keeper {
    api: ApiClient,
    credentials: Credentials,
    store: Option<SessionStore>,
    clock: SharedClock,
}

#[derive(Debug, Clone)]
enum Credentials {
    Session(Arc<Mutex<Session>>),
    Entra(EntraTokens),
}

impl Keeper {
    pub fn new(
        api: ApiClient,
        session: Session,
        store: Option<SessionStore>,
        clock: SharedClock,
    ) -> Self {
        Self {
            api,
            credentials: Credentials::Session(Arc::new(Mutex::new(session))),
            store,
            clock,
        }
    }

    /// Calls the governance server with the Entra sign-in's tokens (the server trusts Entra).
    pub fn entra(
        api: ApiClient,
        tokens: EntraTokens,
        store: Option<SessionStore>,
        clock: SharedClock,
    ) -> Self {
        Self {
            api,
            credentials: Credentials::Entra(tokens),
            store,
            clock,
        }
    }

    /// A client with a valid access token.
    pub async fn client(&self) -> Result<ApiClient, LoginError> {
        let session = match &self.credentials {
            Credentials::Session(session) => session,
            Credentials::Entra(tokens) => {
                let token = tokens.governance_token().await?;
                return Ok(self.api.with_token(token.secret));
            }
        };
        let mut session = session.lock().await;
        let left = session.expires_at - self.clock.now();
        if left <= chrono::Duration::seconds(login::REFRESH_MARGIN_SECONDS) {
            let renewed = login::refresh(&self.api, &session, &self.clock).await?;
            if let Some(store) = &self.store {
                store.save(&renewed)?;
            }
            *session = renewed;
        }
        Ok(self.api.with_token(session.access_token.clone()))
    }

    pub async fn expires_at(&self) -> chrono::DateTime<Utc> {
        match &self.credentials {
            Credentials::Session(session) => session.lock().await.expires_at,
            Credentials::Entra(tokens) => tokens
                .expires_at(Resource::Governance)
                .await
                .unwrap_or_else(|| self.clock.now()),
        }
    }
}

/// How many pending requests the inbox asks for per page.
const PENDING_PAGE: u32 = 500;

/// Numbers the loads of pending requests, so pages of an older load are told apart.
static PENDING_LOADS: AtomicU64 = AtomicU64::new(0);

/// Loads every pending request in the background, one page at a time: the first page shows at
/// once (with the server's count of them all) and the inbox stays usable while the rest come.
async fn load_pending(client: &ApiClient, tx: &mpsc::UnboundedSender<Action>) {
    let load = PENDING_LOADS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut query = RequestQuery::pending(PENDING_PAGE, None);
    let mut first = true;
    loop {
        let page = match client.request_page(&query).await {
            Ok(list) => list,
            Err(e) => {
                let _ = tx.send(Action::RequestsPage(load, Err(EffectError::from(e))));
                return;
            }
        };
        let next = page.next;
        let done = next.is_none();
        let sent = tx.send(Action::RequestsPage(
            load,
            Ok(RequestsPage {
                requests: page.requests,
                first,
                done,
                total: page.total,
            }),
        ));
        match next {
            Some(after) if sent.is_ok() => {
                query.after = Some(after);
                first = false;
            }
            _ => return,
        }
    }
}

/// Microsoft Entra as the console reaches it: the three PIM sources over one Graph client, and
/// the tenant its decisions are recorded under.
#[derive(Debug, Clone)]
pub struct EntraLink {
    pub approvals: Arc<EntraApprovals>,
    pub sources: Vec<Arc<dyn ApprovalSource>>,
    pub tenant_id: Option<String>,
}

impl EntraLink {
    pub fn new(approvals: EntraApprovals, tenant_id: Option<String>) -> Self {
        let approvals = Arc::new(approvals);
        let sources = entra_sources(approvals.clone())
            .into_iter()
            .map(|s| Arc::new(s) as Arc<dyn ApprovalSource>)
            .collect();
        Self {
            approvals,
            sources,
            tenant_id,
        }
    }
}

/// Polls one Entra source. Graph's wait (`Retry-After`) and request-id come back with a
/// failure, for the status bar and the next poll's time.
async fn poll_entra(link: &EntraLink, source: EntraSource) -> Action {
    let result = match link.sources.iter().find(|s| s.source() == source) {
        Some(s) => s.list().await.map_err(|e| {
            tracing::warn!(source = source.as_str(), error = %e, "an Entra source failed");
            PollFailure {
                reason: graph::reason(&e),
                retry_after: e.retry_after(),
            }
        }),
        None => Err(PollFailure {
            reason: "this source is not set up".to_owned(),
            retry_after: None,
        }),
    };
    Action::EntraPolled {
        source,
        result,
        jitter: rand::random::<f64>(),
    }
}

/// Decides one Entra approval in Graph and, once Graph acknowledged it, records it in the
/// governance server's audit chain. The decision does not wait on the governance server: a
/// failure to record is reported beside a decision that stands.
async fn decide_entra(
    link: &EntraLink,
    keeper: &Keeper,
    approval: &EntraApproval,
    decision: Decision,
    justification: &str,
) -> Action {
    let key = approval.key();
    let outcome = match link
        .approvals
        .decide(approval, decision, justification)
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => {
            return Action::EntraDecided {
                key,
                decision,
                result: Err(e.to_string()),
            };
        }
    };
    let body = graph::audit_body(
        approval,
        decision,
        justification,
        &outcome,
        link.tenant_id.as_deref(),
    );
    let recorded = match body {
        None => None,
        Some(body) => Some(match keeper.client().await {
            Ok(api) => api
                .record_entra_decision(&body)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("session: {e}")),
        }),
    };
    Action::EntraDecided {
        key,
        decision,
        result: Ok(EntraDecided { outcome, recorded }),
    }
}

/// Runs one effect in a task; its answer comes back on `tx`.
fn run_effect(
    effect: Effect,
    keeper: &Keeper,
    entra: Option<&EntraLink>,
    tx: &mpsc::UnboundedSender<Action>,
) {
    let (keeper, tx) = (keeper.clone(), tx.clone());
    // Entra's effects talk to Graph with Entra's own token: they never wait on the governance
    // server's session, and an Entra outage never touches the local inbox.
    match effect {
        Effect::PollEntra(source) => {
            if let Some(link) = entra.cloned() {
                tokio::spawn(async move {
                    let _ = tx.send(poll_entra(&link, source).await);
                });
            }
            return;
        }
        Effect::DecideEntra {
            approval,
            decision,
            justification,
        } => {
            let Some(link) = entra.cloned() else {
                let _ = tx.send(Action::EntraDecided {
                    key: approval.key(),
                    decision,
                    result: Err(
                        "Microsoft Entra is not set up ([entra] in the console's config)".into(),
                    ),
                });
                return;
            };
            tokio::spawn(async move {
                let action =
                    decide_entra(&link, &keeper, &approval, decision, &justification).await;
                let _ = tx.send(action);
            });
            return;
        }
        _ => {}
    }
    tokio::spawn(async move {
        let client = match keeper.client().await {
            Ok(c) => c,
            Err(e) => {
                let error = EffectError::Session(e);
                // A decision under way must hear that it was not sent.
                let _ = tx.send(match effect {
                    Effect::DecideAction { id, .. } => Action::ActionDecided {
                        id,
                        result: Err(error),
                    },
                    _ => Action::Requests(Err(error)),
                });
                return;
            }
        };
        let _ = tx.send(Action::TokenExpiry(keeper.expires_at().await));
        let action = match effect {
            // Every pending request, page by page: a large fleet must not be cut off.
            Effect::LoadRequests => return load_pending(&client, &tx).await,
            Effect::LoadRequest(id) => {
                Action::Request(client.get_request(&id).await.map_err(EffectError::from))
            }
            Effect::LoadAgents => {
                Action::Agents(client.agents(false).await.map_err(EffectError::from))
            }
            Effect::LoadGrants => Action::Grants(
                client
                    .grants(&crate::protocol::query::GrantQuery::default())
                    .await
                    .map_err(EffectError::from),
            ),
            Effect::LoadAudit => {
                Action::Audit(client.audit_tail(500).await.map_err(EffectError::from))
            }
            Effect::LoadRecord => {
                Action::Record(client.audit_state().await.map_err(EffectError::from))
            }
            Effect::CheckRecord => {
                Action::Record(client.check_audit_state().await.map_err(EffectError::from))
            }
            Effect::LoadTrust(did) => match client.trust(&did).await {
                Ok(t) => Action::Trust(did, t),
                Err(_) => return,
            },
            Effect::Decide { id, body } => {
                Action::Decided(client.decide(&id, &body).await.map_err(EffectError::from))
            }
            // Every pending action request, soonest to expire first, following `next`.
            Effect::LoadActions => Action::ActionRequests(
                client
                    .all_actions(ActionQuery::pending(PENDING_PAGE, None))
                    .await
                    .map_err(EffectError::from),
            ),
            Effect::LoadAction(id) => {
                let result = client.get_action(&id).await.map_err(EffectError::from);
                Action::ActionRequest { id, result }
            }
            Effect::DecideAction { id, body } => {
                let result = client
                    .decide_action(&id, &body)
                    .await
                    .map_err(EffectError::from);
                Action::ActionDecided { id, result }
            }
            Effect::Suspend {
                did,
                reason,
                security,
            } => Action::Suspended(
                client
                    .suspend(&did, &reason, security)
                    .await
                    .map_err(EffectError::from),
            ),
            Effect::SuspendAll { reason, expected } => Action::Suspended(
                client
                    .suspend_all(&crate::protocol::requests::SuspendAllBody {
                        reason,
                        security: false,
                        sponsor_id: None,
                        expected_count: u32::try_from(expected).ok(),
                    })
                    .await
                    .map_err(EffectError::from),
            ),
            Effect::Reactivate { did, reason } => Action::Reactivated(
                client
                    .reactivate(&did, &reason)
                    .await
                    .map_err(EffectError::from),
            ),
            Effect::RevokeGrant { id, reason } => Action::GrantRevoked(
                client
                    .revoke_grant(&id, &reason)
                    .await
                    .map_err(EffectError::from),
            ),
            Effect::Verify => {
                let kept = keeper.store.as_ref().map(CheckpointStore::beside);
                Action::Verified(
                    checkpoint::verify(&client, kept.as_ref(), None)
                        .await
                        .map_err(EffectError::from),
                )
            }
            Effect::Notify { .. }
            | Effect::Quit
            | Effect::PollEntra(_)
            | Effect::DecideEntra { .. } => return,
        };
        let _ = tx.send(action);
    });
}

/// Follows `/v1/events` for ever, resuming after the last seq seen.
fn follow_events(keeper: Keeper, tx: mpsc::UnboundedSender<Action>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<i64> = None;
        let mut attempt: u32 = 0;
        loop {
            let opened = match keeper.client().await {
                Ok(client) => client.events(last).await.map_err(EffectError::from),
                Err(e) => Err(EffectError::Session(e)),
            };
            let error = match opened {
                Ok(mut stream) => {
                    attempt = 0;
                    if tx.send(Action::Connection(Connection::Live)).is_err() {
                        return;
                    }
                    loop {
                        match stream.next().await {
                            Some(Ok(event)) => {
                                last = Some(event.event.seq);
                                if tx.send(Action::Event(Box::new(event))).is_err() {
                                    return;
                                }
                            }
                            Some(Err(e)) => break EffectError::Client(e),
                            None => break EffectError::StreamClosed,
                        }
                    }
                }
                Err(e) => e,
            };
            attempt += 1;
            if tx
                .send(Action::Connection(Connection::Reconnecting {
                    attempt,
                    error,
                }))
                .is_err()
            {
                return;
            }
            let backoff = Duration::from_millis((250u64 << attempt.min(7)).min(15_000));
            tokio::time::sleep(backoff).await;
        }
    })
}

/// Runs the console until the user quits.
pub async fn run(
    mut state: State,
    keeper: Keeper,
    entra: Option<EntraLink>,
    theme: Theme,
    alerts: Alerts,
) -> std::io::Result<()> {
    let offset: FixedOffset = *Local::now().offset();
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    let mut terminal = ratatui::init();
    let events = follow_events(keeper.clone(), tx.clone());
    let ticker = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if tx.send(Action::Tick).is_err() {
                    return;
                }
            }
        })
    };
    for effect in state.start() {
        run_effect(effect, &keeper, entra.as_ref(), &tx);
    }
    let mut input = EventStream::new();
    let result = loop {
        let now = Utc::now();
        let drawn = terminal.draw(|f| {
            view::render(
                f,
                &state,
                Frame2 {
                    now,
                    offset,
                    theme: &theme,
                },
            );
        });
        if let Err(e) = drawn {
            break Err(e);
        }
        let action = tokio::select! {
            key = input.next() => match key {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => Some(Action::Key(k)),
                Some(Ok(_)) => None,
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            action = rx.recv() => action,
        };
        let mut batch: Vec<Action> = action.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() > 256 {
                break;
            }
        }
        for action in batch {
            for effect in state.update(action, Utc::now()) {
                match effect {
                    Effect::Quit => {}
                    Effect::Notify { title, body } => alert(alerts, &title, &body),
                    other => run_effect(other, &keeper, entra.as_ref(), &tx),
                }
            }
        }
        if state.quit {
            break Ok(());
        }
    };
    events.abort();
    ticker.abort();
    ratatui::restore();
    result
}
