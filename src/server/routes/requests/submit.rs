//! `POST /v1/requests/elevation` and `/delegation`: an agent asks. Both share one prologue (the
//! calling agent, its capabilities, what policy demands, the text and duration checks) and one
//! way to store what was asked; each adds its own rules between.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Duration;

use super::require_agent;
use crate::domain::capability::{self, Capability};
use crate::domain::delegation::{self, HeldGrant, Parent};
use crate::domain::policy::Requirement;
use crate::domain::{Invalid, Refusal, did, limits, text, trust};
use crate::protocol::agents::{Agent, AgentStatus};
use crate::protocol::error::ErrorBody;
use crate::protocol::requests::{DelegationBody, ElevationBody, Request, RequestKind};
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, Principal};
use crate::server::idempotency;
use crate::server::routes::agents::parse_public_key;
use crate::server::state::AppState;
use crate::server::store::{ChildSpec, NewChild, NewRequest, StoreError, Submitted};

/// What every request carries besides its kind's own fields.
struct Asked {
    capabilities: Vec<String>,
    duration_seconds: i64,
    justification: String,
    ticket: Option<String>,
    context: Option<String>,
}

/// The fields every request body has.
trait Asks {
    fn asked(&self) -> Asked;
}

macro_rules! asks {
    ($($body:ty),+) => {$(
        impl Asks for $body {
            fn asked(&self) -> Asked {
                Asked {
                    capabilities: self.capabilities.clone(),
                    duration_seconds: self.duration_seconds,
                    justification: self.justification.clone(),
                    ticket: self.ticket.clone(),
                    context: self.context.clone(),
                }
            }
        }
    )+};
}

asks!(ElevationBody, DelegationBody);

/// The checked prologue of a request: who asks, for what, and what policy demands of it.
struct Prologue {
    agent: Agent,
    caps: Vec<Capability>,
    requirement: Requirement,
}

impl Prologue {
    /// Loads the calling agent (active) and checks what it asks against policy and the text
    /// limits. Trust is checked by the caller, after its own rules.
    async fn check(state: &AppState, caller: &Principal, asked: &Asked) -> Result<Self, ApiError> {
        require_agent(caller)?;
        let agent = state
            .store
            .agent(caller.sub(), state.clock.now())
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if agent.status != AgentStatus::Active {
            return Err(ApiError::forbidden(format!(
                "the agent is {}",
                agent.status.as_str()
            )));
        }
        let caps = capability::parse_set(&asked.capabilities)?;
        let requirement = state.policy.requirement(&caps)?;
        if asked.justification.trim().is_empty() {
            return Err(
                Invalid::new("justification_required", "say why the capability is needed").into(),
            );
        }
        text::free_text("justification", &asked.justification)?;
        if let Some(t) = &asked.ticket {
            text::short("ticket", t)?;
        }
        if let Some(c) = &asked.context {
            text::free_text("context", c)?;
        }
        let max = state.policy.requests.max_requested_seconds;
        if asked.duration_seconds < 60 || asked.duration_seconds > max {
            return Err(Invalid::new(
                "invalid_duration",
                format!("duration_seconds must be between 60 and {max}"),
            )
            .into());
        }
        Ok(Self {
            agent,
            caps,
            requirement,
        })
    }

    fn check_trust(&self, state: &AppState) -> Result<(), ApiError> {
        let min = state.policy.requests.min_trust;
        let score = self.agent.trust_score;
        if score < min {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "trust_too_low",
                format!(
                    "the agent's trust score is {score} ({}); policy needs at least {min} to request",
                    trust::Tier::of(score)
                ),
            ));
        }
        Ok(())
    }

    /// The request to store, pending until its time to live ends.
    fn into_request(
        self,
        state: &AppState,
        kind: RequestKind,
        child: Option<ChildSpec>,
        asked: Asked,
        on_behalf_of: Option<String>,
    ) -> NewRequest {
        let rules = &state.policy.requests;
        NewRequest {
            id: format!("req_{}", uuid::Uuid::new_v4().simple()),
            kind,
            agent_did: self.agent.did,
            child,
            capabilities: self.caps.into_iter().map(String::from).collect(),
            duration_seconds: asked.duration_seconds,
            justification: asked.justification,
            ticket: asked.ticket,
            context: asked.context,
            on_behalf_of,
            requirement: self.requirement,
            trust_score: self.agent.trust_score,
            expires_at: state.clock.now() + Duration::seconds(rules.pending_ttl_seconds),
            fatigue_limit: rules.fatigue_limit,
            fatigue_window_seconds: rules.fatigue_window_seconds,
            fatigue_penalty: state.policy.trust.approval_fatigue,
        }
    }
}

/// Stores the request (or replays the first answer to a repeated `Idempotency-Key`).
async fn submit(
    state: &AppState,
    caller: &Principal,
    headers: &HeaderMap,
    body: &impl serde::Serialize,
    new: NewRequest,
) -> Result<Response, ApiError> {
    let claim = idempotency::claim(caller, headers, body)?;
    let submitted = state
        .store
        .submit_request(new, claim, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate => ApiError::from(Refusal::conflict(
                "agent_exists",
                "an agent with this public key is already registered; pass child_did",
            )),
            other => other.into(),
        })?;
    Ok(match submitted {
        Submitted::Created(request) => (StatusCode::CREATED, Json(*request)).into_response(),
        Submitted::Replayed(stored) => idempotency::replayed(stored),
    })
}

/// `POST /v1/requests/elevation`.
#[utoipa::path(post, path = "/v1/requests/elevation", tag = "requests", request_body = ElevationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key and body: same request")),
    responses((status = 201, body = Request), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn elevation(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ElevationBody>,
) -> Result<Response, ApiError> {
    let asked = body.asked();
    let prologue = Prologue::check(&state, &caller, &asked).await?;
    if let Some(who) = &body.on_behalf_of {
        text::name("on_behalf_of", who)?;
    }
    let standing = capability::parse_set(&prologue.agent.capabilities)?;
    if capability::is_subset(&prologue.caps, &standing) {
        return Err(Invalid::new(
            "already_held",
            "the agent already holds these capabilities as standing ones",
        )
        .into());
    }
    prologue.check_trust(&state)?;
    let new = prologue.into_request(
        &state,
        RequestKind::Elevation,
        None,
        asked,
        body.on_behalf_of.clone(),
    );
    submit(&state, &caller, &headers, &body, new).await
}

/// `POST /v1/requests/delegation`: the caller is the parent.
#[utoipa::path(post, path = "/v1/requests/delegation", tag = "requests", request_body = DelegationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key and body: same request")),
    responses((status = 201, body = Request), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 400, description = "the body is not valid JSON, or the query is malformed", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn delegation(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DelegationBody>,
) -> Result<Response, ApiError> {
    let asked = body.asked();
    let prologue = Prologue::check(&state, &caller, &asked).await?;
    prologue.check_trust(&state)?;
    let parent = &prologue.agent;
    let (child, child_trust) = match (&body.child_did, &body.new_child) {
        (Some(raw), None) => {
            let child = existing_child(&state, parent, raw).await?;
            let trust = child.trust_score;
            (ChildSpec::Existing(child.did), trust)
        }
        (None, Some(new)) => {
            let key = parse_public_key(&new.public_key)?;
            text::name("new_child.name", &new.name)?;
            if let Some(m) = &new.model {
                text::short("new_child.model", m)?;
            }
            if let Some(r) = &new.runtime {
                text::short("new_child.runtime", r)?;
            }
            // A new child starts no higher than its parent (trust ceiling).
            let trust_score = trust::DEFAULT_SCORE.min(parent.trust_score);
            let child = NewChild {
                did: did::from_public_key(&key),
                name: new.name.clone(),
                public_key: new.public_key.clone(),
                model: new.model.clone(),
                runtime: new.runtime.clone(),
                trust_score,
                max_agents_per_sponsor: state.settings.limits.max_agents_per_sponsor,
            };
            (ChildSpec::New(child), trust_score)
        }
        _ => {
            return Err(Invalid::new(
                "invalid_child",
                "name exactly one of child_did (an existing agent) and new_child (a new one)",
            )
            .into());
        }
    };
    delegation::check(
        &parent_view(&state, parent).await?,
        child_trust,
        &prologue.caps,
        body.duration_seconds,
        state.policy.requests.max_delegation_depth,
        state.clock.now(),
    )?;
    let new = prologue.into_request(&state, RequestKind::Delegation, Some(child), asked, None);
    submit(&state, &caller, &headers, &body, new).await
}

/// An existing agent named as the child: visible to the parent's sponsors, active, and a
/// child the tree allows (`domain::limits`).
async fn existing_child(state: &AppState, parent: &Agent, raw: &str) -> Result<Agent, ApiError> {
    let child_did = did::parse(raw)?;
    let child = state
        .store
        .agent(&child_did, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("child agent"))?;
    let shares_sponsor = child
        .sponsors
        .iter()
        .any(|s| parent.sponsors.iter().any(|p| p.id == s.id));
    if !shares_sponsor {
        return Err(ApiError::not_found("child agent"));
    }
    if child.status != AgentStatus::Active {
        return Err(ApiError::conflict(
            "child_inactive",
            format!("the child agent is {}", child.status.as_str()),
        ));
    }
    limits::existing_child(
        &child.did,
        child.parent_did.as_deref(),
        &parent.did,
        &ancestors(state, parent).await?,
    )?;
    Ok(child)
}

/// What `agent` holds now, for the delegation rules.
async fn parent_view(state: &AppState, agent: &Agent) -> Result<Parent, ApiError> {
    let now = state.clock.now();
    let grants = state.store.active_grants(&agent.did, now).await?;
    Ok(Parent {
        depth: agent.delegation_depth,
        trust: agent.trust_score,
        standing: capability::parse_set(&agent.capabilities)?,
        grants: grants
            .into_iter()
            .map(|g| {
                Ok(HeldGrant {
                    capabilities: capability::parse_set(&g.capabilities)?,
                    grant_id: g.id,
                    not_after: g.not_after,
                })
            })
            .collect::<Result<_, Invalid>>()?,
    })
}

/// `agent`'s chain upwards: its parent, the parent's parent, and so on.
async fn ancestors(state: &AppState, agent: &Agent) -> Result<Vec<String>, ApiError> {
    let now = state.clock.now();
    let mut out = Vec::new();
    let mut next = agent.parent_did.clone();
    // Chains are at most the depth limit long; the bound only guards against a corrupt loop.
    while let Some(did) = next.filter(|_| out.len() < 64) {
        next = state
            .store
            .agent(&did, now)
            .await?
            .and_then(|a| a.parent_did);
        out.push(did);
    }
    Ok(out)
}
