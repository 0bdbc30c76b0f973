//! AGT's own client against the webhook: the real `VersionedWebhookApproval` of
//! `agent-governance-toolkit-core` (5.0.0), with `assets/agt_verifier.py` as its
//! `response_verifier`, held until a sponsor decides through the console's client. Runs where
//! a Python with AGT is found (`AGT_PYTHON`, which `.ci/run` sets up, else `python3`);
//! elsewhere it says it was skipped.

use std::process::Stdio;
use std::time::Duration;

use sponsor_console::client::ApiClient;
use sponsor_console::protocol::actions::ActionDecisionBody;
use sponsor_console::protocol::requests::Decision;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::agt::with_integration;
use crate::common::{sign_in, start_real_clock};

/// One approval request through AGT's client: prints the request's id, then the decision as
/// AGT returned it, then whether the verifier refuses the same answer for another request.
const SCRIPT: &str = r#"
import json, sys
from datetime import datetime, timedelta, timezone
sys.path.insert(0, sys.argv[1])
from agentmesh.governance.approval_protocol.models import ApprovalRequest
from agentmesh.governance.approval_webhook import VersionedWebhookApproval
from agt_verifier import make_verifier

url, issuer, credential = sys.argv[2], sys.argv[3], sys.argv[4]
def request():
    return ApprovalRequest(
        policy_decision_id="pd_" + "1" * 32,
        action_digest="sha256:" + "ab" * 32,
        agent_id="*",
        operation="tool.invoke",
        policy_version="1.0",
        approval_chain_id="sponsor-approval",
        approval_chain_version="1",
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=60),
        subject_id="user:bob@contoso.example",
        target_resource="ledger://contoso/accounts/ACME-0042",
    )
verifier = make_verifier(url.split("/v1/")[0], issuer=issuer)
seen = {}
def keep(body, req):
    seen["body"] = body
    return verifier(body, req)
transport = VersionedWebhookApproval(
    url, timeout_seconds=30, headers={"Authorization": "Bearer " + credential},
    response_verifier=keep,
)
req = request()
print(req.approval_request_id, flush=True)
decision = transport.request_decision(req)
print(json.dumps({"approved": decision.approved, "approver": decision.approver,
                  "reason": decision.reason}), flush=True)
if decision.approved:
    try:
        other = verifier(seen["body"], request())
        print("rebound:" + str(other), flush=True)
    except ValueError as e:
        print("refused:" + str(e), flush=True)
"#;

fn python() -> String {
    std::env::var("AGT_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether this machine's Python has AGT's client and `cryptography`.
async fn has_agt() -> bool {
    tokio::process::Command::new(python())
        .args([
            "-W",
            "ignore",
            "-c",
            "import agentmesh.governance.approval_webhook, cryptography",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Runs the script, lets `decide` answer the request it made, and returns what it printed
/// after the id.
async fn through_agt(decision: Decision, why: &str) -> (Vec<String>, String) {
    let (settings, credential) = with_integration();
    let (server, _dir) = start_real_clock(settings).await;
    let client = ApiClient::new(&server.base_url()).expect("client");
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
    let url = format!("{}/v1/agt/approvals", server.base_url());
    let mut child = tokio::process::Command::new(python())
        .args(["-W", "ignore", "-c", SCRIPT, assets, &url])
        .args([server.state.issuer.as_str(), credential.as_str()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let id = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the script prints the id")
        .expect("read")
        .expect("a line");
    // Held: the sponsor sees it, then decides.
    for _ in 0..500 {
        if alice.get_action(&id).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alice
        .decide_action(
            &id,
            &ActionDecisionBody {
                decision,
                justification: why.into(),
            },
        )
        .await
        .expect("decided");
    let mut out = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the script ends")
    {
        out.push(line);
    }
    let status = child.wait().await.expect("exit");
    assert!(status.success(), "{out:?}");
    (out, alice.me().await.expect("me").sub)
}

#[tokio::test]
async fn agts_own_client_gets_a_verified_approval_and_a_denial() {
    if !has_agt().await {
        // Where CI set a Python up for this test, its absence is a failure, not a skip.
        assert!(
            std::env::var_os("AGT_PYTHON").is_none(),
            "AGT_PYTHON is set but cannot import AGT's client and cryptography"
        );
        return crate::conformance::skipped(
            "agt_python",
            "no Python with agent-governance-toolkit-core here (set AGT_PYTHON; .ci/run does)",
        );
    }
    let (approved, alice) = through_agt(Decision::Approve, "checked the ledger").await;
    let decision: serde_json::Value = serde_json::from_str(&approved[0]).expect("JSON");
    assert_eq!(decision["approved"], true, "{approved:?}");
    assert_eq!(
        decision["approver"], alice,
        "AGT takes the verified sub, not the body's approver"
    );
    assert_eq!(decision["reason"], "checked the ledger");
    assert!(
        approved[1].starts_with("refused:approval_request_id does not match"),
        "the assertion does not approve another request: {approved:?}"
    );

    let (denied, _) = through_agt(Decision::Deny, "not during the close").await;
    let decision: serde_json::Value = serde_json::from_str(&denied[0]).expect("JSON");
    assert_eq!(decision["approved"], false, "{denied:?}");
    assert_eq!(decision["approver"], "alice");
    assert_eq!(decision["reason"], "not during the close");
}
