//! The login host: device authorization, the token endpoint (device-code and refresh-token
//! grants), OpenID discovery and the JWKS, under `/{tenant}/…` as Entra's v2.0 endpoints.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde_json::json;

use crate::errors::{oauth_error, oauth_error_with};
use crate::faults::RequestIds;
use crate::state::{App, DeviceCode, DeviceStatus};
use crate::tokens::{Minting, mint, parse_scope};

const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn unknown_tenant(tenant: &str, ids: &RequestIds) -> Response {
    oauth_error_with(
        "invalid_request",
        Some(90002),
        &format!("Tenant '{tenant}' not found."),
        ids,
    )
}

fn missing(name: &str, ids: &RequestIds) -> Response {
    oauth_error(
        "invalid_request",
        &format!("The request body must contain the following parameter: '{name}'."),
        ids,
    )
}

/// A user code as Entra shows them: nine characters, letters and digits.
fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..9)
        .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>()) % ALPHABET.len()]))
        .collect()
}

pub async fn devicecode(
    State(app): State<App>,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    body: Bytes,
) -> Response {
    let params = form(&body);
    let now = app.now();
    let settings = app.settings().clone();
    let mut world = app.world();
    if !world.directory.is_tenant(&tenant) {
        return unknown_tenant(&tenant, &ids);
    }
    let Some(client_id) = params.get("client_id").filter(|c| !c.is_empty()) else {
        return missing("client_id", &ids);
    };
    if !client_id.eq_ignore_ascii_case(&world.directory.public_client_id) {
        return oauth_error(
            "unauthorized_client",
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
            &ids,
        );
    }
    let Some(scope) = params.get("scope").filter(|s| !s.trim().is_empty()) else {
        return missing("scope", &ids);
    };
    if let Err(e) = parse_scope(&world.directory, scope) {
        return oauth_error(e.error, &e.text, &ids);
    }
    let code = user_code();
    let device_code = format!("DAQABIQEAAAD{}", uuid::Uuid::new_v4().simple());
    let status = match &settings.auto_approve {
        Some(user_id) => DeviceStatus::Approved {
            user_id: user_id.clone(),
        },
        None => DeviceStatus::Pending,
    };
    world.device_codes.push(DeviceCode {
        device_code: device_code.clone(),
        user_code: code.clone(),
        client_id: client_id.clone(),
        scope: scope.clone(),
        expires_at: now + Duration::seconds(settings.device_code_seconds),
        interval_seconds: settings.poll_interval_seconds,
        last_poll: None,
        status,
    });
    let uri = format!("{}/devicelogin", settings.base_url);
    Json(json!({
        "user_code": code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": settings.device_code_seconds,
        "interval": settings.poll_interval_seconds,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {code} to authenticate."),
    }))
    .into_response()
}

pub async fn token(
    State(app): State<App>,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    body: Bytes,
) -> Response {
    let params = form(&body);
    {
        let world = app.world();
        if !world.directory.is_tenant(&tenant) {
            return unknown_tenant(&tenant, &ids);
        }
    }
    let Some(grant_type) = params.get("grant_type").filter(|g| !g.is_empty()) else {
        return missing("grant_type", &ids);
    };
    let Some(client_id) = params.get("client_id").filter(|c| !c.is_empty()) else {
        return missing("client_id", &ids);
    };
    match grant_type.as_str() {
        GRANT_DEVICE_CODE => device_code_grant(&app, &params, client_id, &ids),
        "refresh_token" => refresh_grant(&app, &params, client_id, &ids),
        other => oauth_error(
            "unsupported_grant_type",
            &format!(
                "The provided value for the input parameter 'grant_type' is not valid ({other})."
            ),
            &ids,
        ),
    }
}

fn device_code_grant(
    app: &App,
    params: &HashMap<String, String>,
    client_id: &str,
    ids: &RequestIds,
) -> Response {
    let Some(code) = params.get("device_code").filter(|c| !c.is_empty()) else {
        return missing("device_code", ids);
    };
    let now = app.now();
    let settings = app.settings().clone();
    let mut world = app.world();
    let Some(at) = world
        .device_codes
        .iter()
        .position(|d| d.device_code == *code && d.client_id.eq_ignore_ascii_case(client_id))
    else {
        return oauth_error(
            "bad_verification_code",
            "The provided value for the input parameter 'device_code' is not valid.",
            ids,
        );
    };
    if now >= world.device_codes[at].expires_at {
        world.device_codes.remove(at);
        return oauth_error("expired_token", "Verification code expired.", ids);
    }
    let entry = &mut world.device_codes[at];
    let too_soon = entry
        .last_poll
        .is_some_and(|last| now < last + Duration::seconds(entry.interval_seconds));
    entry.last_poll = Some(now);
    if settings.enforce_poll_interval && too_soon {
        entry.interval_seconds += 5;
        return oauth_error("slow_down", "Polling too frequently; slow down.", ids);
    }
    match entry.status.clone() {
        DeviceStatus::Pending => oauth_error(
            "authorization_pending",
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ids,
        ),
        DeviceStatus::Declined => {
            world.device_codes.remove(at);
            oauth_error(
                "authorization_declined",
                "The end user denied the authorization request.",
                ids,
            )
        }
        DeviceStatus::Approved { user_id } => {
            let entry = world.device_codes.remove(at);
            let grant = match parse_scope(&world.directory, &entry.scope) {
                Ok(g) => g,
                Err(e) => return oauth_error(e.error, &e.text, ids),
            };
            let issuer = app.issuer(&world.directory.tenant_id);
            let refresh = grant.oidc.iter().any(|o| o == "offline_access");
            let minting = Minting {
                issuer: &issuer,
                now,
                lifetime_seconds: settings.access_token_seconds,
            };
            respond(
                mint(&mut world, minting, &user_id, client_id, &grant, refresh),
                ids,
            )
        }
    }
}

fn refresh_grant(
    app: &App,
    params: &HashMap<String, String>,
    client_id: &str,
    ids: &RequestIds,
) -> Response {
    let Some(token) = params.get("refresh_token").filter(|c| !c.is_empty()) else {
        return missing("refresh_token", ids);
    };
    let now = app.now();
    let settings = app.settings().clone();
    let mut world = app.world();
    let Some(stored) = world
        .refresh_tokens
        .get(token)
        .filter(|g| !g.revoked && g.client_id.eq_ignore_ascii_case(client_id))
        .cloned()
    else {
        return oauth_error(
            "invalid_grant",
            "The refresh token has expired or been revoked (ExpiredOrRevokedGrant).",
            ids,
        );
    };
    if world.directory.user(&stored.user_id).is_none() {
        return oauth_error("invalid_grant", "The user account no longer exists.", ids);
    }
    let scope = params
        .get("scope")
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or(stored.scope);
    let grant = match parse_scope(&world.directory, &scope) {
        Ok(g) => g,
        Err(e) => return oauth_error(e.error, &e.text, ids),
    };
    let issuer = app.issuer(&world.directory.tenant_id);
    let minting = Minting {
        issuer: &issuer,
        now,
        lifetime_seconds: settings.access_token_seconds,
    };
    respond(
        mint(
            &mut world,
            minting,
            &stored.user_id,
            client_id,
            &grant,
            true,
        ),
        ids,
    )
}

fn respond(minted: Result<serde_json::Value, crate::EmulatorError>, ids: &RequestIds) -> Response {
    match minted {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "minting failed");
            let mut r = oauth_error_with(
                "server_error",
                None,
                "The emulator failed to mint a token.",
                ids,
            );
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

pub async fn openid_configuration(
    State(app): State<App>,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
) -> Response {
    let tenant_id = {
        let world = app.world();
        if !world.directory.is_tenant(&tenant) {
            return unknown_tenant(&tenant, &ids);
        }
        world.directory.tenant_id.clone()
    };
    let base = &app.settings().base_url;
    Json(json!({
        "issuer": app.issuer(&tenant_id),
        "authorization_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/{tenant_id}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "preferred_username", "ver"],
        "tenant_region_scope": "EU",
        "request_uri_parameter_supported": false,
    }))
    .into_response()
}

pub async fn keys(
    State(app): State<App>,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
) -> Response {
    let world = app.world();
    if !world.directory.is_tenant(&tenant) {
        return unknown_tenant(&tenant, &ids);
    }
    let issuer = app.issuer(&world.directory.tenant_id);
    Json(world.keys.jwks(&issuer)).into_response()
}
