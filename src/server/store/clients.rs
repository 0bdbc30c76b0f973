//! Resource servers registered as confidential OAuth clients, allowed to introspect tokens:
//! added and removed by the operator (`governance-server clients …`), each change with its
//! audit event in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::protocol::audit::Actor;

/// How a resource client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with a secret; only the secret's SHA-256 (hex) is kept.
    SecretBasic { secret_sha256: String },
    /// A client assertion signed with this Ed25519 key (the `x` of its JWK, base64url).
    PrivateKeyJwt { public_key: String },
}

impl ClientAuth {
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::SecretBasic { .. } => "client_secret_basic",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceClient {
    pub client_id: String,
    pub name: String,
    pub auth: ClientAuth,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client; a name in use is `Duplicate`.
    async fn add_resource_client(
        &self,
        client: &ResourceClient,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// A registered client that has not been removed.
    async fn resource_client(&self, client_id: &str) -> StoreResult<Option<ResourceClient>>;
    /// Every client not removed, oldest first.
    async fn resource_clients(&self) -> StoreResult<Vec<ResourceClient>>;
    /// Removes the client of this name; false when there is none.
    async fn remove_resource_client(
        &self,
        name: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// The columns of `resource_clients` a read needs.
pub(super) const CLIENT_COLUMNS: &str =
    "client_id, name, auth_method, secret_sha256, public_key, created_at FROM resource_clients";

#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    client_id: String,
    name: String,
    auth_method: String,
    secret_sha256: Option<String>,
    public_key: Option<String>,
    created_at: i64,
}

impl ClientRow {
    pub(super) fn into_client(self) -> StoreResult<ResourceClient> {
        let auth = match (
            self.auth_method.as_str(),
            self.secret_sha256,
            self.public_key,
        ) {
            ("client_secret_basic", Some(secret_sha256), None) => {
                ClientAuth::SecretBasic { secret_sha256 }
            }
            ("private_key_jwt", None, Some(public_key)) => ClientAuth::PrivateKeyJwt { public_key },
            (method, ..) => {
                return Err(super::StoreError::Corrupt(format!(
                    "resource client {}: {method} with the wrong credential",
                    self.client_id
                )));
            }
        };
        Ok(ResourceClient {
            client_id: self.client_id,
            name: self.name,
            auth,
            created_at: super::records::from_ms(self.created_at),
        })
    }
}

/// The credential columns of `auth`: (secret_sha256, public_key).
pub(super) fn credential_columns(auth: &ClientAuth) -> (Option<&str>, Option<&str>) {
    match auth {
        ClientAuth::SecretBasic { secret_sha256 } => (Some(secret_sha256), None),
        ClientAuth::PrivateKeyJwt { public_key } => (None, Some(public_key)),
    }
}
