//! Tokens from trusted external issuers (`[[trusted_issuers]]`, Microsoft Entra): RS256 only,
//! keys from the issuer's OpenID discovery (or a configured JWKS), cached and fetched again at
//! most once a minute when a token names a `kid` not in the cache. The rules about claims,
//! tenant and roles are `domain::external`; this module fetches keys, checks signatures, keeps
//! the sponsor record in step and hands `/v1` the same claims a local sponsor's token carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::GOVERNANCE_SCOPE;
use super::state::AppState;
use super::store::ExternalSponsor;
use super::tokens::TokenError;
use crate::domain::external::{self, ExternalIdentity, IssuerRule, Rejected};
use crate::protocol::entra::EntraAccessClaims;
use crate::protocol::oauth::{AccessClaims, SubjectKind};
use crate::settings::TrustedIssuerSettings;

/// How often keys may be fetched again for an unknown `kid`.
pub const REFETCH_AFTER: Duration = Duration::seconds(60);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why an external token was refused (all 401 but [`Rejected::NoRole`], a 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Rejected(#[from] Rejected),
}

/// The issuer's keys could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TrustSetupError {
    #[error("trusted issuer {issuer}: ca_file {path}: {message}")]
    CaFile {
        issuer: String,
        path: String,
        message: String,
    },
    #[error("trusted issuer {issuer}: {message}")]
    Client { issuer: String, message: String },
}

/// One trusted issuer and its cached keys.
pub struct Issuer {
    rule: IssuerRule,
    discovery: String,
    jwks_url: Option<String>,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When keys were last fetched (or tried); held while fetching, so one fetch runs.
    fetched: tokio::sync::Mutex<Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.rule.issuer)
            .finish()
    }
}

/// Every trusted issuer, shared by all handlers.
#[derive(Debug, Clone, Default)]
pub struct TrustedIssuers {
    issuers: Arc<Vec<Arc<Issuer>>>,
    /// Per sponsor, the newest `iat` whose roles were written: an older token never causes a
    /// write (nor a database round trip).
    stated: Arc<Mutex<HashMap<String, i64>>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Deserialize)]
struct ClaimedIssuer {
    iss: String,
}

impl TrustedIssuers {
    /// Builds an HTTP client per issuer (trusting its `ca_file`, if any); fetches nothing yet.
    pub fn from_settings(list: &[TrustedIssuerSettings]) -> Result<Self, TrustSetupError> {
        let mut issuers = Vec::new();
        for s in list {
            let client_error = |message: String| TrustSetupError::Client {
                issuer: s.issuer.clone(),
                message,
            };
            let rule = s.rule().map_err(|e| client_error(e.to_string()))?;
            let mut http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .connect_timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none());
            if !s.ca_file.is_empty() {
                let ca_error = |message: String| TrustSetupError::CaFile {
                    issuer: s.issuer.clone(),
                    path: s.ca_file.clone(),
                    message,
                };
                let pem = std::fs::read(&s.ca_file).map_err(|e| ca_error(e.to_string()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| ca_error(e.to_string()))?;
                if certs.is_empty() {
                    return Err(ca_error("no certificate in the file".into()));
                }
                for cert in certs {
                    http = http.add_root_certificate(cert);
                }
            }
            issuers.push(Arc::new(Issuer {
                rule,
                discovery: s.discovery(),
                jwks_url: (!s.jwks_url.is_empty()).then(|| s.jwks_url.clone()),
                http: http.build().map_err(|e| client_error(e.to_string()))?,
                keys: RwLock::new(HashMap::new()),
                fetched: tokio::sync::Mutex::new(None),
            }));
        }
        Ok(Self {
            issuers: Arc::new(issuers),
            stated: Arc::default(),
        })
    }

    /// The trusted issuer a token says it is from. Unverified: it only picks whose keys
    /// check the signature; a token naming no trusted issuer goes the local way.
    pub fn route(&self, token: &str) -> Option<Arc<Issuer>> {
        if self.issuers.is_empty() {
            return None;
        }
        let payload = token.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let claimed: ClaimedIssuer = serde_json::from_slice(&bytes).ok()?;
        self.issuers
            .iter()
            .find(|i| i.rule.issuer == claimed.iss)
            .cloned()
    }

    fn is_newer(&self, sponsor_id: &str, issued_at: i64) -> bool {
        self.stated
            .lock()
            .map(|s| s.get(sponsor_id).is_none_or(|seen| issued_at > *seen))
            .unwrap_or(true)
    }

    fn note(&self, sponsor_id: &str, issued_at: i64) {
        if let Ok(mut s) = self.stated.lock() {
            let seen = s.entry(sponsor_id.to_owned()).or_insert(issued_at);
            *seen = (*seen).max(issued_at);
        }
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let mut response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "{url} answered more than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
}

impl Issuer {
    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    /// Fetches the keys again unless that was done less than a minute ago.
    async fn refresh_keys(&self, now: DateTime<Utc>) {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| now < at + REFETCH_AFTER) {
            return;
        }
        *fetched = Some(now);
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(issuer = %self.rule.issuer, keys = keys.len(), "trusted issuer keys fetched");
                if let Ok(mut held) = self.keys.write() {
                    *held = keys;
                }
            }
            Err(e) => {
                tracing::warn!(issuer = %self.rule.issuer, error = %e, "fetching a trusted issuer's keys failed");
            }
        }
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let jwks_url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => {
                let doc: Discovery = get_json(&self.http, &self.discovery).await?;
                // OpenID Connect Discovery §4.3: the document must name the issuer we trust.
                if doc.issuer != self.rule.issuer {
                    return Err(format!(
                        "discovery names issuer {}, not {}",
                        doc.issuer, self.rule.issuer
                    ));
                }
                doc.jwks_uri
            }
        };
        let jwks: Jwks = get_json(&self.http, &jwks_url).await?;
        Ok(jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "RSA")
            .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == "RS256"))
            .filter_map(|k| {
                let key =
                    DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
                Some((k.kid?, key))
            })
            .collect())
    }

    /// Checks signature (RS256, a `kid` in the issuer's JWKS), issuer and audience, then the
    /// claims (`domain::external::admit`) at `now`.
    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<ExternalIdentity, TrustError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Algorithm.into());
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh_keys(now).await;
                self.key(&kid).ok_or(TokenError::UnknownKey)?
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.rule.issuer]);
        validation.set_audience(&[&self.rule.audience]);
        let claims = jsonwebtoken::decode::<EntraAccessClaims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::Signature,
                    ErrorKind::InvalidIssuer => TokenError::Issuer,
                    ErrorKind::InvalidAudience => TokenError::Audience,
                    ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                    ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
                    _ => TokenError::Malformed,
                }
            })?;
        Ok(external::admit(&self.rule, &claims, now)?)
    }
}

/// The claims a token from `issuer` acts with on `/v1`, as if the server had issued them to
/// a local sponsor: the sponsor is created on first sight and its roles follow the newest
/// token; the revocation index then admits it like any sponsor.
pub async fn sponsor_claims(
    state: &AppState,
    issuer: &Issuer,
    token: &str,
) -> Result<AccessClaims, ApiError> {
    let now = state.clock.now();
    let identity = issuer.verify(token, now).await.map_err(|e| {
        tracing::debug!(issuer = %issuer.rule.issuer, reason = %e, "external token refused");
        match e {
            TrustError::Rejected(Rejected::NoRole) => ApiError::forbidden(
                "your account has no role on this server (ask for one of its app roles)",
            ),
            _ => ApiError::unauthorized(),
        }
    })?;
    let held = state.revocations.roles_of(&identity.sponsor_id);
    if external::needs_sync(held.as_deref(), &identity.roles)
        && state
            .trusted
            .is_newer(&identity.sponsor_id, identity.issued_at)
    {
        let sponsor = ExternalSponsor {
            id: identity.sponsor_id.clone(),
            display_name: identity.display_name.clone(),
            roles: identity.roles.clone(),
            source: "entra".into(),
            stated_at: DateTime::from_timestamp(identity.issued_at, 0).unwrap_or(now),
        };
        state.store.sync_external_sponsor(&sponsor, now).await?;
        state.trusted.note(&identity.sponsor_id, identity.issued_at);
        state
            .revocations
            .catch_up(state.store.as_ref(), now)
            .await?;
    }
    let jti = identity
        .token_id
        .clone()
        .unwrap_or_else(|| hex::encode(Sha256::digest(token.as_bytes())));
    Ok(AccessClaims {
        iss: issuer.rule.issuer.clone(),
        sub: identity.sponsor_id,
        aud: issuer.rule.audience.clone(),
        exp: identity.expires_at,
        iat: identity.issued_at,
        nbf: identity.not_before,
        jti: format!("{}{jti}", external::ENTRA_PREFIX),
        scope: if identity.scoped {
            GOVERNANCE_SCOPE.to_owned()
        } else {
            String::new()
        },
        client_id: identity.client_id,
        kind: SubjectKind::Sponsor,
        roles: identity
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        preferred_username: Some(identity.username),
        cnf: None,
    })
}
