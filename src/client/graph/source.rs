//! Approval sources as the console polls them: each source listed on its own, on its own
//! schedule ([`SourceState`]), so a failing one never holds up or empties the others, and
//! decided through the same handle. A poll
//! updates the state (synced, or retrying with Graph's reason and request-id) and hands back
//! the rows, or the error with the rows of the last good poll left to the caller.

use std::sync::Arc;

use async_trait::async_trait;

use super::GraphError;
use super::approvals::EntraApprovals;
use super::decide::{DecideError, Decision, DecisionOutcome};
use crate::clock::SharedClock;
use crate::domain::entra::{EntraApproval, EntraSource, SourceState};

/// A place approvals wait, listed on its own.
#[async_trait]
pub trait ApprovalSource: Send + Sync + std::fmt::Debug {
    fn source(&self) -> EntraSource;

    /// Everything in this source that waits on the signed-in person.
    async fn list(&self) -> Result<Vec<EntraApproval>, GraphError>;

    /// Approves or denies one of its rows with a justification; done only when the source
    /// acknowledged it.
    async fn decide(
        &self,
        approval: &EntraApproval,
        decision: Decision,
        justification: &str,
    ) -> Result<DecisionOutcome, DecideError>;
}

/// One of the three Entra sources, sharing Graph and the name cache with the others.
#[derive(Debug, Clone)]
pub struct EntraApprovalSource {
    approvals: Arc<EntraApprovals>,
    source: EntraSource,
}

impl EntraApprovalSource {
    pub fn new(approvals: Arc<EntraApprovals>, source: EntraSource) -> Self {
        Self { approvals, source }
    }

    pub fn approvals(&self) -> &EntraApprovals {
        &self.approvals
    }
}

#[async_trait]
impl ApprovalSource for EntraApprovalSource {
    fn source(&self) -> EntraSource {
        self.source
    }

    async fn list(&self) -> Result<Vec<EntraApproval>, GraphError> {
        self.approvals.list(self.source).await
    }

    async fn decide(
        &self,
        approval: &EntraApproval,
        decision: Decision,
        justification: &str,
    ) -> Result<DecisionOutcome, DecideError> {
        self.approvals
            .decide(approval, decision, justification)
            .await
    }
}

/// The three Entra sources (roles, groups, access packages) over one set of approvals.
pub fn entra_sources(approvals: Arc<EntraApprovals>) -> Vec<EntraApprovalSource> {
    EntraSource::ALL
        .into_iter()
        .map(|s| EntraApprovalSource::new(approvals.clone(), s))
        .collect()
}

/// A status line's reason for `e`: its short cause and Graph's request-id.
pub fn reason(e: &GraphError) -> String {
    match e.request_id() {
        Some(id) => format!("{} (request-id {id})", e.short()),
        None => e.short(),
    }
}

/// Polls `source` once and records the outcome in `state` (next poll jittered, or backed off
/// as Graph asked). The console runs this in a task per source when `state.due(now)`.
pub async fn poll(
    source: &dyn ApprovalSource,
    state: &mut SourceState,
    clock: &SharedClock,
) -> Result<Vec<EntraApproval>, GraphError> {
    let listed = source.list().await;
    let now = clock.now();
    match &listed {
        Ok(rows) => state.synced(now, rows.len(), rand::random::<f64>()),
        Err(e) => {
            tracing::warn!(source = source.source().as_str(), error = %e, "an Entra source failed");
            state.failed(now, reason(e), e.retry_after(), rand::random::<f64>());
        }
    }
    listed
}
