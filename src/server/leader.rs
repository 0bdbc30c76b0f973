//! Which instance runs the periodic jobs (the expiry sweep, signed checkpoints, the scheduled
//! state check). The store decides (`HealthStore::lead`): SQLite's one server always leads; on
//! PostgreSQL one instance holds a session-level advisory lock, and when it dies its session
//! ends, the lock with it, and the next instance to ask takes over. Asked every second, so a
//! takeover happens within about a second of the session's end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::Store;

/// How often each instance asks whether it leads.
pub const LEAD_EVERY: Duration = Duration::from_secs(1);

/// Whether this instance leads now, as of the last time it asked.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    pub fn leads(&self) -> bool {
        *self.0.borrow()
    }
}

/// Asks once now (so jobs that run at start know), then every [`LEAD_EVERY`].
pub async fn start(store: Arc<dyn Store>) -> (Leadership, JoinHandle<()>) {
    let (tx, rx) = watch::channel(ask(store.as_ref()).await);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(LEAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let leads = ask(store.as_ref()).await;
            tx.send_if_modified(|was| std::mem::replace(was, leads) != leads);
        }
    });
    (Leadership(rx), task)
}

async fn ask(store: &dyn Store) -> bool {
    store.lead().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot tell whether this instance leads; not running jobs");
        false
    })
}
