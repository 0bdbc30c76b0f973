//! Resource servers as confidential clients of the introspection endpoint: HTTP Basic with the
//! client's secret (`client_secret_basic`, RFC 6749 §2.3.1: id and secret form-urlencoded,
//! then Base64) or a client assertion signed with its registered Ed25519 key
//! (`private_key_jwt`, RFC 7523), whose `jti` is used once.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use super::agent::unverified_claims;
use super::seconds;
use crate::protocol::oauth::{ASSERTION_TYPE_JWT_BEARER, ClientAssertionClaims};
use crate::server::error::OAuthFailure;
use crate::server::extract::OAuthForm;
use crate::server::state::AppState;
use crate::server::store::{ClientAuth, ResourceClient};
use crate::server::tokens::{check_times, secret_hash, verify_eddsa};

/// What every resource client's id starts with.
pub const CLIENT_ID_PREFIX: &str = "rs_";

/// The resource client the request authenticates as, if it presents client credentials
/// (Basic, or a client assertion naming an `rs_` client); `None` when it presents neither.
pub async fn authenticate_resource_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Option<ResourceClient>, OAuthFailure> {
    if let Some((id, secret)) = basic_credentials(headers)? {
        return secret_basic(state, &id, &secret).await.map(Some);
    }
    let Some(assertion) = form.get("client_assertion") else {
        return Ok(None);
    };
    let sub = unverified_claims(assertion)
        .and_then(|c| c.get("sub").and_then(|s| s.as_str()).map(str::to_owned))
        .unwrap_or_default();
    if !sub.starts_with(CLIENT_ID_PREFIX) {
        return Ok(None);
    }
    private_key_jwt(state, form, &sub, assertion)
        .await
        .map(Some)
}

fn refused(why: &str) -> OAuthFailure {
    OAuthFailure {
        challenge: Some("Basic realm=\"governance\"".into()),
        ..OAuthFailure::new("invalid_client", why.to_owned())
    }
}

/// `Authorization: Basic …`, decoded: (client_id, secret).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| refused("malformed Authorization"))?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| refused("malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| refused("malformed Basic credentials"))?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

async fn secret_basic(
    state: &AppState,
    client_id: &str,
    secret: &str,
) -> Result<ResourceClient, OAuthFailure> {
    // The hash is computed before the lookup, so an unknown id costs the same as a known one.
    let presented = secret_hash(secret);
    let client = state.store.resource_client(client_id).await?;
    let expected = match client.as_ref().map(|c| &c.auth) {
        Some(ClientAuth::SecretBasic { secret_sha256 }) => secret_sha256.as_str(),
        _ => "",
    };
    let matches = bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
    match client {
        Some(client) if matches => Ok(client),
        _ => Err(refused("unknown client or wrong secret")),
    }
}

async fn private_key_jwt(
    state: &AppState,
    form: &OAuthForm,
    client_id: &str,
    assertion: &str,
) -> Result<ResourceClient, OAuthFailure> {
    if form.get("client_assertion_type") != Some(ASSERTION_TYPE_JWT_BEARER) {
        return Err(refused("client_assertion_type must be jwt-bearer"));
    }
    if form.get("client_id").is_some_and(|c| c != client_id) {
        return Err(refused("client_id does not match the assertion"));
    }
    let client = state
        .store
        .resource_client(client_id)
        .await?
        .ok_or_else(|| refused("unknown client"))?;
    let ClientAuth::PrivateKeyJwt { public_key } = &client.auth else {
        return Err(refused("this client authenticates with its secret"));
    };
    let key = state
        .agent_keys
        .get(public_key)
        .map_err(|_| refused("the client's key is unusable"))?;
    let introspection = format!("{}/oauth2/introspect", state.issuer);
    let token = state.token_endpoint();
    let claims: ClientAssertionClaims = verify_eddsa(
        assertion,
        key.as_ref(),
        Some(client_id),
        &[
            introspection.as_str(),
            token.as_str(),
            state.issuer.as_str(),
        ],
    )
    .map_err(|e| {
        tracing::debug!(reason = %e, client = %client_id, "client assertion refused");
        refused("the client assertion is not valid")
    })?;
    let now = state.clock.now();
    check_times(claims.exp, None, now).map_err(|_| refused("the client assertion has expired"))?;
    let max = i64::from(state.settings.tokens.max_assertion_seconds);
    if claims.exp > now.timestamp() + max {
        return Err(refused(&format!(
            "the client assertion's exp may be at most {max} seconds ahead"
        )));
    }
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(refused(
            "the client assertion needs a jti of at most 128 characters",
        ));
    }
    let fresh = state
        .store
        .consume_assertion(client_id, &claims.jti, seconds(claims.exp))
        .await?;
    if !fresh {
        return Err(refused(
            "this client assertion was already used (jti replay)",
        ));
    }
    Ok(client)
}
