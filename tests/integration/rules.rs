//! No way around the rules: what a sponsor may not do by registering, and what a pattern may
//! not hide. Each refusal changes nothing.

use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::domain::policy::Sensitivity;
use sponsor_console::protocol::agents::RegisterAgent;

use crate::common::{TestServer, code_of, elevation};

fn register(caps: &[&str]) -> RegisterAgent {
    RegisterAgent {
        public_key: AgentKey::generate().public_key(),
        name: "sneaky".into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        entra_object_id: None,
        model: None,
        runtime: None,
    }
}

#[tokio::test]
async fn only_what_policy_lets_stand_may_be_registered_standing() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let sam = t.as_user("sam").await;
    let head = sam.audit_verify(None).await.unwrap().count;
    for (caps, code) in [
        (&["admin:*"][..], "capability_not_standing"),
        (&["delete:*"][..], "capability_not_standing"),
        (&["deploy:prod"][..], "capability_not_standing"),
        (&["write:crm"][..], "capability_not_standing"),
        (&["read:docs", "send:email"][..], "capability_not_standing"),
        // A pattern reaches what the rules inside it govern: `read:*` includes `read:pii:*`.
        (&["read:*"][..], "capability_not_standing"),
        (&["launch:rockets"][..], "capability_not_in_policy"),
    ] {
        let refused = alice.register_agent(&register(caps), None).await;
        assert_eq!(code_of(refused), code, "{caps:?}");
    }
    assert!(
        alice.agents(false).await.unwrap().is_empty(),
        "nothing registered"
    );
    assert_eq!(
        sam.audit_verify(None).await.unwrap().count,
        head,
        "nothing recorded"
    );
    // Low-sensitivity capabilities one approver could grant may stand.
    let fine = alice
        .register_agent(&register(&["read:crm:*", "list:tickets:*"]), None)
        .await
        .unwrap();
    assert_eq!(fine.capabilities, ["list:tickets:*", "read:crm:*"]);
}

#[tokio::test]
async fn a_pattern_answers_to_every_rule_inside_it() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "reader", &["read:docs"]).await;
    let bot = t.as_agent(&key).await;
    // `read:*` is low on its own (8 h), but it reaches `read:pii:*`: high, 2 h at most.
    let asked = bot
        .request_elevation(&elevation(&["read:*"], 8 * 3600), None)
        .await
        .unwrap();
    assert_eq!(asked.policy.sensitivity, Sensitivity::High);
    assert_eq!(asked.policy.max_seconds, 2 * 3600);
}
