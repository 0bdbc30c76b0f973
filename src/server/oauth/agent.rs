//! Agents' client credentials: a `private_key_jwt` assertion (RFC 7523) signed by the agent's
//! registered key, exchanged for a token that carries standing ∪ active grants; with a DPoP
//! proof signed by the same key, a token bound to it (RFC 9449 §5).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{bearer_response, seconds, sign};
use crate::domain::capability::{self, Capability};
use crate::domain::effective::{LiveGrant, token_scope};
use crate::domain::{Refusal, did, dpop};
use crate::protocol::agents::AgentStatus;
use crate::protocol::dpop::{Confirmation, DPOP, INVALID_DPOP_PROOF};
use crate::protocol::oauth::{
    ASSERTION_TYPE_JWT_BEARER, AccessClaims, ClientAssertionClaims, SubjectKind, TokenResponse,
};
use crate::server::dpop::{self as proofs, DpopRefusal};
use crate::server::error::OAuthFailure;
use crate::server::extract::OAuthForm;
use crate::server::state::AppState;
use crate::server::store::{AgentCredential, StoreError};
use crate::server::tokens::{TokenError, check_times, verify_eddsa};

/// The claims of a JWT read without verifying it, only to find which key verifies it.
pub(super) fn unverified_claims(token: &str) -> Option<serde_json::Value> {
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
    let (agent_did, assertion) = presented_assertion(form)?;
    let credential = state
        .store
        .agent_credential(&agent_did)
        .await?
        .ok_or_else(|| OAuthFailure::new("invalid_client", "unknown agent".to_owned()))?;
    verify_assertion(state, agent_did, assertion, &credential)
}

/// The agent a client assertion names, and the assertion, before anything is verified.
fn presented_assertion(form: &OAuthForm) -> Result<(String, &str), OAuthFailure> {
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
    Ok((agent_did, assertion))
}

/// Verifies `assertion` against the agent's stored `credential` (see [`authenticate_agent`]).
fn verify_assertion(
    state: &AppState,
    agent_did: String,
    assertion: &str,
    credential: &AgentCredential,
) -> Result<AuthenticatedAgent, OAuthFailure> {
    let bad = |why: &str| OAuthFailure::new("invalid_client", why.to_owned());
    let key = state
        .agent_keys
        .get(&credential.public_key)
        .map_err(|_| bad("the agent's key is unusable"))?;
    let endpoint = state.token_endpoint();
    let claims: ClientAssertionClaims = verify_eddsa(
        assertion,
        key.as_ref(),
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

/// RFC 9449 §5: a refused proof at the token endpoint (400 `invalid_dpop_proof`; 503 when the
/// memory of used proofs is full).
pub fn invalid_dpop_proof(refusal: DpopRefusal) -> OAuthFailure {
    match refusal {
        DpopRefusal::Busy => OAuthFailure::new("temporarily_unavailable", refusal.to_string()),
        other => OAuthFailure::new(INVALID_DPOP_PROOF, other.to_string()),
    }
}

/// The key a token will be bound to: the proof's, which must be the agent's registered key.
fn bound_key(
    state: &AppState,
    proof: &str,
    registered: &str,
) -> Result<Confirmation, OAuthFailure> {
    let verified =
        proofs::check(state, proof, "POST", "/oauth2/token", None).map_err(invalid_dpop_proof)?;
    let registered = dpop::key_thumbprint(registered).map_err(|e| {
        tracing::error!(error = %e, "thumbprint failed");
        OAuthFailure::new("server_error", "the server failed; try again")
    })?;
    if verified.jkt != registered {
        return Err(OAuthFailure::new(
            INVALID_DPOP_PROOF,
            "the DPoP proof must be signed with the agent's registered key",
        ));
    }
    Ok(Confirmation { jkt: verified.jkt })
}

pub(super) async fn client_credentials_grant(
    state: &AppState,
    form: &OAuthForm,
    proof: Option<&str>,
) -> Result<TokenResponse, OAuthFailure> {
    let now = state.clock.now();
    // The agent's key and its grants in one read, then the assertion checked against the key.
    let (agent_did, assertion) = presented_assertion(form)?;
    let subject = state
        .store
        .token_subject(&agent_did, now)
        .await?
        .ok_or_else(|| OAuthFailure::new("invalid_client", "unknown agent".to_owned()))?;
    let agent = verify_assertion(state, agent_did, assertion, &subject.credential)?;
    let cnf = proof
        .map(|p| bound_key(state, p, &subject.credential.public_key))
        .transpose()?;
    let grants = subject
        .grants
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
    if cnf.is_none()
        && let Some(why) = state.policy.dpop_required(&scope.capabilities)
    {
        return Err(OAuthFailure::new(
            INVALID_DPOP_PROOF,
            format!("{why}: send a {DPOP} header with a proof signed by the agent's key"),
        ));
    }
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
        jti: uuid::Uuid::now_v7().to_string(),
        scope: capability::to_scope(&scope.capabilities),
        client_id: agent.did.clone(),
        kind: SubjectKind::Agent,
        roles: Vec::new(),
        preferred_username: None,
        cnf,
    };
    let claims_bound = claims.cnf.is_some();
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
    let mut response = bearer_response(access, &record, None);
    if claims_bound {
        response.token_type = DPOP.into();
    }
    Ok(response)
}
