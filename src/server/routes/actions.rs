//! `/v1/actions`: the action requests AGT-governed agents asked for through the webhook
//! (`routes::agt`), as sponsors list, read and decide them. Deciding answers the held webhook
//! call.

use axum::Json;
use axum::extract::{Path, State};

use crate::domain::{Invalid, text};
use crate::protocol::actions::{Action, ActionDecisionBody, ActionList, ActionQuery, ActionStatus};
use crate::protocol::error::ErrorBody;
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, ApiQuery, Principal};
use crate::server::state::AppState;
use crate::server::store::{ActionDecisionInput, ActionFilter};

const MAX_LIST: u32 = 10_000;
const DEFAULT_LIST: u32 = 500;

fn check_id(raw: &str) -> Result<(), ApiError> {
    let ok = raw.len() == 35
        && raw.starts_with("ar_")
        && raw[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_action_id",
            "action ids are AGT's approval_request_id: ar_ followed by 32 hex digits",
        )
        .into())
    }
}

/// Whether the caller may see (and so try to decide) this action: its agent's or its
/// integration's sponsor, a reader of everything, or a role policy lets decide actions.
async fn visible(state: &AppState, caller: &Principal, action: &Action) -> Result<bool, ApiError> {
    if caller.reads_all()
        || state
            .policy
            .actions
            .approver_roles
            .iter()
            .any(|r| caller.has_role(*r))
    {
        return Ok(true);
    }
    Ok(state.store.sponsors_action(caller.sub(), action).await?)
}

async fn load_visible(state: &AppState, caller: &Principal, raw: &str) -> Result<Action, ApiError> {
    caller.require_sponsor()?;
    check_id(raw)?;
    let action = state
        .store
        .action(raw)
        .await?
        .ok_or_else(|| ApiError::not_found("action"))?;
    if !visible(state, caller, &action).await? {
        return Err(ApiError::not_found("action"));
    }
    Ok(action)
}

/// `GET /v1/actions`: the actions of the caller's agents and integrations (or all, for
/// readers of everything); pending ones soonest to expire first, paged.
#[utoipa::path(get, path = "/v1/actions", tag = "actions", params(ActionQuery),
    responses((status = 200, body = ActionList), (status = 400, description = "the query is malformed", body = ErrorBody), (status = 403, description = "an agent's token, scope=all without the role, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<ActionQuery>,
) -> Result<Json<ActionList>, ApiError> {
    caller.require_sponsor()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIST}"),
        ));
    }
    let pending = query.status == Some(ActionStatus::Pending);
    let after = match query.after.as_deref() {
        None => None,
        Some(_) if !pending => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "after pages pending lists (status=pending)",
            ));
        }
        Some(raw) => Some(super::parse_cursor(raw, check_id)?),
    };
    let filter = ActionFilter {
        sponsor_id: caller.list_scope(query.scope, "action")?,
        status: query.status,
        limit,
        after,
    };
    let actions = state.store.list_actions(&filter).await?;
    let total = if pending && filter.after.is_none() {
        Some(state.store.count_actions(&filter).await?)
    } else {
        None
    };
    let next = (pending && actions.len() == limit as usize)
        .then(|| {
            actions
                .last()
                .map(|a| format!("{}.{}", a.expires_at.timestamp_millis(), a.id))
        })
        .flatten();
    Ok(Json(ActionList {
        actions,
        next,
        total,
    }))
}

/// `GET /v1/actions/{id}`.
#[utoipa::path(get, path = "/v1/actions/{id}", tag = "actions", params(("id" = String, Path)),
    responses((status = 200, body = Action), (status = 404, description = "no such action, or not visible to the caller", body = ErrorBody), (status = 422, description = "the id is malformed", body = ErrorBody), (status = 403, description = "an agent's token, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn read(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(load_visible(&state, &caller, &id).await?))
}

/// `POST /v1/actions/{id}/decision`: approve or deny one execution, with a justification.
#[utoipa::path(post, path = "/v1/actions/{id}/decision", tag = "actions", params(("id" = String, Path)),
    request_body = ActionDecisionBody,
    responses((status = 200, body = Action), (status = 403, description = "the caller may not decide this action", body = ErrorBody), (status = 404, description = "no such action, or not visible to the caller", body = ErrorBody),
              (status = 409, description = "already_decided, expired, or agent_inactive (a suspended agent's action cannot be approved)", body = ErrorBody), (status = 422, description = "the justification is missing or invalid, or the id is malformed", body = ErrorBody), (status = 400, description = "the body is not valid JSON", body = ErrorBody), (status = 415, description = "the body is not application/json", body = ErrorBody), (status = 503, description = "the store cannot take writes now; Retry-After says when to try again", body = ErrorBody), (status = 507, description = "the store is full; Retry-After says when to try again", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn decide(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ActionDecisionBody>,
) -> Result<Json<Action>, ApiError> {
    let action = load_visible(&state, &caller, &id).await?;
    if body.justification.trim().is_empty() {
        return Err(Invalid::new(
            "justification_required",
            "say why: the justification is the reason the agent is given",
        )
        .into());
    }
    text::free_text("justification", &body.justification)?;
    let input = ActionDecisionInput {
        approver_id: caller.sub().to_owned(),
        approver_roles: caller.roles.clone(),
        policy_roles: state.policy.actions.approver_roles.clone(),
        decision: body.decision,
        justification: body.justification,
    };
    Ok(Json(
        state
            .store
            .decide_action(&action.id, input, state.clock.now())
            .await?,
    ))
}
