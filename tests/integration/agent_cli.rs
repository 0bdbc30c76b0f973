//! The real `agent-cli` binary: keygen → register (with a sponsor's token) → token → introspect.

use std::process::{Output, Stdio};

use crate::common::{settings, sign_in, start_real_clock};

#[tokio::test]
async fn keygen_register_token_introspect() {
    let (server, dir) = start_real_clock(settings()).await;
    let base = server.base_url();
    let client = sponsor_console::client::ApiClient::new(&base).unwrap();
    let sponsor_token = sign_in(&client, "alice").await.access_token;
    let key = dir.path().join("bot.pem");
    let key = key.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = agent_cli(&base, &sponsor_token, &dir.path().join("state"));
        cmd.args(args);
        cmd
    };
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let made = ok(&run(&["keygen", "--out", key]).output().await.unwrap());
    let did = made
        .lines()
        .find_map(|l| l.strip_prefix("did:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(did.starts_with("did:mesh:"), "{made}");
    // keygen never overwrites a key.
    assert!(
        !run(&["keygen", "--out", key])
            .output()
            .await
            .unwrap()
            .status
            .success()
    );

    let registered = ok(&run(&[
        "register",
        "--key",
        key,
        "--name",
        "billing-bot",
        "--capability",
        "read:invoices",
        "--capability",
        "list:crm:*",
        "--model",
        "claude",
        "--runtime",
        "python",
    ])
    .output()
    .await
    .unwrap());
    let agent: serde_json::Value = serde_json::from_str(&registered).unwrap();
    assert_eq!(agent["did"], did.as_str());

    let tokens: serde_json::Value =
        serde_json::from_str(&ok(&run(&["token", "--key", key]).output().await.unwrap())).unwrap();
    assert_eq!(tokens["scope"], "list:crm:* read:invoices");
    assert_eq!(tokens["expires_in"], 900);

    let seen: serde_json::Value = serde_json::from_str(&ok(&run(&["introspect", "--key", key])
        .output()
        .await
        .unwrap()))
    .unwrap();
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], did.as_str());

    // Ask for more, wait for the human, use what was granted.
    let asked: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "request",
        "elevation",
        "--key",
        key,
        "--capability",
        "send:email:vendors",
        "--for",
        "30m",
        "--justification",
        "remittance advice for run 7",
        "--ticket",
        "FIN-7",
    ])
    .output()
    .await
    .unwrap()))
    .unwrap();
    assert_eq!(asked["status"], "pending");
    let id = asked["id"].as_str().unwrap().to_owned();
    let still = run(&["wait", "--key", key, &id, "--timeout", "0s"])
        .output()
        .await
        .unwrap();
    assert_eq!(still.status.code(), Some(3), "still pending");
    let alice = client.with_token(&sponsor_token);
    alice
        .decide(&id, &crate::common::approve(None, None))
        .await
        .unwrap();
    let waited: serde_json::Value =
        serde_json::from_str(&ok(&run(&["wait", "--key", key, &id, "--timeout", "10s"])
            .output()
            .await
            .unwrap()))
        .unwrap();
    assert_eq!(waited["status"], "approved");
    let used = ok(&run(&["use", "--key", key]).output().await.unwrap());
    assert!(
        used.contains("send:email:vendors") && used.contains("grant grt_"),
        "{used}"
    );
    assert!(
        used.contains("read:invoices") && used.contains("standing"),
        "{used}"
    );

    // A bad capability is refused with the server's explanation and a failing exit code.
    let refused = run(&["register", "--key", key, "--name", "x", "--capability", "*"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "bad input, as the README's table says"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_capability"));
    // A key the server does not know: refused authentication; a key file that is not there:
    // bad input; a request decided already: conflict.
    let stranger = dir.path().join("stranger.pem");
    let stranger = stranger.to_str().unwrap();
    ok(&run(&["keygen", "--out", stranger]).output().await.unwrap());
    let unknown = run(&["token", "--key", stranger]).output().await.unwrap();
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    let missing = run(&["token", "--key", "no-such.pem"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let late = run(&["cancel", "--key", key, &id, "--reason", "too late"])
        .output()
        .await
        .unwrap();
    assert_eq!(late.status.code(), Some(5), "{late:?}");
    server.shutdown().await.unwrap();
}

/// `agent-cli` against `base` with a sponsor's token and its state in `state`.
pub fn agent_cli(base: &str, token: &str, state: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-cli"));
    cmd.args(["--server", base])
        .env("SPONSOR_TOKEN", token)
        .env(sponsor_console::client::session::STATE_DIR_ENV, state)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn fleet_reuses_its_agents_run_after_run() {
    let (server, dir) = start_real_clock(settings()).await;
    let base = server.base_url();
    let client = sponsor_console::client::ApiClient::new(&base).unwrap();
    let token = sign_in(&client, "alice").await.access_token;
    let alice = client.with_token(&token);
    let state = dir.path().join("state");
    let fleet = || async {
        let out = agent_cli(&base, &token, &state)
            .args(["fleet", "--agents", "10", "--count", "2", "--rate", "100"])
            .args(["--delegation-share", "0"])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("errors 0"),
            "{stderr}"
        );
        stderr
    };
    // 25 agents per sponsor: without reuse the third run of ten would be refused.
    let first = fleet().await;
    assert!(
        first.contains("10 agents: 0 reused, 10 registered"),
        "{first}"
    );
    // Alice's agents, in DID order.
    let registered = || async {
        let mut dids: Vec<String> = alice
            .agents(false)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.did)
            .collect();
        dids.sort();
        dids
    };
    let dids = registered().await;
    for _ in 0..2 {
        let again = fleet().await;
        assert!(
            again.contains("10 agents: 10 reused, 0 registered"),
            "{again}"
        );
    }
    let now = registered().await;
    assert_eq!(now, dids, "the same ten agents");

    // One suspended is not reused: a replacement is registered beside the nine.
    alice.suspend(&dids[0], "test", false).await.unwrap();
    let after = fleet().await;
    assert!(
        after.contains("10 agents: 9 reused, 1 registered"),
        "{after}"
    );
    assert!(!after.contains(&dids[0]), "{after}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_and_wait_say_what_comes_next_on_stderr() {
    let (server, dir) = start_real_clock(settings()).await;
    let base = server.base_url();
    let client = sponsor_console::client::ApiClient::new(&base).unwrap();
    let token = sign_in(&client, "alice").await.access_token;
    let state = dir.path().join("state");
    let key = dir.path().join("bot.pem");
    let key = key.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = agent_cli(&base, &token, &state);
        cmd.args(args);
        cmd
    };
    for args in [
        &["keygen", "--out", key][..],
        &[
            "register",
            "--key",
            key,
            "--name",
            "bot",
            "--capability",
            "read:x",
        ],
    ] {
        let out = run(args).output().await.unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let asked = run(&[
        "request",
        "elevation",
        "--key",
        key,
        "--capability",
        "send:email:vendors",
        "--for",
        "30m",
        "--justification",
        "remittance advice",
    ])
    .output()
    .await
    .unwrap();
    assert!(asked.status.success(), "{asked:?}");
    // Stdout stays one JSON document, for scripts.
    let request: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    let id = request["id"].as_str().unwrap();
    let said = String::from_utf8_lossy(&asked.stderr);
    assert!(
        said.contains(&format!(
            "next: agent-cli --server {base} wait --key {key} {id}   (blocks until a sponsor decides"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "sponsor: sponsor-console --server {base} approve {id} --for 30m --reason"
        )),
        "{said}"
    );

    let waited = run(&["wait", "--key", key, id, "--timeout", "0s"])
        .output()
        .await
        .unwrap();
    assert_eq!(waited.status.code(), Some(3));
    let said = String::from_utf8_lossy(&waited.stderr);
    assert!(
        said.contains(&format!(
            "waiting up to 0s (--timeout) for a sponsor to decide {id}"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("{id} is still pending; wait again with")),
        "{said}"
    );
    serde_json::from_slice::<serde_json::Value>(&waited.stdout).unwrap();
    server.shutdown().await.unwrap();
}
