//! The grants of the local tenant's authorization server: device authorization (RFC 8628),
//! refresh-token rotation with reuse detection, agent client credentials with
//! `private_key_jwt` (RFC 7523), introspection (RFC 7662) and revocation (RFC 7009).
//! Handlers in `routes::oauth` only parse forms and call these. Device and sponsor grants are
//! here; `code` has the authorization code grant, `agent` client credentials, `introspection`
//! introspection and revocation.

mod agent;
mod clients;
mod code;
mod introspection;

use agent::client_credentials_grant;
pub use agent::{AuthenticatedAgent, authenticate_agent, invalid_dpop_proof};
pub use clients::{CLIENT_ID_PREFIX, authenticate_resource_client};
pub use code::{issue_code, redirect_uris};
pub use introspection::{introspect, revoke};

use chrono::{DateTime, Duration, Utc};

use super::error::OAuthFailure;
use super::extract::OAuthForm;
use super::extract::has_scope;
use super::id_token::at_hash;
use super::state::AppState;
use super::store::{
    AccessTokenRecord, DevicePoll, DeviceRecord, DeviceStatus, NewAuditEvent, NewRefreshToken,
    RefreshOutcome, SponsorRecord, StoreError,
};
use super::tokens::{new_secret, secret_hash};
use crate::domain::user_code;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::oauth::{
    AccessClaims, DeviceAuthorization, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN, IdTokenClaims, SubjectKind, TokenResponse,
};

/// Scopes a human client may ask for in the device flow.
pub const SPONSOR_SCOPES: &[&str] = &["openid", "profile", "offline_access", "governance"];
/// The scope a sponsor token carries when the client asks for none.
pub const DEFAULT_SPONSOR_SCOPE: &str = "openid profile offline_access governance";

/// A registered human-facing client (from settings).
fn known_client<'a>(state: &'a AppState, client_id: &str) -> Option<&'a str> {
    state
        .settings
        .clients
        .iter()
        .find(|c| c.client_id == client_id)
        .map(|c| c.name.as_str())
}

/// RFC 6749 §5.2 for a public client naming a `client_id` nobody registered: `invalid_client`
/// with 400, since the client used no HTTP authentication scheme a 401 could challenge.
fn unknown_client() -> OAuthFailure {
    OAuthFailure {
        status: axum::http::StatusCode::BAD_REQUEST,
        ..OAuthFailure::new("invalid_client", "unknown client_id")
    }
}

/// The display name of a client, for the consent page.
pub fn client_name(state: &AppState, client_id: &str) -> String {
    known_client(state, client_id)
        .unwrap_or(client_id)
        .to_owned()
}

/// The scope a human client asked for, checked against [`SPONSOR_SCOPES`].
pub fn sponsor_scope(requested: Option<&str>) -> Result<String, OAuthFailure> {
    let Some(requested) = requested else {
        return Ok(DEFAULT_SPONSOR_SCOPE.to_owned());
    };
    let mut scopes: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !SPONSOR_SCOPES.contains(&s) {
            return Err(OAuthFailure::new(
                "invalid_scope",
                format!("scope {s:?} is not offered to human clients"),
            ));
        }
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    if scopes.is_empty() {
        return Ok(DEFAULT_SPONSOR_SCOPE.to_owned());
    }
    Ok(scopes.join(" "))
}

/// RFC 8628 §3.1–3.2.
pub async fn device_authorization(
    state: &AppState,
    form: &OAuthForm,
) -> Result<DeviceAuthorization, OAuthFailure> {
    let client_id = form.require("client_id")?;
    if known_client(state, client_id).is_none() {
        return Err(unknown_client());
    }
    let scope = sponsor_scope(form.get("scope"))?;
    let now = state.clock.now();
    let device = &state.settings.device;
    let expires_at = now + Duration::seconds(i64::from(device.expires_seconds));
    let device_code = new_secret();
    for _ in 0..8 {
        let user_code = user_code::generate(&mut rand::thread_rng());
        let record = DeviceRecord {
            device_code_hash: secret_hash(&device_code),
            user_code: user_code.clone(),
            client_id: client_id.to_owned(),
            scope: scope.clone(),
            status: DeviceStatus::Pending,
            sponsor_id: None,
            interval_seconds: i64::from(device.interval_seconds),
            expires_at,
            approved_at: None,
        };
        match state.store.create_device_authorization(&record, now).await {
            Ok(()) => {
                let verification_uri = format!("{}/device", state.issuer);
                return Ok(DeviceAuthorization {
                    device_code,
                    verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
                    verification_uri,
                    user_code,
                    expires_in: u64::from(device.expires_seconds),
                    interval: u64::from(device.interval_seconds),
                });
            }
            // The user code is in use: draw another.
            Err(StoreError::Duplicate) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthFailure::new(
        "temporarily_unavailable",
        "could not allocate a user code; try again",
    ))
}

/// The token endpoint, dispatching on `grant_type`; `dpop` is the request's DPoP proof.
pub async fn token(
    state: &AppState,
    form: &OAuthForm,
    dpop: Option<&str>,
) -> Result<TokenResponse, OAuthFailure> {
    match form.require("grant_type")? {
        GRANT_DEVICE_CODE => device_code_grant(state, form).await,
        GRANT_AUTHORIZATION_CODE => code::authorization_code_grant(state, form).await,
        GRANT_REFRESH_TOKEN => refresh_grant(state, form).await,
        GRANT_CLIENT_CREDENTIALS => client_credentials_grant(state, form, dpop).await,
        other => Err(OAuthFailure::new(
            "unsupported_grant_type",
            format!("grant_type {other:?} is not supported"),
        )),
    }
}

/// A signed sponsor access token and its stored record.
fn sponsor_access(
    state: &AppState,
    sponsor: &SponsorRecord,
    client_id: &str,
    scope: &str,
    family_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(String, AccessTokenRecord), OAuthFailure> {
    let lifetime = i64::from(state.settings.tokens.sponsor_access_seconds);
    let claims = AccessClaims {
        iss: state.issuer.clone(),
        sub: sponsor.id.clone(),
        aud: state.settings.tokens.audience.clone(),
        exp: now.timestamp() + lifetime,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: uuid::Uuid::now_v7().to_string(),
        scope: scope.to_owned(),
        client_id: client_id.to_owned(),
        kind: SubjectKind::Sponsor,
        roles: sponsor
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        preferred_username: Some(sponsor.username.clone()),
        cnf: None,
    };
    sign(state, claims, family_id)
}

fn sign(
    state: &AppState,
    claims: AccessClaims,
    family_id: Option<String>,
) -> Result<(String, AccessTokenRecord), OAuthFailure> {
    let jwt = state.keys.sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthFailure::new("server_error", "the server failed; try again")
    })?;
    let record = AccessTokenRecord {
        jti: claims.jti.clone(),
        subject_kind: claims.kind,
        subject: claims.sub.clone(),
        client_id: claims.client_id.clone(),
        family_id,
        scope: claims.scope.clone(),
        issued_at: seconds(claims.iat),
        expires_at: seconds(claims.exp),
        revoked_at: None,
    };
    Ok((jwt, record))
}

fn seconds(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn new_refresh(
    state: &AppState,
    sponsor_id: &str,
    client_id: &str,
    scope: &str,
    family_id: &str,
    now: DateTime<Utc>,
) -> (String, NewRefreshToken) {
    let secret = new_secret();
    let record = NewRefreshToken {
        token_hash: secret_hash(&secret),
        family_id: family_id.to_owned(),
        sponsor_id: sponsor_id.to_owned(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        issued_at: now,
        expires_at: now + Duration::seconds(i64::from(state.settings.tokens.refresh_seconds)),
    };
    (secret, record)
}

fn bearer_response(
    access: String,
    record: &AccessTokenRecord,
    refresh: Option<String>,
) -> TokenResponse {
    let expires_in = (record.expires_at - record.issued_at).num_seconds().max(0);
    TokenResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: u64::try_from(expires_in).unwrap_or(0),
        refresh_token: refresh,
        scope: Some(record.scope.clone()),
        id_token: None,
    }
}

async fn active_sponsor(state: &AppState, id: &str) -> Result<SponsorRecord, OAuthFailure> {
    match state.store.sponsor_by_id(id).await? {
        Some(s) if s.active => Ok(s),
        _ => Err(OAuthFailure::new(
            "invalid_grant",
            "the account is not active",
        )),
    }
}

async fn device_code_grant(
    state: &AppState,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthFailure> {
    let client_id = form.require("client_id")?;
    if known_client(state, client_id).is_none() {
        return Err(unknown_client());
    }
    let device_code = form.require("device_code")?;
    let now = state.clock.now();
    let poll = state
        .store
        .poll_device(&secret_hash(device_code), client_id, now)
        .await?;
    let (sponsor_id, scope, approved_at) = match poll {
        DevicePoll::Redeemed {
            sponsor_id,
            scope,
            approved_at,
        } => (sponsor_id, scope, approved_at),
        DevicePoll::Pending => {
            return Err(OAuthFailure::new(
                "authorization_pending",
                "the user has not yet approved this request",
            ));
        }
        DevicePoll::SlowDown { interval_seconds } => {
            return Err(OAuthFailure::new(
                "slow_down",
                format!("polling too fast; wait at least {interval_seconds} seconds between polls"),
            ));
        }
        DevicePoll::Denied => {
            return Err(OAuthFailure::new(
                "access_denied",
                "the user denied the request",
            ));
        }
        DevicePoll::Expired => {
            return Err(OAuthFailure::new(
                "expired_token",
                "the device code has expired; start again",
            ));
        }
        DevicePoll::AlreadyRedeemed => {
            return Err(OAuthFailure::new(
                "invalid_grant",
                "the device code has already been used",
            ));
        }
        DevicePoll::Unknown => {
            return Err(OAuthFailure::new("invalid_grant", "unknown device code"));
        }
    };
    let sponsor = active_sponsor(state, &sponsor_id).await?;
    let family = uuid::Uuid::new_v4().to_string();
    let signed_in = SignIn {
        client_id,
        scope: &scope,
        auth_time: approved_at.unwrap_or(now),
        nonce: None,
        family,
    };
    sponsor_tokens(state, &sponsor, signed_in, now).await
}

/// What a completed sign-in (a device code or an authorization code) gives its tokens.
struct SignIn<'a> {
    client_id: &'a str,
    scope: &'a str,
    auth_time: DateTime<Utc>,
    nonce: Option<String>,
    family: String,
}

/// A sponsor's tokens for a completed sign-in: the access token, a refresh token with
/// `offline_access`, an ID token with `openid`; stored with the sign-in's audit event.
async fn sponsor_tokens(
    state: &AppState,
    sponsor: &SponsorRecord,
    sign_in: SignIn<'_>,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthFailure> {
    let SignIn {
        client_id,
        scope,
        auth_time,
        nonce,
        family,
    } = sign_in;
    let (access, record) =
        sponsor_access(state, sponsor, client_id, scope, Some(family.clone()), now)?;
    let refresh = has_scope(scope, "offline_access")
        .then(|| new_refresh(state, &sponsor.id, client_id, scope, &family, now));
    let id_token = if has_scope(scope, "openid") {
        let claims = IdTokenClaims {
            iss: state.issuer.clone(),
            sub: sponsor.id.clone(),
            aud: client_id.to_owned(),
            exp: record.expires_at.timestamp(),
            iat: now.timestamp(),
            auth_time: auth_time.timestamp(),
            nonce,
            at_hash: at_hash(&access),
            name: sponsor.display_name.clone(),
            preferred_username: sponsor.username.clone(),
        };
        Some(state.keys.sign_id_token(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing an ID token failed");
            OAuthFailure::new("server_error", "the server failed; try again")
        })?)
    } else {
        None
    };
    state
        .store
        .record_tokens(
            &record,
            refresh.as_ref().map(|r| &r.1),
            Some(NewAuditEvent::new(
                Actor::sponsor(sponsor.id.clone()),
                sponsor.id.clone(),
                AuditAction::SponsorSignedIn(action::SignedIn {
                    client_id: client_id.to_owned(),
                    scope: scope.to_owned(),
                    jti: record.jti.clone(),
                }),
            )),
            now,
        )
        .await?;
    let mut response = bearer_response(access, &record, refresh.map(|r| r.0));
    response.id_token = id_token;
    Ok(response)
}

async fn refresh_grant(state: &AppState, form: &OAuthForm) -> Result<TokenResponse, OAuthFailure> {
    let client_id = form.require("client_id")?;
    if known_client(state, client_id).is_none() {
        return Err(unknown_client());
    }
    let presented = form.require("refresh_token")?;
    let hash = secret_hash(presented);
    let invalid = || OAuthFailure::new("invalid_grant", "the refresh token is not valid");
    let sponsor_id = state
        .store
        .refresh_token_sponsor(&hash)
        .await?
        .ok_or_else(invalid)?;
    let sponsor = active_sponsor(state, &sponsor_id).await?;
    let now = state.clock.now();
    // The stored scope is kept by the store; a narrower `scope` parameter is not offered.
    let scope = sponsor_scope(form.get("scope"))?;
    let (access, record) = sponsor_access(state, &sponsor, client_id, &scope, None, now)?;
    let (secret, next) = new_refresh(state, &sponsor.id, client_id, &scope, "", now);
    match state
        .store
        .use_refresh_token(&hash, client_id, &next, &record, now)
        .await?
    {
        RefreshOutcome::Rotated { .. } => Ok(bearer_response(access, &record, Some(secret))),
        RefreshOutcome::Reused => {
            // The family's access tokens are refused from the next request on.
            state
                .revocations
                .catch_up(state.store.as_ref(), now)
                .await?;
            Err(OAuthFailure::new(
                "invalid_grant",
                "this refresh token was already used; every token of its sign-in is now revoked",
            ))
        }
        RefreshOutcome::Invalid => Err(invalid()),
    }
}
