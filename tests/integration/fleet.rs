//! The fleet simulator through the real API: believable agents, real keys and tokens, pending
//! requests a sponsor can list, some of them delegations.

use std::sync::Arc;

use sponsor_console::demo::fleet::{Fleet, FleetConfig};
use sponsor_console::protocol::requests::RequestKind;

use crate::common::TestServer;
use crate::common::query;

#[tokio::test]
async fn a_fleet_submits_believable_requests() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let fleet = Arc::new(
        Fleet::register(&alice, 7, 42, t.clock.clone())
            .await
            .unwrap(),
    );
    assert_eq!(alice.agents(false).await.unwrap().len(), 7);
    let stats = fleet
        .run(&FleetConfig {
            agents: 7,
            rate: 1000.0,
            delegation_share: 0.3,
            seed: 42,
            count: Some(30),
            duration: None,
            concurrency: 8,
        })
        .await;
    assert_eq!(stats.errors, 0, "{:?}", stats.last_error);
    assert_eq!(stats.submitted, 30);
    let requests = alice
        .requests(&query("status=all&limit=100"))
        .await
        .unwrap();
    assert_eq!(requests.len(), 30);
    assert!(requests.iter().any(|r| r.kind == RequestKind::Delegation));
    assert!(
        requests
            .iter()
            .all(|r| !r.justification.is_empty() && r.context.is_some() && r.ticket.is_some())
    );
    let agents = alice.agents(false).await.unwrap();
    assert!(
        agents
            .iter()
            .all(|a| a.model.is_some() && a.runtime.is_some())
    );
    assert!(
        agents
            .iter()
            .any(|a| a.name.starts_with("invoice-reconciler-"))
    );
}
