//! Introspection (RFC 7662) for resource servers and revocation (RFC 7009) for clients.

use chrono::DateTime;

use super::agent::unverified_claims;
use super::authenticate_agent;
use super::{known_client, seconds};
use crate::protocol::audit::Actor;
use crate::protocol::dpop::DPOP;
use crate::protocol::oauth::{Introspection, SubjectKind};
use crate::server::error::OAuthFailure;
use crate::server::extract::OAuthForm;
use crate::server::state::AppState;
use crate::server::tokens::secret_hash;

/// RFC 7662, answered from memory: the JWT checks (a token seen before skips its signature
/// check), then the revocation index, which knows every revoked `jti`, inactive agent and
/// sponsor's roles, exactly as `/v1` checks a bearer token; the two always agree. No database
/// round trip. A DPoP-bound token answers `token_type: DPoP` and its `cnf` (RFC 9449 §6.2):
/// the proof that came with it is the resource server's to check, which introspection cannot
/// see. An agent (`only`, its DID) may introspect only its own tokens; anything else
/// reads as inactive to it. Sponsors and registered resource clients see every token.
pub async fn introspect(
    state: &AppState,
    only: Option<&str>,
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
    if only.is_some_and(|sub| claims.sub != sub) {
        return Ok(Introspection::default());
    }
    // What `/v1` refuses, introspection calls inactive.
    let admitted = state
        .revocations
        .admit_or_catch_up(state.store.as_ref(), now, &claims)
        .await?;
    if admitted.is_err() {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        username: claims.preferred_username,
        token_type: Some(if claims.cnf.is_some() { DPOP } else { "Bearer" }.into()),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: Some(claims.nbf),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        jti: Some(claims.jti),
        kind: Some(claims.kind),
        cnf: claims.cnf,
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
            return Err(super::unknown_client());
        }
        (client_id.to_owned(), Actor::system())
    };
    let hint = form.get("token_type_hint");
    if hint != Some("refresh_token")
        && let Some(jti) = access_jti(state, token)
    {
        if let Some(record) = state.store.access_token(&jti).await?
            && record.client_id == client_id
        {
            let actor = match record.subject_kind {
                SubjectKind::Sponsor => Actor::sponsor(record.subject.clone()),
                SubjectKind::Agent => actor.clone(),
            };
            state.store.revoke_access_token(&jti, actor, now).await?;
        }
        return Ok(());
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
