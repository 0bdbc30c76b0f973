//! The device authorization grant against Entra's v2.0 endpoints (entra-graph.md §1), through
//! the `oauth2` crate: it polls, honours `interval` and adds 5 s on `slow_down`. Every poll
//! answer passes an observer on its way to the crate, so the person sees a line for
//! `authorization_pending` and `slow_down`; the answers that end the flow
//! (`authorization_declined`, `bad_verification_code`, `expired_token`) each become their own
//! error. The clock and the sleep between polls are injected, so tests step time.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, Client, ClientId, DeviceAuthorizationResponse, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, EndpointNotSet, EndpointSet, ExtraDeviceAuthorizationFields,
    ExtraTokenFields, HttpClientError, HttpRequest, HttpResponse, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::account::{CachedToken, EntraAccount, EntraIdentity};
use super::config::{EntraConfig, OIDC_SCOPES};
use super::{EntraError, lifetime_end};
use crate::clock::SharedClock;

/// Entra's extra device-authorization field: the ready-made instructions.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(super) struct EntraDeviceFields {
    #[serde(default)]
    message: Option<String>,
}
impl ExtraDeviceAuthorizationFields for EntraDeviceFields {}

/// The id token, which names who signed in.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(super) struct EntraTokenFields {
    #[serde(default)]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for EntraTokenFields {}

pub(super) type EntraTokenResponse = StandardTokenResponse<EntraTokenFields, BasicTokenType>;

/// The `oauth2` client for one tenant and public client: device authorization and token
/// endpoints set.
pub(super) type EntraOAuthClient = Client<
    BasicErrorResponse,
    EntraTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

pub(super) fn oauth_client(config: &EntraConfig) -> Result<EntraOAuthClient, EntraError> {
    let bad = |e: url::ParseError| EntraError::Config(format!("entra: bad endpoint URL: {e}"));
    Ok(
        Client::new(ClientId::new(config.client_id.trim().to_owned()))
            .set_auth_type(AuthType::RequestBody)
            .set_device_authorization_url(
                DeviceAuthorizationUrl::new(config.device_code_url()).map_err(bad)?,
            )
            .set_token_uri(TokenUrl::new(config.token_url()).map_err(bad)?),
    )
}

/// What the person must do to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraPrompt {
    pub verification_uri: String,
    pub user_code: String,
    /// Entra's own instructions (`message`), when it sent them.
    pub message: Option<String>,
    pub expires_in: Duration,
}

/// A poll answer that keeps the flow going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollEvent {
    /// `authorization_pending`: nobody has finished signing in yet.
    Pending,
    /// `slow_down`: Entra asked for fewer polls; the interval grows by 5 s for good.
    SlowDown,
}

/// An OAuth error body, read only for its `error` (the crate reads the rest).
#[derive(Deserialize)]
struct ErrorPeek {
    error: String,
}

fn observe_poll(response: &HttpResponse, observe: &impl Fn(PollEvent)) {
    if response.status().as_u16() != 400 {
        return;
    }
    match serde_json::from_slice::<ErrorPeek>(response.body()) {
        Ok(e) if e.error == "authorization_pending" => observe(PollEvent::Pending),
        Ok(e) if e.error == "slow_down" => observe(PollEvent::SlowDown),
        _ => {}
    }
}

/// Entra's `error_description` is several lines (AADSTS code and text, trace id, correlation id,
/// timestamp): keep the first and the trace id.
pub(super) fn describe(description: Option<&str>) -> Option<String> {
    use crate::domain::text::sanitize_preview;
    let mut lines = description?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let first = sanitize_preview(lines.next()?);
    Some(match lines.find(|l| l.starts_with("Trace ID:")) {
        Some(trace) => format!("{first} ({})", sanitize_preview(trace).to_ascii_lowercase()),
        None => first,
    })
}

/// A token-endpoint refusal, as the person reads it.
pub(super) fn refused(error: &str, description: Option<&str>) -> EntraError {
    EntraError::Refused {
        error: error.to_owned(),
        description: describe(description),
    }
}

pub(super) fn transport_error<T: oauth2::ErrorResponse>(
    e: RequestTokenError<HttpClientError<reqwest::Error>, T>,
) -> EntraError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let v = serde_json::to_value(&r).unwrap_or_default();
            let error = v["error"].as_str().unwrap_or("an OAuth error").to_owned();
            refused(&error, v["error_description"].as_str())
        }
        RequestTokenError::Request(e) => EntraError::Network(e.to_string()),
        RequestTokenError::Parse(e, _) => {
            EntraError::BadAnswer(format!("the login host's answer is unreadable: {e}"))
        }
        RequestTokenError::Other(e) => EntraError::BadAnswer(e),
    }
}

fn poll_error(
    e: RequestTokenError<HttpClientError<reqwest::Error>, oauth2::DeviceCodeErrorResponse>,
) -> EntraError {
    let RequestTokenError::ServerResponse(r) = &e else {
        return transport_error(e);
    };
    match r.error() {
        DeviceCodeErrorResponseType::AccessDenied => EntraError::Declined,
        DeviceCodeErrorResponseType::ExpiredToken => EntraError::Expired,
        DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::Extension(code))
            if code == "authorization_declined" =>
        {
            EntraError::Declined
        }
        DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::Extension(code))
            if code == "bad_verification_code" =>
        {
            EntraError::BadVerificationCode
        }
        _ => transport_error(e),
    }
}

/// The claims of a JWT, unverified. Only for tokens this client received straight from the
/// token endpoint over TLS (OIDC Core §3.1.3.7 lets TLS stand in for the signature check).
pub(super) fn unverified_claims(jwt: &str) -> Option<BTreeMap<String, serde_json::Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Who signed in: the id token's claims, else the access token's.
fn identity(token: &EntraTokenResponse) -> Result<EntraIdentity, EntraError> {
    let from = |jwt: &str| -> Option<EntraIdentity> {
        let claims = unverified_claims(jwt)?;
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Some(EntraIdentity {
            object_id: text("oid")?,
            tenant_id: text("tid")?,
            username: text("preferred_username").or_else(|| text("upn")),
            display_name: text("name"),
        })
    };
    token
        .extra_fields()
        .id_token
        .as_deref()
        .and_then(from)
        .or_else(|| from(token.access_token().secret()))
        .ok_or_else(|| {
            EntraError::BadAnswer(
                "the sign-in did not say who signed in (no id token with oid and tid)".into(),
            )
        })
}

/// Signs in with the device flow: asks for the Graph scopes (one resource per request, as
/// Entra requires) with `offline_access openid profile`, hands the prompt to `show`, polls
/// with `sleep` between attempts (telling `observe` about each pending or slow-down answer),
/// and returns the account, its Graph token cached (not yet saved).
pub async fn sign_in<S, SF, H, HF, O>(
    config: &EntraConfig,
    http: &reqwest::Client,
    clock: SharedClock,
    sleep: S,
    show: H,
    observe: O,
) -> Result<EntraAccount, EntraError>
where
    S: Fn(Duration) -> SF,
    SF: Future<Output = ()>,
    H: FnOnce(EntraPrompt) -> HF,
    HF: Future<Output = ()>,
    O: Fn(PollEvent),
{
    let client = oauth_client(config)?;
    let graph_scopes = config.graph_scope_names();
    let scopes = graph_scopes
        .iter()
        .cloned()
        .chain(OIDC_SCOPES.map(String::from))
        .map(Scope::new);
    let details: DeviceAuthorizationResponse<EntraDeviceFields> = client
        .exchange_device_code()
        .add_scopes(scopes)
        .request_async(http)
        .await
        .map_err(transport_error)?;
    show(EntraPrompt {
        verification_uri: details.verification_uri().to_string(),
        user_code: details.user_code().secret().to_owned(),
        message: details.extra_fields().message.clone(),
        expires_in: details.expires_in(),
    })
    .await;
    let observe = &observe;
    let observing = |request: HttpRequest| {
        let http = http.clone();
        async move {
            let response = oauth2::AsyncHttpClient::call(&http, request).await?;
            observe_poll(&response, observe);
            Ok::<_, HttpClientError<reqwest::Error>>(response)
        }
    };
    let time = clock.clone();
    let token = client
        .exchange_device_access_token(&details)
        .set_time_fn(move || time.now())
        .request_async(&observing, sleep, None)
        .await
        .map_err(poll_error)?;
    let refresh_token = token
        .refresh_token()
        .map(|r| r.secret().to_owned())
        .ok_or_else(|| {
            EntraError::BadAnswer(
                "Entra sent no refresh token; the app registration must allow offline_access"
                    .into(),
            )
        })?;
    let identity = identity(&token)?;
    let graph_key = graph_scopes.join(" ");
    let cached = CachedToken {
        access_token: token.access_token().secret().to_owned(),
        expires_at: lifetime_end(clock.now(), token.expires_in()),
    };
    Ok(EntraAccount {
        authority: config.authority(),
        client_id: config.client_id.trim().to_owned(),
        refresh_token,
        identity,
        tokens: BTreeMap::from([(graph_key, cached)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_descriptions_keep_the_first_line_and_the_trace() {
        let d = "AADSTS70019: Verification code expired.\r\nTrace ID: 01707A0C\r\nCorrelation ID: 78b0\r\nTimestamp: 2020-03-26 22:54:14Z";
        assert_eq!(
            describe(Some(d)).as_deref(),
            Some("AADSTS70019: Verification code expired. (trace id: 01707a0c)")
        );
        assert_eq!(describe(Some("plain")).as_deref(), Some("plain"));
        assert_eq!(describe(None), None);
    }

    #[test]
    fn claims_are_read_from_the_payload_only() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"oid":"o","tid":"t","name":"N"}"#);
        let claims = unverified_claims(&format!("e30.{payload}.sig")).unwrap_or_default();
        assert_eq!(claims.get("oid").and_then(|v| v.as_str()), Some("o"));
        assert!(unverified_claims("not-a-jwt").is_none());
        assert!(unverified_claims("a.!!!.c").is_none());
    }
}
