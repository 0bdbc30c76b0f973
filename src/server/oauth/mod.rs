//! The grants of the local tenant's authorization server: device authorization (RFC 8628),
//! refresh-token rotation with reuse detection, agent client credentials with
//! `private_key_jwt` (RFC 7523), introspection (RFC 7662) and revocation (RFC 7009).
//! Handlers in `routes::oauth` only parse forms and call these. Device and sponsor grants are
//! here; `agent` has client credentials, `introspection` introspection and revocation.

mod agent;
mod clients;
mod introspection;

use agent::client_credentials_grant;
pub use agent::{AuthenticatedAgent, authenticate_agent, invalid_dpop_proof};
pub use clients::{CLIENT_ID_PREFIX, authenticate_resource_client};
pub use introspection::{introspect, revoke};

use chrono::{DateTime, Duration, Utc};

use super::error::OAuthFailure;
use super::extract::OAuthForm;
use super::state::AppState;
use super::store::{
    AccessTokenRecord, DevicePoll, DeviceRecord, DeviceStatus, NewAuditEvent, NewRefreshToken,
    RefreshOutcome, SponsorRecord, StoreError,
};
use super::tokens::{new_secret, secret_hash};
use crate::domain::user_code;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::oauth::{
    AccessClaims, DeviceAuthorization, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN, SubjectKind, TokenResponse,
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

/// The display name of a client, for the consent page.
pub fn client_name(state: &AppState, client_id: &str) -> String {
    known_client(state, client_id)
        .unwrap_or(client_id)
        .to_owned()
}

fn sponsor_scope(requested: Option<&str>) -> Result<String, OAuthFailure> {
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
        return Err(OAuthFailure::new("invalid_client", "unknown client_id"));
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
        return Err(OAuthFailure::new("invalid_client", "unknown client_id"));
    }
    let device_code = form.require("device_code")?;
    let now = state.clock.now();
    let poll = state
        .store
        .poll_device(&secret_hash(device_code), client_id, now)
        .await?;
    let (sponsor_id, scope) = match poll {
        DevicePoll::Redeemed { sponsor_id, scope } => (sponsor_id, scope),
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
    let (access, record) = sponsor_access(
        state,
        &sponsor,
        client_id,
        &scope,
        Some(family.clone()),
        now,
    )?;
    let refresh = scope
        .split(' ')
        .any(|s| s == "offline_access")
        .then(|| new_refresh(state, &sponsor.id, client_id, &scope, &family, now));
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
                    scope: scope.clone(),
                    jti: record.jti.clone(),
                }),
            )),
            now,
        )
        .await?;
    Ok(bearer_response(access, &record, refresh.map(|r| r.0)))
}

async fn refresh_grant(state: &AppState, form: &OAuthForm) -> Result<TokenResponse, OAuthFailure> {
    let client_id = form.require("client_id")?;
    if known_client(state, client_id).is_none() {
        return Err(OAuthFailure::new("invalid_client", "unknown client_id"));
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
