//! The rules of an action request (an AGT approval, `domain::agt`): who may decide it, when a
//! decision is too late, a redelivery of the same request, and what the webhook answers.
//! An action approval is for one execution: no duration, no grant.

use chrono::{DateTime, Utc};

use super::Refusal;
use super::role::Role;
use crate::protocol::actions::{Action, ActionStatus, ApproverAssertion, WebhookAnswer};

/// How long an approver assertion is valid: long enough for the client to verify it on
/// arrival, and never past the request's own expiry.
pub const ASSERTION_SECONDS: i64 = 300;

/// The reason an undecided request is answered with at its expiry.
pub const EXPIRED_REASON: &str = "expired";

/// What the store knows about the human deciding, read inside the decision's transaction.
#[derive(Debug, Clone)]
pub struct ActionDecider<'a> {
    /// The human sponsors the agent the action names.
    pub sponsors_agent: bool,
    /// The human is the sponsor of the integration the action came through.
    pub owns_integration: bool,
    pub roles: &'a [Role],
    /// The roles policy lets decide any action (`[actions] approver_roles`).
    pub approver_roles: &'a [Role],
}

/// The agent's sponsors, the integration's sponsor and the roles policy names may decide.
pub fn may_decide(decider: &ActionDecider<'_>) -> Result<(), Refusal> {
    let by_role = decider
        .approver_roles
        .iter()
        .any(|r| decider.roles.contains(r));
    if decider.sponsors_agent || decider.owns_integration || by_role {
        Ok(())
    } else {
        Err(Refusal::forbidden(
            "forbidden",
            "only the agent's sponsors, the integration's sponsor or the roles policy names may \
             decide this action",
        ))
    }
}

/// Whether a decision at `now` comes too late: the request is no longer pending, or its time
/// is up (it is then expired, never approved).
pub fn check_pending(action: &Action, now: DateTime<Utc>) -> Result<(), Refusal> {
    match action.status {
        ActionStatus::Pending if action.expires_at <= now => Err(expired()),
        ActionStatus::Pending => Ok(()),
        ActionStatus::Expired => Err(expired()),
        ActionStatus::Approved | ActionStatus::Denied => Err(Refusal::conflict(
            "already_decided",
            format!("this action was already {}", action.status.as_str()),
        )),
    }
}

/// A known agent may have actions approved only while it is active (a suspended or revoked
/// one gets nothing, and one we do not have is refused too).
pub fn agent_may_ask(status: Option<&str>) -> Result<(), Refusal> {
    match status {
        Some("active") => Ok(()),
        Some(other) => Err(Refusal::conflict(
            "agent_inactive",
            format!("the agent is {other}: its actions cannot be approved"),
        )),
        None => Err(Refusal::not_found("agent")),
    }
}

/// The integration names a sponsor this server does not have (or who is disabled).
pub fn no_integration_sponsor(username: &str) -> Refusal {
    Refusal::conflict(
        "integration_sponsor_unknown",
        format!(
            "the integration's sponsor {} is not an active sponsor here; fix [agt.integrations]",
            super::text::sanitize_preview(username)
        ),
    )
}

pub fn expired() -> Refusal {
    Refusal::conflict("expired", "this action expired before a decision")
}

/// The same `approval_request_id` delivered again: the same body (the same `input_digest`,
/// which covers every presented field) is a redelivery; another body is refused.
pub fn same_request(stored: &Action, input_digest: &str) -> Result<(), Refusal> {
    if stored.input_digest == input_digest {
        Ok(())
    } else {
        Err(Refusal::conflict(
            "approval_request_id_reused",
            "this approval_request_id was delivered before with another body",
        ))
    }
}

/// The webhook's answer to a request that is no longer pending, without the assertion (the
/// server signs that); `None` while it is pending.
pub fn answer(action: &Action) -> Option<WebhookAnswer> {
    let (approved, reason, approver) = match action.status {
        ActionStatus::Pending => return None,
        ActionStatus::Approved | ActionStatus::Denied => (
            action.status == ActionStatus::Approved,
            action.justification.clone().unwrap_or_default(),
            // A denial nobody made: the kill switch reached the agent.
            action
                .approver_username
                .clone()
                .unwrap_or_else(|| "governance-server".into()),
        ),
        ActionStatus::Expired => (false, EXPIRED_REASON.to_owned(), "governance-server".into()),
    };
    Some(WebhookAnswer {
        approval_request_id: action.id.clone(),
        action_digest: action.action_digest.clone(),
        approved,
        decision: if approved { "allow" } else { "deny" }.into(),
        reason,
        approver,
        identity_assertion: None,
    })
}

/// The claims of the assertion that goes with an approval, issued at `now` with id `jti`:
/// `None` unless the action is approved.
pub fn assertion(
    action: &Action,
    issuer: &str,
    now: DateTime<Utc>,
    jti: String,
) -> Option<ApproverAssertion> {
    if action.status != ActionStatus::Approved {
        return None;
    }
    let iat = now.timestamp();
    Some(ApproverAssertion {
        iss: issuer.to_owned(),
        aud: action.agent_id.clone(),
        sub: action.approver_id.clone()?,
        preferred_username: action.approver_username.clone().unwrap_or_default(),
        iat,
        exp: (iat + ASSERTION_SECONDS).min(action.expires_at.timestamp()),
        jti,
        approval_request_id: action.id.clone(),
        action_digest: action.action_digest.clone(),
        input_digest: action.input_digest.clone(),
        decision: "allow".into(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 2, 50, 0).unwrap()
    }

    fn action(status: ActionStatus) -> Action {
        Action {
            id: "ar_76cfa7e0e597484daeaf6eda5a8249f7".into(),
            agent_id: "*".into(),
            agent_did: None,
            agent_name: None,
            integration: Some("ledger".into()),
            subject_id: None,
            operation: "tool.invoke".into(),
            target_resource: None,
            policy_decision_id: "pd_1".into(),
            policy_version: "1.0".into(),
            approval_chain_id: "c".into(),
            approval_chain_version: "1".into(),
            action_digest: "sha256:aa".into(),
            input_digest: "sha256:bb".into(),
            status,
            created_at: now(),
            expires_at: now() + Duration::minutes(5),
            decided_at: None,
            approver_id: Some("spn_alice".into()),
            approver_username: Some("alice".into()),
            justification: Some("checked the ledger".into()),
        }
    }

    #[test]
    fn only_sponsors_and_named_roles_decide() {
        let none = ActionDecider {
            sponsors_agent: false,
            owns_integration: false,
            roles: &[Role::Sponsor],
            approver_roles: &[Role::SecurityLead],
        };
        assert!(may_decide(&none).is_err());
        assert!(
            may_decide(&ActionDecider {
                owns_integration: true,
                ..none.clone()
            })
            .is_ok()
        );
        assert!(
            may_decide(&ActionDecider {
                sponsors_agent: true,
                ..none.clone()
            })
            .is_ok()
        );
        assert!(
            may_decide(&ActionDecider {
                roles: &[Role::SecurityLead],
                ..none
            })
            .is_ok()
        );
    }

    #[test]
    fn a_late_decision_is_refused_and_never_approves() {
        let pending = action(ActionStatus::Pending);
        assert!(check_pending(&pending, now()).is_ok());
        let at_expiry = check_pending(&pending, pending.expires_at).unwrap_err();
        assert_eq!(at_expiry.code(), "expired");
        let decided = check_pending(&action(ActionStatus::Denied), now()).unwrap_err();
        assert_eq!(decided.code(), "already_decided");
    }

    #[test]
    fn answers_follow_the_status() {
        assert!(answer(&action(ActionStatus::Pending)).is_none());
        let approved = answer(&action(ActionStatus::Approved)).unwrap();
        assert!(approved.approved);
        assert_eq!(approved.decision, "allow");
        assert_eq!(approved.approver, "alice");
        let denied = answer(&action(ActionStatus::Denied)).unwrap();
        assert!(!denied.approved);
        assert_eq!(denied.decision, "deny");
        assert_eq!(denied.reason, "checked the ledger");
        let expired = answer(&action(ActionStatus::Expired)).unwrap();
        assert!(!expired.approved);
        assert_eq!(expired.reason, "expired");
    }

    #[test]
    fn only_approvals_get_an_assertion_bound_to_the_request() {
        assert!(
            assertion(
                &action(ActionStatus::Denied),
                "https://i",
                now(),
                "j".into()
            )
            .is_none()
        );
        let a = action(ActionStatus::Approved);
        let claims = assertion(&a, "https://i", now(), "j".into()).unwrap();
        assert_eq!(claims.aud, "*");
        assert_eq!(claims.sub, "spn_alice");
        assert_eq!(claims.approval_request_id, a.id);
        assert_eq!(claims.action_digest, a.action_digest);
        assert_eq!(claims.input_digest, a.input_digest);
        assert_eq!(claims.exp - claims.iat, ASSERTION_SECONDS);
    }

    #[test]
    fn another_body_under_a_known_id_is_refused() {
        let a = action(ActionStatus::Pending);
        assert!(same_request(&a, "sha256:bb").is_ok());
        assert_eq!(
            same_request(&a, "sha256:cc").unwrap_err().code(),
            "approval_request_id_reused"
        );
    }
}
