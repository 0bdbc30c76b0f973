//! Headless sign-in through the OAuth 2.0 device authorization grant (RFC 8628), using the
//! `oauth2` crate: it honours `interval` and `slow_down`. The clock and the sleep between polls
//! are injected, so tests step time instead of waiting.

use std::future::Future;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, DeviceAuthorizationUrl, DeviceCodeErrorResponseType, RefreshToken,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};

use super::session::{Session, SessionError, SessionStore};
use crate::client::{ApiClient, ClientError};
use crate::clock::SharedClock;

/// The console's OAuth client id.
pub const CLIENT_ID: &str = "sponsor-console";
/// Refresh the access token when it has less than this left.
pub const REFRESH_MARGIN_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("sign-in was denied in the browser")]
    Denied,
    #[error("the code expired before anyone approved it; run login again")]
    Expired,
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("cannot reach the server: {0}")]
    Network(String),
    #[error("not signed in to {0}; run `sponsor-console login --server {0}`")]
    NotSignedIn(String),
    #[error("the session has ended; run `sponsor-console login --server {0}` again")]
    SessionEnded(String),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Entra(#[from] super::entra::EntraError),
}

/// What a human must do to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPrompt {
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in: Duration,
}

fn oauth_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    e: RequestTokenError<RE, T>,
) -> LoginError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let text = serde_json::to_value(&r)
                .ok()
                .and_then(|v| {
                    let error = v.get("error")?.as_str()?.to_owned();
                    let description = v
                        .get("error_description")
                        .and_then(|d| d.as_str())
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    Some(format!("{error}{description}"))
                })
                .unwrap_or_else(|| "an OAuth error".into());
            LoginError::Refused(text)
        }
        RequestTokenError::Request(e) => LoginError::Network(e.to_string()),
        RequestTokenError::Parse(e, _) => LoginError::Refused(format!("unreadable answer: {e}")),
        RequestTokenError::Other(e) => LoginError::Refused(e),
    }
}

fn url_error(e: url::ParseError) -> LoginError {
    LoginError::Refused(format!("bad endpoint URL: {e}"))
}

/// Signs in to `api`'s server: starts the device flow, hands the prompt to `show`, polls with
/// `sleep` between attempts, and returns the session (not yet saved).
pub async fn device_login<S, SF, H, HF>(
    api: &ApiClient,
    clock: SharedClock,
    sleep: S,
    show: H,
) -> Result<Session, LoginError>
where
    S: Fn(Duration) -> SF,
    SF: Future<Output = ()>,
    H: FnOnce(LoginPrompt) -> HF,
    HF: Future<Output = ()>,
{
    let client = BasicClient::new(ClientId::new(CLIENT_ID.to_owned()))
        .set_auth_type(AuthType::RequestBody)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(api.url("/oauth2/device_authorization"))
                .map_err(url_error)?,
        )
        .set_token_uri(TokenUrl::new(api.token_endpoint()).map_err(url_error)?);
    let http = api.http().clone();
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_scope(Scope::new("governance".into()))
        .request_async(&http)
        .await
        .map_err(oauth_error)?;
    show(LoginPrompt {
        verification_uri: details.verification_uri().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|u| u.secret().to_owned()),
        user_code: details.user_code().secret().to_owned(),
        expires_in: details.expires_in(),
    })
    .await;
    let time = clock.clone();
    let token = client
        .exchange_device_access_token(&details)
        .set_time_fn(move || time.now())
        .request_async(&http, sleep, None)
        .await
        .map_err(|e| match &e {
            RequestTokenError::ServerResponse(r) => match r.error() {
                DeviceCodeErrorResponseType::AccessDenied => LoginError::Denied,
                DeviceCodeErrorResponseType::ExpiredToken => LoginError::Expired,
                _ => oauth_error(e),
            },
            _ => oauth_error(e),
        })?;
    let now = clock.now();
    let lifetime = token.expires_in().unwrap_or(Duration::from_secs(0));
    let access = token.access_token().secret().to_owned();
    let me = api.with_token(&access).me().await?;
    Ok(Session {
        server: api.base().to_owned(),
        client_id: CLIENT_ID.to_owned(),
        access_token: access,
        refresh_token: token.refresh_token().map(|r| r.secret().to_owned()),
        expires_at: now + chrono::Duration::from_std(lifetime).unwrap_or_default(),
        username: me.username,
    })
}

/// The sleep a real sign-in uses between polls.
pub async fn real_sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Loads the session of `api`'s server, refreshing (and saving) it when it is about to expire.
pub async fn current_session(
    api: &ApiClient,
    store: &SessionStore,
    clock: &SharedClock,
) -> Result<Session, LoginError> {
    let server = api.base().to_owned();
    let session = store
        .load(&server)?
        .ok_or_else(|| LoginError::NotSignedIn(server.clone()))?;
    let now = clock.now();
    if session.expires_at - now > chrono::Duration::seconds(REFRESH_MARGIN_SECONDS) {
        return Ok(session);
    }
    match refresh(api, &session, clock).await {
        Ok(renewed) => {
            store.save(&renewed)?;
            Ok(renewed)
        }
        Err(LoginError::SessionEnded(server)) => {
            // Rotated elsewhere, revoked, or expired: this session is over.
            store.remove(&server)?;
            Err(LoginError::SessionEnded(server))
        }
        Err(e) => Err(e),
    }
}

/// Exchanges the session's refresh token for fresh tokens (the old refresh token is spent).
pub async fn refresh(
    api: &ApiClient,
    session: &Session,
    clock: &SharedClock,
) -> Result<Session, LoginError> {
    let server = session.server.clone();
    let Some(refresh) = session.refresh_token.clone() else {
        return Err(LoginError::SessionEnded(server));
    };
    let client = BasicClient::new(ClientId::new(session.client_id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(api.token_endpoint()).map_err(url_error)?);
    let token = match client
        .exchange_refresh_token(&RefreshToken::new(refresh))
        .request_async(api.http())
        .await
    {
        Ok(token) => token,
        Err(RequestTokenError::ServerResponse(_)) => return Err(LoginError::SessionEnded(server)),
        Err(e) => return Err(oauth_error(e)),
    };
    let now = clock.now();
    let lifetime = token.expires_in().unwrap_or(Duration::from_secs(0));
    Ok(Session {
        access_token: token.access_token().secret().to_owned(),
        refresh_token: token
            .refresh_token()
            .map(|r| r.secret().to_owned())
            .or_else(|| session.refresh_token.clone()),
        expires_at: now + chrono::Duration::from_std(lifetime).unwrap_or_default(),
        ..session.clone()
    })
}

/// Revokes the session's tokens at the server (best effort) and forgets it locally.
pub async fn logout(
    api: &ApiClient,
    store: &SessionStore,
    clock: &SharedClock,
) -> Result<bool, LoginError> {
    let server = api.base().to_owned();
    let Some(session) = store.load(&server)? else {
        return Ok(false);
    };
    if let Some(refresh) = &session.refresh_token
        && let Err(e) = api
            .revoke(&session.client_id, refresh, Some("refresh_token"))
            .await
    {
        tracing::warn!(error = %e, "revoking the refresh token failed");
    }
    if session.expires_at > clock.now()
        && let Err(e) = api
            .revoke(
                &session.client_id,
                &session.access_token,
                Some("access_token"),
            )
            .await
    {
        tracing::warn!(error = %e, "revoking the access token failed");
    }
    store.remove(&server)?;
    Ok(true)
}
