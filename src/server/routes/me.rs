//! `GET /v1/me`: who the bearer is.

use axum::Json;
use axum::extract::State;
use chrono::DateTime;

use crate::protocol::agents::Me;
use crate::protocol::error::ErrorBody;
use crate::server::error::ApiError;
use crate::server::extract::Principal;
use crate::server::state::AppState;

#[utoipa::path(get, path = "/v1/me", tag = "identity", responses((status = 200, body = Me), (status = 403, description = "the caller may not do this, or the token's scope lacks governance (insufficient_scope)", body = ErrorBody), (status = 401, description = "missing or invalid token", body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn me(State(state): State<AppState>, caller: Principal) -> Result<Json<Me>, ApiError> {
    let claims = &caller.claims;
    let display_name = if caller.is_sponsor() {
        let sponsor = state
            .store
            .sponsor_by_id(caller.sub())
            .await?
            .filter(|s| s.active)
            .ok_or_else(ApiError::unauthorized)?;
        Some(sponsor.display_name)
    } else {
        None
    };
    Ok(Json(Me {
        sub: claims.sub.clone(),
        kind: claims.kind.as_str().to_owned(),
        username: claims.preferred_username.clone(),
        display_name,
        roles: claims.roles.clone(),
        scope: claims.scope.clone(),
        expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    }))
}
