//! The state agrees with the record: replays the audit chain and compares it with the tables
//! (`domain::record`), at start, on a schedule and on demand. A difference is an alert: logged,
//! written to the chain as `audit.state_mismatch` (once per distinct set of differences), and
//! served to the console, which shows a banner.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::leader::Leadership;
use super::state::AppState;
use super::store::{AuditScope, NewAuditEvent, Store, StoreError};
use crate::domain::record::Replay;
use crate::protocol::audit::{Actor, AuditAction, StateReport, action};

const PAGE: u32 = 1000;
/// How many differences the alert event names.
const EXAMPLES: usize = 10;

/// The last check's report, shared by the schedule and the routes.
#[derive(Debug, Clone, Default)]
pub struct RecordWatch {
    last: Arc<Mutex<Option<StateReport>>>,
}

impl RecordWatch {
    pub fn last(&self) -> Option<StateReport> {
        self.last.lock().ok().and_then(|g| g.clone())
    }

    /// Keeps `report`; true when its differences are not those of the report before.
    fn keep(&self, report: &StateReport) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        let changed = last
            .as_ref()
            .is_none_or(|l| l.differences != report.differences);
        *last = Some(report.clone());
        changed
    }
}

/// Replays the chain up to the head the tables were read at, and lists every difference.
pub async fn check(store: &dyn Store, now: DateTime<Utc>) -> Result<StateReport, StoreError> {
    let (head, tables) = store.state_snapshot().await?;
    let mut replay = Replay::default();
    let mut after = 0;
    'pages: while after < head {
        let events = store.audit_page(&AuditScope::All, after, PAGE).await?;
        let Some(last) = events.last() else { break };
        after = last.event.seq;
        for event in &events {
            if event.event.seq > head {
                break 'pages;
            }
            replay.apply(event);
        }
    }
    let (differences, note) = replay.compare(&tables);
    Ok(StateReport {
        ok: differences.is_empty(),
        checked_at: now,
        head_seq: head,
        count: differences.len() as u64,
        differences,
        note,
    })
}

/// One scheduled check: keeps the report, and raises the alert when the differences changed.
pub async fn watch(state: &AppState) -> Result<StateReport, StoreError> {
    let now = state.clock.now();
    let report = check(state.store.as_ref(), now).await?;
    if state.record.keep(&report) && !report.ok {
        tracing::error!(
            differences = report.count,
            head_seq = report.head_seq,
            first = %report.differences[0],
            "the tables disagree with the audit chain"
        );
        let alert = action::StateMismatch {
            differences: report.count,
            examples: report
                .differences
                .iter()
                .take(EXAMPLES)
                .map(ToString::to_string)
                .collect(),
            head_seq: report.head_seq,
        };
        state
            .store
            .append_audit(
                NewAuditEvent::new(
                    Actor::system(),
                    "audit-chain",
                    AuditAction::StateMismatch(alert),
                ),
                now,
            )
            .await?;
    } else if report.ok {
        tracing::debug!(
            head_seq = report.head_seq,
            "the tables agree with the audit chain"
        );
    }
    Ok(report)
}

/// Checks at start, then every `every` (`audit.state_check_every`), when this instance leads
/// (an instance that does not still checks on demand).
pub fn spawn(
    state: AppState,
    every: std::time::Duration,
    leadership: Leadership,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if !leadership.leads() {
                continue;
            }
            if let Err(e) = watch(&state).await {
                tracing::warn!(error = %e, "checking the tables against the audit chain failed");
            }
        }
    })
}
