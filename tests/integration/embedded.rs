//! The embedded default: an in-process server, the OS user as local sponsor with all three
//! roles, the real device flow with only the browser step done in-process, demo agents that
//! submit, and state kept under the data directory across restarts.

use sponsor_console::client::ApiClient;
use sponsor_console::demo::embedded::start_embedded;

use crate::common::query;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_signs_in_and_runs_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = start_embedded(dir.path(), 3, 50.0).await.unwrap();
    let api = ApiClient::new(&tenant.server.base_url()).unwrap();
    assert!(
        tenant.server.base_url().starts_with("http://127.0.0.1:"),
        "loopback only"
    );
    let me = api
        .with_token(&tenant.session.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.kind, "sponsor");
    let mut roles = me.roles.clone();
    roles.sort();
    assert_eq!(roles, vec!["on-call", "security-lead", "sponsor"]);
    assert!(tenant.session.refresh_token.is_some());
    // The sign-in went through the device flow: it is in the audit chain.
    let sponsor = api.with_token(&tenant.session.access_token);
    let mut changes = tenant.server.state.store.changes();
    // The demo fleet submits on its own; wait for its first requests to land.
    let submitted = async {
        loop {
            let pending = sponsor.requests(&query("status=all")).await.unwrap();
            if pending.len() >= 3 {
                break;
            }
            changes.changed().await.unwrap();
        }
    };
    // A guard, not a wait: at 50/s the demo submits within milliseconds.
    tokio::time::timeout(std::time::Duration::from_secs(120), submitted)
        .await
        .expect("the demo fleet never submitted");
    let events = sponsor.audit_export().await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert!(actions.contains(&"device.approved") && actions.contains(&"sponsor.signed_in"));
    let parents = |agents: &[sponsor_console::protocol::agents::Agent]| {
        let mut v: Vec<String> = agents
            .iter()
            .filter(|a| !a.name.contains("-worker-"))
            .map(|a| a.did.clone())
            .collect();
        v.sort();
        v
    };
    let first = parents(&sponsor.agents(false).await.unwrap());
    assert_eq!(first.len(), 3);
    tenant.shutdown().await.unwrap();

    // A restart keeps the tenant: same agents (their keys were kept), no new ones.
    let again = start_embedded(dir.path(), 3, 0.001).await.unwrap();
    let api = ApiClient::new(&again.server.base_url()).unwrap();
    let sponsor = api.with_token(&again.session.access_token);
    assert_eq!(
        parents(&sponsor.agents(false).await.unwrap()),
        first,
        "the same demo agents"
    );
    assert!(sponsor.audit_verify(None).await.unwrap().ok);
    again.shutdown().await.unwrap();
}
