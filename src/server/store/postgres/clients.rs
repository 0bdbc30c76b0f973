//! Resource clients in PostgreSQL (`store::clients`), as in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::audit::append;
use super::{PgStore, ms};
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::server::store::clients::{CLIENT_COLUMNS, ClientRow, credential_columns};
use crate::server::store::{ClientStore, NewAuditEvent, ResourceClient, StoreError, StoreResult};

#[async_trait]
impl ClientStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn add_resource_client(
        &self,
        client: &ResourceClient,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let taken: Option<(i64,)> =
            sqlx::query_as("SELECT 1::BIGINT FROM resource_clients WHERE name = $1")
                .bind(&client.name)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(StoreError::Duplicate);
        }
        let (secret, key) = credential_columns(&client.auth);
        sqlx::query(
            "INSERT INTO resource_clients (client_id, name, auth_method, secret_sha256, public_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.auth.method())
        .bind(secret)
        .bind(key)
        .bind(ms(client.created_at))
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            NewAuditEvent::new(
                actor,
                client.client_id.clone(),
                AuditAction::ClientAdded(action::ClientChanged {
                    name: client.name.clone(),
                    auth_method: client.auth.method().into(),
                }),
            ),
            now,
        )
        .await?;
        self.finish(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn resource_client(&self, client_id: &str) -> StoreResult<Option<ResourceClient>> {
        let row: Option<ClientRow> = sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} WHERE client_id = $1 AND removed_at IS NULL"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(ClientRow::into_client).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn resource_clients(&self) -> StoreResult<Vec<ResourceClient>> {
        let rows: Vec<ClientRow> = sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} WHERE removed_at IS NULL ORDER BY created_at, client_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ClientRow::into_client).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn remove_resource_client(
        &self,
        name: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let removed: Vec<(String, String)> = sqlx::query_as(
            "UPDATE resource_clients SET removed_at = $1 WHERE name = $2 AND removed_at IS NULL
             RETURNING client_id, auth_method",
        )
        .bind(ms(now))
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let Some((client_id, auth_method)) = removed.into_iter().next() else {
            return Ok(false);
        };
        append(
            &mut tx,
            NewAuditEvent::new(
                actor,
                client_id,
                AuditAction::ClientRemoved(action::ClientChanged {
                    name: name.to_owned(),
                    auth_method,
                }),
            ),
            now,
        )
        .await?;
        self.finish(tx).await?;
        Ok(true)
    }
}
