//! Webhook calls held until their action request is decided (`routes::actions`). A held call
//! costs a task and a small entry here, never a thread or a database poll: one follower reads
//! the audit chain when the store says something changed (on PostgreSQL that includes other
//! instances' commits) and wakes only the calls whose action an event names.
//!
//! No decision can slip between a call's last read and its wait: a call reads the chain's head
//! before it registers and reads its action after, so a decision it did not see has a later
//! `seq`, and the follower reads from at most that head.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{AuditScope, Store, StoreResult};

const PAGE: u32 = 1000;
/// How often the follower looks even without a change notification.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Inner {
    /// Each held action's wake-up, and how many calls hold it.
    waiting: HashMap<String, (watch::Sender<u64>, usize)>,
    /// Events after this seq are still to be read; `None` while nothing is held.
    after: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct HeldCalls {
    inner: Arc<Mutex<Inner>>,
}

/// One held call's registration; dropping it (the call answered, or its client gone) takes it
/// out.
#[derive(Debug)]
pub struct Hold {
    calls: HeldCalls,
    id: String,
    woken: watch::Receiver<u64>,
}

impl Hold {
    /// Waits until an event about this action arrives.
    pub async fn changed(&mut self) {
        if self.woken.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Ok(mut inner) = self.calls.inner.lock() else {
            return;
        };
        if let Some((_, holders)) = inner.waiting.get_mut(&self.id) {
            *holders -= 1;
            if *holders == 0 {
                inner.waiting.remove(&self.id);
            }
        }
        if inner.waiting.is_empty() {
            inner.after = None;
        }
    }
}

impl HeldCalls {
    /// Registers a call for action `id`; `head` is the chain's head read before the call reads
    /// its action.
    pub fn hold(&self, id: &str, head: i64) -> Hold {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.after = Some(inner.after.map_or(head, |a| a.min(head)));
        let (sender, holders) = inner
            .waiting
            .entry(id.to_owned())
            .or_insert_with(|| (watch::channel(0).0, 0));
        *holders += 1;
        let woken = sender.subscribe();
        Hold {
            calls: self.clone(),
            id: id.to_owned(),
            woken,
        }
    }

    /// How many actions have a call held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.waiting.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the events committed since the last read and wakes the calls they name.
    async fn follow(&self, store: &dyn Store) -> StoreResult<()> {
        loop {
            let Some(after) = self.inner.lock().ok().and_then(|i| i.after) else {
                return Ok(());
            };
            let events = store.audit_page(&AuditScope::All, after, PAGE).await?;
            let Ok(mut inner) = self.inner.lock() else {
                return Ok(());
            };
            for event in &events {
                if !event.event.action.starts_with("action.") {
                    continue;
                }
                let id = event.event.details.get("approval_request_id");
                if let Some((sender, _)) = id
                    .and_then(|v| v.as_str())
                    .and_then(|id| inner.waiting.get(id))
                {
                    sender.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            if let (Some(last), Some(current)) = (events.last(), inner.after) {
                // A call registered meanwhile may have lowered the mark: keep the lower one.
                if current == after {
                    inner.after = Some(last.event.seq);
                }
            }
            if events.len() < PAGE as usize {
                return Ok(());
            }
        }
    }
}

/// Follows the chain for the held calls: woken by the store's change notification and every
/// quarter second.
pub fn spawn_follower(calls: HeldCalls, store: Arc<dyn Store>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = store.changes();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            if let Err(e) = calls.follow(store.as_ref()).await {
                tracing::warn!(error = %e, "held webhook calls: following the chain failed");
            }
        }
    })
}
