//! The grants of the local tenant's authorization server: device authorization (RFC 8628),
//! refresh-token rotation with reuse detection, agent client credentials with
//! `private_key_jwt` (RFC 7523), introspection (RFC 7662) and revocation (RFC 7009).
//! Handlers in `routes::oauth` only parse forms and call these.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::DecodingKey;

use super::error::OAuthFailure;
use super::extract::OAuthForm;
use super::state::AppState;
use super::store::{
    AccessTokenRecord, DevicePoll, DeviceRecord, DeviceStatus, NewAuditEvent, NewRefreshToken,
    RefreshOutcome, SponsorRecord, StoreError,
};
use super::tokens::{TokenError, check_times, new_secret, secret_hash, verify_eddsa};
use crate::domain::capability::{self, Capability};
use crate::domain::effective::{LiveGrant, token_scope};
use crate::domain::{Refusal, did, user_code};
use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::protocol::oauth::{
    ASSERTION_TYPE_JWT_BEARER, AccessClaims, ClientAssertionClaims, DeviceAuthorization,
    GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN, Introspection, SubjectKind,
    TokenResponse,
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

/// The token endpoint, dispatching on `grant_type`.
pub async fn token(state: &AppState, form: &OAuthForm) -> Result<TokenResponse, OAuthFailure> {
    match form.require("grant_type")? {
        GRANT_DEVICE_CODE => device_code_grant(state, form).await,
        GRANT_REFRESH_TOKEN => refresh_grant(state, form).await,
        GRANT_CLIENT_CREDENTIALS => client_credentials_grant(state, form).await,
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
        jti: uuid::Uuid::new_v4().to_string(),
        scope: scope.to_owned(),
        client_id: client_id.to_owned(),
        kind: SubjectKind::Sponsor,
        roles: sponsor
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        preferred_username: Some(sponsor.username.clone()),
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
        RefreshOutcome::Reused => Err(OAuthFailure::new(
            "invalid_grant",
            "this refresh token was already used; every token of its sign-in is now revoked",
        )),
        RefreshOutcome::Invalid => Err(invalid()),
    }
}

/// The claims of a JWT read without verifying it, only to find which key verifies it.
fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An agent authenticated by a `private_key_jwt` client assertion.
#[derive(Debug)]
pub struct AuthenticatedAgent {
    pub did: String,
    pub capabilities: Vec<Capability>,
    pub assertion: ClientAssertionClaims,
}

/// RFC 7523 §3: verifies a client assertion: the agent's registered Ed25519 key, `iss` = `sub`
/// = the agent's DID, `aud` = the token endpoint (or the issuer), `exp` in the future and at
/// most `max_assertion_seconds` ahead. Does not consume the `jti`: the caller does, atomically
/// with what it issues.
pub async fn authenticate_agent(
    state: &AppState,
    form: &OAuthForm,
) -> Result<AuthenticatedAgent, OAuthFailure> {
    let bad = |why: &str| OAuthFailure::new("invalid_client", why.to_owned());
    if form.require("client_assertion_type")? != ASSERTION_TYPE_JWT_BEARER {
        return Err(bad("client_assertion_type must be jwt-bearer"));
    }
    let assertion = form.require("client_assertion")?;
    let sub = unverified_claims(assertion)
        .and_then(|c| c.get("sub").and_then(|s| s.as_str()).map(str::to_owned))
        .ok_or_else(|| bad("the client assertion is malformed"))?;
    let agent_did = did::parse(&sub).map_err(|_| bad("the assertion's sub is not an agent DID"))?;
    if form.get("client_id").is_some_and(|c| c != agent_did) {
        return Err(bad("client_id does not match the assertion"));
    }
    let credential = state
        .store
        .agent_credential(&agent_did)
        .await?
        .ok_or_else(|| bad("unknown agent"))?;
    let key = DecodingKey::from_ed_components(&credential.public_key)
        .map_err(|_| bad("the agent's key is unusable"))?;
    let endpoint = state.token_endpoint();
    let claims: ClientAssertionClaims = verify_eddsa(
        assertion,
        &key,
        Some(&agent_did),
        &[endpoint.as_str(), state.issuer.as_str()],
    )
    .map_err(|e| {
        tracing::debug!(reason = %e, agent = %agent_did, "client assertion refused");
        bad("the client assertion is not valid")
    })?;
    if claims.sub != agent_did {
        return Err(bad("iss and sub must both be the agent's DID"));
    }
    let now = state.clock.now();
    match check_times(claims.exp, None, now) {
        Ok(()) => {}
        Err(TokenError::Expired) => return Err(bad("the client assertion has expired")),
        Err(_) => return Err(bad("the client assertion is not valid")),
    }
    let max = i64::from(state.settings.tokens.max_assertion_seconds);
    if claims.exp > now.timestamp() + max {
        return Err(bad(&format!(
            "the client assertion's exp may be at most {max} seconds ahead"
        )));
    }
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(bad(
            "the client assertion needs a jti of at most 128 characters",
        ));
    }
    if credential.status != AgentStatus::Active {
        return Err(OAuthFailure::new(
            "invalid_client",
            format!("the agent is {}", credential.status.as_str()),
        ));
    }
    let capabilities = capability::parse_set(&credential.capabilities)
        .map_err(|e| StoreError::Corrupt(format!("agent capabilities: {e}")))?;
    Ok(AuthenticatedAgent {
        did: agent_did,
        capabilities,
        assertion: claims,
    })
}

async fn client_credentials_grant(
    state: &AppState,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthFailure> {
    let agent = authenticate_agent(state, form).await?;
    let now = state.clock.now();
    let grants = state
        .store
        .active_grants(&agent.did, now)
        .await?
        .into_iter()
        .map(|g| {
            Ok(LiveGrant {
                capabilities: capability::parse_set(&g.capabilities)
                    .map_err(|e| StoreError::Corrupt(format!("grant capabilities: {e}")))?,
                id: g.id,
                not_after: g.not_after,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // An agent may ask for less than it holds, never more.
    let wanted = match form.get("scope") {
        None => None,
        Some(scope) => {
            let items: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
            Some(
                capability::parse_set(&items)
                    .map_err(|e| OAuthFailure::new("invalid_scope", e.message))?,
            )
        }
    };
    let scope = token_scope(&agent.capabilities, &grants, wanted.as_deref(), now)
        .map_err(|e| OAuthFailure::new("invalid_scope", e.message))?;
    let lifetime = i64::from(state.settings.tokens.agent_access_seconds);
    // Never past the end of a grant it carries (whole seconds, rounded down).
    let exp = scope.not_after.map_or(now.timestamp() + lifetime, |end| {
        (now.timestamp() + lifetime).min(end.timestamp())
    });
    if exp <= now.timestamp() {
        return Err(OAuthFailure::new(
            "invalid_grant",
            "a grant this token would carry ends within the second; ask again",
        ));
    }
    let claims = AccessClaims {
        iss: state.issuer.clone(),
        sub: agent.did.clone(),
        aud: state.settings.tokens.audience.clone(),
        exp,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        scope: capability::to_scope(&scope.capabilities),
        client_id: agent.did.clone(),
        kind: SubjectKind::Agent,
        roles: Vec::new(),
        preferred_username: None,
    };
    let (access, record) = sign(state, claims, None)?;
    let fresh = state
        .store
        .issue_agent_token(
            &agent.assertion.jti,
            seconds(agent.assertion.exp),
            &record,
            &scope.grant_ids,
            now,
        )
        .await;
    let fresh = match fresh {
        Ok(fresh) => fresh,
        Err(StoreError::Refused(Refusal::Forbidden { message, .. })) => {
            return Err(OAuthFailure::new("invalid_client", message));
        }
        Err(StoreError::Refused(Refusal::Conflict { message, .. })) => {
            return Err(OAuthFailure::new("invalid_grant", message));
        }
        Err(e) => return Err(e.into()),
    };
    if !fresh {
        return Err(OAuthFailure::new(
            "invalid_client",
            "this client assertion was already used (jti replay)",
        ));
    }
    Ok(bearer_response(access, &record, None))
}

/// RFC 7662: in-memory JWT validation, then one primary-key lookup of the `jti`.
/// Agents may introspect only their own tokens; anything else reads as inactive.
pub async fn introspect(
    state: &AppState,
    caller: &AccessClaims,
    token: &str,
) -> Result<Introspection, OAuthFailure> {
    let now = state.clock.now();
    let Ok(claims) =
        state
            .keys
            .verify_access(token, &state.issuer, &state.settings.tokens.audience, now)
    else {
        return Ok(Introspection::default());
    };
    if caller.kind == SubjectKind::Agent && claims.sub != caller.sub {
        return Ok(Introspection::default());
    }
    let Some(record) = state.store.access_token(&claims.jti).await? else {
        return Ok(Introspection::default());
    };
    if record.revoked_at.is_some() || record.expires_at <= now || record.subject != claims.sub {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        scope: Some(record.scope),
        client_id: Some(claims.client_id),
        username: claims.preferred_username,
        token_type: Some("Bearer".into()),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: Some(claims.nbf),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        jti: Some(claims.jti),
        kind: Some(claims.kind),
    })
}

/// RFC 7009. The client authenticates with a client assertion (agents) or names its public
/// `client_id` (the console). Unknown tokens and tokens of other clients are answered the same
/// way as revoked ones: success, nothing disclosed.
pub async fn revoke(state: &AppState, form: &OAuthForm) -> Result<(), OAuthFailure> {
    let token = form.require("token")?;
    let now = state.clock.now();
    let (client_id, actor) = if form.get("client_assertion").is_some() {
        let agent = authenticate_agent(state, form).await?;
        let fresh = state
            .store
            .consume_assertion(
                &agent.did,
                &agent.assertion.jti,
                seconds(agent.assertion.exp),
                now,
            )
            .await?;
        if !fresh {
            return Err(OAuthFailure::new(
                "invalid_client",
                "this client assertion was already used (jti replay)",
            ));
        }
        (agent.did.clone(), Actor::agent(agent.did))
    } else {
        let client_id = form.require("client_id")?;
        if known_client(state, client_id).is_none() {
            return Err(OAuthFailure::new("invalid_client", "unknown client_id"));
        }
        (client_id.to_owned(), Actor::system())
    };
    let hint = form.get("token_type_hint");
    if hint != Some("refresh_token") {
        if let Some(jti) = access_jti(state, token) {
            if let Some(record) = state.store.access_token(&jti).await? {
                if record.client_id == client_id {
                    let actor = match record.subject_kind {
                        SubjectKind::Sponsor => Actor::sponsor(record.subject.clone()),
                        SubjectKind::Agent => actor.clone(),
                    };
                    state.store.revoke_access_token(&jti, actor, now).await?;
                }
            }
            return Ok(());
        }
    }
    let hash = secret_hash(token);
    let actor = match state.store.refresh_token_sponsor(&hash).await? {
        Some(sponsor) => Actor::sponsor(sponsor),
        None => actor,
    };
    state
        .store
        .revoke_refresh_family(&hash, &client_id, actor, now)
        .await?;
    Ok(())
}

/// The `jti` of an access token this server signed, even an expired one (revoking it is
/// harmless); `None` for anything else.
fn access_jti(state: &AppState, token: &str) -> Option<String> {
    // Expiry is irrelevant to revocation (validate as of just before `exp`); signature,
    // issuer and audience are not.
    let claims = unverified_claims(token)?;
    let exp = claims.get("exp")?.as_i64()?;
    let at = DateTime::from_timestamp(exp - 1, 0)?;
    state
        .keys
        .verify_access(token, &state.issuer, &state.settings.tokens.audience, at)
        .ok()
        .map(|c| c.jti)
}
