//! One refresh token, access tokens for two resources: Microsoft Graph and the governance
//! server's API scope (Entra allows one resource per token request, so each is its own
//! refresh). Refreshes are serialized, each rotated refresh token replaces the stored one, and
//! the file is re-read first so two processes sharing it keep the newest.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RefreshToken, RequestTokenError, Scope, TokenResponse};
use tokio::sync::Mutex;

use super::account::{CachedToken, EntraAccount, EntraAccountStore, EntraIdentity};
use super::config::EntraConfig;
use super::signin::{oauth_client, refused, transport_error};
use super::{EntraError, lifetime_end};
use crate::clock::SharedClock;

/// Refresh an access token when it has less than this left.
pub const REFRESH_MARGIN_SECONDS: i64 = 120;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Graph,
    /// The governance server (`entra.api_scope`).
    Governance,
}

/// A bearer token and when it stops working.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

struct Inner {
    config: EntraConfig,
    http: reqwest::Client,
    store: Option<EntraAccountStore>,
    clock: SharedClock,
    identity: EntraIdentity,
    account: Mutex<EntraAccount>,
}

/// The signed-in person's tokens, shared by the Graph client and the governance client.
#[derive(Clone)]
pub struct EntraTokens {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraTokens")
            .field("authority", &self.inner.config.authority())
            .field("identity", &self.inner.identity)
            .finish()
    }
}

impl EntraTokens {
    /// Tokens from `account` (just signed in, or loaded); refreshed tokens are saved to
    /// `store` when there is one.
    pub fn new(
        config: EntraConfig,
        http: reqwest::Client,
        store: Option<EntraAccountStore>,
        clock: SharedClock,
        account: EntraAccount,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                identity: account.identity.clone(),
                config,
                http,
                store,
                clock,
                account: Mutex::new(account),
            }),
        }
    }

    /// The saved sign-in of `config`'s tenant and client.
    pub fn load(
        config: EntraConfig,
        http: reqwest::Client,
        store: EntraAccountStore,
        clock: SharedClock,
    ) -> Result<Self, EntraError> {
        let account = store
            .load(&config.authority(), config.client_id.trim())?
            .ok_or_else(|| EntraError::NotSignedIn {
                tenant: config.tenant.clone(),
            })?;
        Ok(Self::new(config, http, Some(store), clock, account))
    }

    pub fn identity(&self) -> &EntraIdentity {
        &self.inner.identity
    }

    pub fn config(&self) -> &EntraConfig {
        &self.inner.config
    }

    /// The HTTP client for the login host and Graph (with the configured CA).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The scope string asked for `resource`.
    fn scope(&self, resource: Resource) -> Result<Vec<String>, EntraError> {
        let mut scopes = match resource {
            Resource::Graph => self.inner.config.graph_scope_names(),
            Resource::Governance => vec![
                self.inner
                    .config
                    .api_scope()
                    .ok_or(EntraError::NoApiScope)?
                    .to_owned(),
            ],
        };
        scopes.push("offline_access".into());
        Ok(scopes)
    }

    /// A token for `resource` with more than [`REFRESH_MARGIN_SECONDS`] left, refreshing it
    /// when needed.
    pub async fn access_token(&self, resource: Resource) -> Result<AccessToken, EntraError> {
        let scopes = self.scope(resource)?;
        let key = scopes[..scopes.len() - 1].join(" ");
        let mut account = self.inner.account.lock().await;
        let now = self.inner.clock.now();
        if let Some(t) = account.tokens.get(&key)
            && t.expires_at - now > chrono::Duration::seconds(REFRESH_MARGIN_SECONDS)
        {
            return Ok(AccessToken {
                secret: t.access_token.clone(),
                expires_at: t.expires_at,
            });
        }
        self.refresh(&mut account, &key, scopes).await
    }

    pub async fn graph_token(&self) -> Result<AccessToken, EntraError> {
        self.access_token(Resource::Graph).await
    }

    pub async fn governance_token(&self) -> Result<AccessToken, EntraError> {
        self.access_token(Resource::Governance).await
    }

    /// When the cached token for `resource` expires (`None` before one was minted).
    pub async fn expires_at(&self, resource: Resource) -> Option<DateTime<Utc>> {
        let scopes = self.scope(resource).ok()?;
        let key = scopes[..scopes.len() - 1].join(" ");
        self.inner
            .account
            .lock()
            .await
            .tokens
            .get(&key)
            .map(|t| t.expires_at)
    }

    /// A copy of the account as it stands (tokens included), for saving after a sign-in.
    pub async fn account(&self) -> EntraAccount {
        self.inner.account.lock().await.clone()
    }

    async fn refresh(
        &self,
        account: &mut EntraAccount,
        key: &str,
        scopes: Vec<String>,
    ) -> Result<AccessToken, EntraError> {
        let inner = &self.inner;
        // Another process may have rotated the refresh token since this one loaded it.
        if let Some(store) = &inner.store
            && let Ok(Some(saved)) = store.load(&account.authority, &account.client_id)
            && saved.identity == account.identity
        {
            account.refresh_token = saved.refresh_token;
        }
        let client = oauth_client(&inner.config)?;
        let rt = RefreshToken::new(account.refresh_token.clone());
        let answer = client
            .exchange_refresh_token(&rt)
            .add_scopes(scopes.into_iter().map(Scope::new))
            .request_async(&inner.http)
            .await;
        let token = match answer {
            Ok(token) => token,
            Err(RequestTokenError::ServerResponse(r)) => {
                let ended = matches!(r.error(), BasicErrorResponseType::InvalidGrant)
                    || matches!(r.error(), BasicErrorResponseType::Extension(e) if e == "interaction_required");
                if ended {
                    if let Some(store) = &inner.store {
                        store.remove(&account.authority, &account.client_id)?;
                    }
                    return Err(EntraError::SignInEnded {
                        tenant: inner.config.tenant.clone(),
                        reason: super::signin::describe(r.error_description().map(String::as_str)),
                    });
                }
                return Err(refused(
                    r.error().as_ref(),
                    r.error_description().map(String::as_str),
                ));
            }
            Err(e) => return Err(transport_error(e)),
        };
        if let Some(rotated) = token.refresh_token() {
            account.refresh_token = rotated.secret().to_owned();
        }
        let cached = CachedToken {
            access_token: token.access_token().secret().to_owned(),
            expires_at: lifetime_end(inner.clock.now(), token.expires_in()),
        };
        let fresh = AccessToken {
            secret: cached.access_token.clone(),
            expires_at: cached.expires_at,
        };
        account.tokens.insert(key.to_owned(), cached);
        if let Some(store) = &inner.store {
            store.save(account)?;
        }
        Ok(fresh)
    }
}
