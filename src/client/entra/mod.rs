//! Microsoft Entra for the console: one device-code sign-in whose refresh token (kept like a
//! session: 0600, never logged) mints access tokens for Microsoft Graph and for the governance
//! server's API scope, so a person signs in once.

mod account;
mod config;
mod signin;
mod tokens;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use account::{CachedToken, EntraAccount, EntraAccountStore, EntraIdentity};
pub use config::{
    DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_SCOPES, DEFAULT_GRAPH_URL, EntraConfig, GRAPH_RESOURCE,
    OIDC_SCOPES,
};
pub use signin::{EntraPrompt, PollEvent, sign_in};
pub use tokens::{AccessToken, EntraTokens, REFRESH_MARGIN_SECONDS, Resource};

use crate::client::session::SessionError;

/// Why Entra sign-in or a token failed. The texts are what the person reads.
#[derive(Debug, thiserror::Error)]
pub enum EntraError {
    #[error(
        "Microsoft Entra is not configured: set entra.tenant and entra.client_id in the console settings"
    )]
    NotConfigured,
    #[error("{0}")]
    Config(String),
    #[error(
        "entra.api_scope is not set, so the governance server cannot be signed in to through Entra"
    )]
    NoApiScope,
    #[error("{path}: {message}")]
    CaFile { path: String, message: String },
    #[error("the sign-in was declined in the browser (authorization_declined)")]
    Declined,
    #[error(
        "Entra did not recognise the device code (bad_verification_code); run `sponsor-console login` again"
    )]
    BadVerificationCode,
    #[error(
        "the code expired before the sign-in was finished (expired_token); run `sponsor-console login` again"
    )]
    Expired,
    #[error("Entra refused: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("cannot reach Entra: {0}")]
    Network(String),
    #[error("{0}")]
    BadAnswer(String),
    #[error("not signed in to Microsoft Entra (tenant {tenant}); run `sponsor-console login`")]
    NotSignedIn { tenant: String },
    #[error("the Entra sign-in has ended{}; run `sponsor-console login` again (tenant {tenant})", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    SignInEnded {
        tenant: String,
        reason: Option<String>,
    },
    #[error("{0}")]
    Session(#[from] SessionError),
}

/// When a token that lives `expires_in` (Entra always says; five minutes if not) ends.
pub(crate) fn lifetime_end(now: DateTime<Utc>, expires_in: Option<Duration>) -> DateTime<Utc> {
    let lifetime = expires_in.unwrap_or(Duration::from_secs(300));
    now + chrono::Duration::from_std(lifetime).unwrap_or_default()
}
