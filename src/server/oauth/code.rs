//! The authorization code grant (RFC 6749 §4.1) with PKCE S256 (RFC 7636), for public clients
//! that sign people in through a browser: the authorization endpoint's page issues a one-time
//! code ([`issue_code`]), the client exchanges it with its code verifier
//! ([`authorization_code_grant`]). The rules are `domain::authorize`.

use chrono::{DateTime, Duration, Utc};

use super::{SignIn, active_sponsor, known_client, sponsor_tokens};
use crate::domain::authorize::{AuthorizeRequest, verifier_matches};
use crate::protocol::oauth::TokenResponse;
use crate::server::error::OAuthFailure;
use crate::server::extract::OAuthForm;
use crate::server::state::AppState;
use crate::server::store::{AuthorizationCode, CodeRedemption, SponsorRecord, StoreError};
use crate::server::tokens::{new_secret, secret_hash};

/// How long a code may wait for its exchange (RFC 6749 §4.1.2 recommends at most ten minutes;
/// a client exchanges it at once).
const CODE_SECONDS: i64 = 60;

/// The redirect URIs registered for a human-facing client, `None` for an unknown client.
pub fn redirect_uris<'a>(state: &'a AppState, client_id: &str) -> Option<&'a [String]> {
    state
        .settings
        .clients
        .iter()
        .find(|c| c.client_id == client_id)
        .map(|c| c.redirect_uris.as_slice())
}

/// Issues a code for a person who has just signed in and allowed `request`; returns the code.
pub async fn issue_code(
    state: &AppState,
    request: &AuthorizeRequest,
    scope: &str,
    sponsor: &SponsorRecord,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let code = new_secret();
    state
        .store
        .create_authorization_code(
            &AuthorizationCode {
                code_hash: secret_hash(&code),
                client_id: request.client_id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                scope: scope.to_owned(),
                sponsor_id: sponsor.id.clone(),
                code_challenge: request.code_challenge.clone(),
                nonce: request.nonce.clone(),
                auth_time: now,
                expires_at: now + Duration::seconds(CODE_SECONDS),
            },
            now,
        )
        .await?;
    Ok(code)
}

/// RFC 6749 §4.1.3: the code, by the client it was issued to, with the same redirect URI and
/// the verifier of its PKCE challenge. A code is redeemed once, even when the rest is wrong;
/// presented again, the tokens it gave are revoked.
pub(super) async fn authorization_code_grant(
    state: &AppState,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthFailure> {
    let client_id = form.require("client_id")?;
    if known_client(state, client_id).is_none() {
        return Err(super::unknown_client());
    }
    let code = form.require("code")?;
    let redirect_uri = form.require("redirect_uri")?;
    let verifier = form.get("code_verifier").ok_or_else(|| {
        OAuthFailure::new(
            "invalid_request",
            "missing parameter code_verifier (PKCE is required)",
        )
    })?;
    let now = state.clock.now();
    let family = uuid::Uuid::new_v4().to_string();
    let redeemed = state
        .store
        .redeem_authorization_code(&secret_hash(code), client_id, &family, now)
        .await?;
    let code = match redeemed {
        CodeRedemption::Redeemed(code) => code,
        CodeRedemption::Reused => {
            state
                .revocations
                .catch_up(state.store.as_ref(), now)
                .await?;
            return Err(OAuthFailure::new(
                "invalid_grant",
                "this code was already used; the tokens it gave are now revoked",
            ));
        }
        CodeRedemption::Invalid => {
            return Err(OAuthFailure::new(
                "invalid_grant",
                "the code is not valid or has expired",
            ));
        }
    };
    if code.redirect_uri != redirect_uri {
        return Err(OAuthFailure::new(
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !verifier_matches(verifier, &code.code_challenge) {
        return Err(OAuthFailure::new(
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        ));
    }
    let sponsor = active_sponsor(state, &code.sponsor_id).await?;
    let sign_in = SignIn {
        client_id,
        scope: &code.scope,
        auth_time: code.auth_time,
        nonce: code.nonce.clone(),
        family,
    };
    sponsor_tokens(state, &sponsor, sign_in, now).await
}
