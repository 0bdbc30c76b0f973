//! Conformance: resource servers registered as confidential clients.

use std::sync::Arc;

use sponsor_console::protocol::audit::Actor;
use sponsor_console::server::store::{AuditScope, ClientAuth, ResourceClient, Store, StoreError};

use super::at;

/// Resource clients: added once by name, read back with their credential, listed, removed
/// once (and then unknown), each change on the chain.
pub async fn resource_clients_are_added_read_and_removed(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let basic = ResourceClient {
        client_id: format!("rs_{:032x}", 1),
        name: "ledger-api".into(),
        auth: ClientAuth::SecretBasic {
            secret_sha256: "ab".repeat(32),
        },
        created_at: at(0),
    };
    let jwt = ResourceClient {
        client_id: format!("rs_{:032x}", 2),
        name: "audit-api".into(),
        auth: ClientAuth::PrivateKeyJwt {
            public_key: "k".repeat(43),
        },
        created_at: at(1),
    };
    s.add_resource_client(&basic, Actor::system(), at(0))
        .await
        .expect("added");
    s.add_resource_client(&jwt, Actor::system(), at(1))
        .await
        .expect("added");
    let mut twice = jwt.clone();
    twice.client_id = format!("rs_{:032x}", 3);
    assert!(matches!(
        s.add_resource_client(&twice, Actor::system(), at(2)).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(
        s.resource_client(&basic.client_id).await.expect("read"),
        Some(basic.clone())
    );
    assert_eq!(
        s.resource_clients().await.expect("list"),
        [basic.clone(), jwt.clone()]
    );
    assert!(
        s.remove_resource_client("ledger-api", Actor::system(), at(3))
            .await
            .expect("removed")
    );
    assert!(
        !s.remove_resource_client("ledger-api", Actor::system(), at(4))
            .await
            .expect("nothing to remove")
    );
    assert_eq!(
        s.resource_client(&basic.client_id).await.expect("read"),
        None
    );
    assert_eq!(s.resource_clients().await.expect("list"), [jwt]);
    let events: Vec<String> = s
        .audit_page(&AuditScope::All, 0, 100)
        .await
        .expect("chain")
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(events, ["client.added", "client.added", "client.removed"]);
}
