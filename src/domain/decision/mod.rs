//! Deciding a request (DESIGN §3, Decision): who may decide, self-approval, one decision per
//! approver, the window clamped to min(asked, policy), the approved subset, the two-approval
//! rule, and what the request becomes. The store loads the request with its decisions inside
//! its transaction, calls [`decide`], and writes the [`Verdict`].

use chrono::{DateTime, Utc};

use super::capability::{self, Capability};
use super::role::Role;
use super::{Invalid, Refusal};
use crate::protocol::agents::AgentStatus;
use crate::protocol::requests::{Decision, Request, RequestStatus};

/// The human deciding, with the facts about them the rules need.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub roles: &'a [Role],
    /// Whether they sponsor the requesting agent.
    pub sponsors_agent: bool,
}

/// What the decider chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub decision: Decision,
    /// Approvals: how long; `None` is the longest allowed.
    pub duration_seconds: Option<i64>,
    /// Approvals: a narrower subset of what was asked; `None` is all of it.
    pub capabilities: Option<Vec<String>>,
    pub justification: String,
}

/// The decider's decision as it is recorded beside the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub decision: Decision,
    pub duration_seconds: Option<i64>,
    pub capabilities: Option<Vec<String>>,
}

/// What the request becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One deny ends it.
    Denied,
    /// An approval recorded; policy needs `required` and there are `approvals` so far.
    Awaiting { approvals: usize, required: u8 },
    /// Approved: every approver agreed to each capability, for the shortest time any chose.
    Approved {
        capabilities: Vec<Capability>,
        duration_seconds: i64,
    },
}

/// The answer of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still pending but past its time to live: it expires now (a deny, fail closed) and the
    /// decision is refused with [`expired`].
    Expire,
    Decided {
        recorded: Recorded,
        outcome: Outcome,
    },
}

/// Whether `decider` may decide `request` at all: its sponsors may, and so may the roles its
/// policy names.
pub fn may_decide(decider: &Decider<'_>, request: &Request) -> Result<(), Refusal> {
    let by_role = request
        .policy
        .approver_roles
        .iter()
        .any(|role| decider.roles.contains(role));
    if decider.sponsors_agent || by_role {
        Ok(())
    } else {
        Err(Refusal::forbidden(
            "forbidden",
            "only the agent's sponsors or the roles policy names may decide this request",
        ))
    }
}

/// The refusal for deciding a request that is no longer pending.
pub fn not_pending(request: &Request) -> Refusal {
    let (code, message) = match request.status {
        RequestStatus::Approved | RequestStatus::Denied => (
            "already_decided",
            format!("this request was already {}", request.status.as_str()),
        ),
        RequestStatus::Expired => ("expired", "this request expired before a decision".into()),
        RequestStatus::Cancelled => (
            "cancelled",
            format!(
                "this request was cancelled ({})",
                request.reason.as_deref().unwrap_or("by the agent")
            ),
        ),
        RequestStatus::Pending => ("pending", "this request is still pending".into()),
    };
    Refusal::conflict(code, message)
}

/// The refusal after a late decision expired the request.
pub fn expired() -> Refusal {
    Refusal::conflict("expired", "this request expired before a decision")
}

/// Whether a pending request is past its time to live at `now`.
pub fn is_due(request: &Request, now: DateTime<Utc>) -> bool {
    request.status == RequestStatus::Pending && request.expires_at <= now
}

/// Decides `request` (with its decisions so far) as `decider` chose, at `now`, while the
/// requesting agent is in `agent_status`.
pub fn decide(
    request: &Request,
    agent_status: AgentStatus,
    decider: &Decider<'_>,
    choice: &Choice,
    now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    may_decide(decider, request)?;
    if choice.justification.trim().is_empty() {
        return Err(Invalid::new(
            "justification_required",
            "every decision needs a justification",
        )
        .into());
    }
    if is_due(request, now) {
        return Ok(Verdict::Expire);
    }
    if request.status != RequestStatus::Pending {
        return Err(not_pending(request));
    }
    // A suspension cancels pending requests in its own transaction; this refuses whatever a
    // race might still have left behind.
    if agent_status != AgentStatus::Active {
        return Err(Refusal::conflict(
            "agent_inactive",
            format!(
                "the agent is {}; its requests cannot be decided",
                agent_status.as_str()
            ),
        ));
    }
    if request
        .on_behalf_of
        .as_deref()
        .map(crate::domain::text::canonical_identity)
        .is_some_and(|who| {
            who == crate::domain::text::canonical_identity(decider.username)
                || who == crate::domain::text::canonical_identity(decider.id)
        })
    {
        return Err(Refusal::forbidden(
            "self_approval",
            "this request was made on your behalf; someone else must decide it",
        ));
    }
    if request
        .approvals
        .iter()
        .any(|a| a.approver_id == decider.id)
    {
        return Err(Refusal::conflict(
            "already_decided_by_you",
            "you already decided this request; it needs a different approver",
        ));
    }
    let recorded = match choice.decision {
        Decision::Deny => Recorded {
            decision: Decision::Deny,
            duration_seconds: None,
            capabilities: None,
        },
        Decision::Approve => {
            let (duration, caps) = approval_window(request, choice)?;
            Recorded {
                decision: Decision::Approve,
                duration_seconds: Some(duration),
                capabilities: Some(caps.into_iter().map(String::from).collect()),
            }
        }
    };
    let outcome = match recorded.decision {
        Decision::Deny => Outcome::Denied,
        Decision::Approve => combine(request, &recorded)?,
    };
    Ok(Verdict::Decided { recorded, outcome })
}

/// The window and subset of one approval, checked against the request and policy.
fn approval_window(request: &Request, choice: &Choice) -> Result<(i64, Vec<Capability>), Invalid> {
    let max = request.policy.grantable_seconds(request.duration_seconds);
    let duration = choice.duration_seconds.unwrap_or(max);
    if duration <= 0 || duration > max {
        return Err(Invalid::new(
            "duration_exceeds_limit",
            format!(
                "approve for 1 to {max} seconds (the smaller of what was asked, {}, and the policy maximum, {})",
                request.duration_seconds, request.policy.max_seconds
            ),
        ));
    }
    let requested = capability::parse_set(&request.capabilities)?;
    let chosen = match &choice.capabilities {
        None => requested.clone(),
        Some(list) => capability::parse_set(list)?,
    };
    if chosen.is_empty() || !capability::is_subset(&chosen, &requested) {
        return Err(Invalid::new(
            "capabilities_not_requested",
            "approve a non-empty subset of the requested capabilities",
        ));
    }
    Ok((duration, chosen))
}

/// Combines this approval with the earlier ones: awaiting more, or approved for what every
/// approver agreed to, for the shortest time any of them chose.
fn combine(request: &Request, this: &Recorded) -> Result<Outcome, Refusal> {
    let mut approvals: Vec<(Vec<String>, i64)> = request
        .approvals
        .iter()
        .filter(|a| a.decision == Decision::Approve)
        .map(|a| {
            (
                a.capabilities.clone().unwrap_or_default(),
                a.duration_seconds.unwrap_or(0),
            )
        })
        .collect();
    approvals.push((
        this.capabilities.clone().unwrap_or_default(),
        this.duration_seconds.unwrap_or(0),
    ));
    let required = request.policy.approvals_required;
    if approvals.len() < usize::from(required) {
        return Ok(Outcome::Awaiting {
            approvals: approvals.len(),
            required,
        });
    }
    let duration_seconds = approvals.iter().map(|a| a.1).min().unwrap_or(0);
    let sets = approvals
        .iter()
        .map(|a| capability::parse_set(&a.0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut capabilities = Vec::new();
    if let Some((first, rest)) = sets.split_first() {
        for c in first {
            if rest
                .iter()
                .all(|set| capability::is_subset(std::slice::from_ref(c), set))
            {
                capabilities.push(c.clone());
            }
        }
    }
    if capabilities.is_empty() {
        return Err(Invalid::new(
            "no_common_capabilities",
            "the approvers agreed on no capability in common",
        )
        .into());
    }
    Ok(Outcome::Approved {
        capabilities,
        duration_seconds,
    })
}

/// Whether `agent_did` may withdraw `request`: only the agent that asked, only while pending.
pub fn may_cancel(request: &Request, agent_did: &str) -> Result<(), Refusal> {
    if request.agent_did != agent_did {
        return Err(Refusal::not_found("request"));
    }
    if request.status != RequestStatus::Pending {
        return Err(not_pending(request));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
