//! The AGT approval webhook with many calls held: decision → webhook answer delivered, and the
//! server's memory per held call.
//!
//! The server runs in this process (real clock, SQLite, an integration answered for by the
//! bench sponsor). The AGT side runs in a child process (this binary again, with `--hold`), so
//! its sockets and tasks stay out of the server's memory: it keeps `--held` calls open
//! (urllib's headers, `Connection: close`), and each time one is answered it prints the
//! arrival time and posts a fresh request in its place, so the count held stays put. Once all
//! are stored, the bench reads its resident memory again (the difference over `--held` is the
//! memory per held call), then decides `--decisions` of them one after another, approve and
//! deny alternately, and times each from sending the decision to the child receiving the
//! answer (wall clock, the same machine).
//!
//! Each run is a process of its own. Run: `cargo bench --bench agt` (options: `-- --held 1000
//! --decisions 300 --runs 3`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sponsor_console::protocol::actions::{ActionDecisionBody, ActionQuery};
use sponsor_console::protocol::requests::Decision;
use sponsor_console::settings::{AgtIntegration, ServerSettings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

mod support;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(url) = support::text_arg("--hold") {
        let credential = support::text_arg("--credential").unwrap_or_default();
        return runtime.block_on(hold(url, credential, support::arg("--held", 1000)));
    }
    let (held, decisions) = (
        support::arg("--held", 1000),
        support::arg("--decisions", 300),
    );
    if std::env::args().any(|a| a == "--one-run") {
        return runtime.block_on(one_run(held, decisions));
    }
    runtime.block_on(run(held, decisions))
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// A schema 1.0 approval request as AGT's client sends it, for id `n`, expiring in an hour.
fn body(n: u64) -> Vec<u8> {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let presented = json!({
        "approval_request_id": format!("ar_{n:032x}"),
        "policy_decision_id": format!("pd_{n:032x}"),
        "action_digest": format!("sha256:{}", hex::encode(Sha256::digest(n.to_be_bytes()))),
        "agent_id": "*",
        "subject_id": "user:bob@contoso.example",
        "operation": "tool.invoke",
        "target_resource": "ledger://contoso/accounts/ACME-0042",
        "policy_version": "1.0",
        "approval_chain_id": "sponsor-approval",
        "approval_chain_version": "1",
        "expires_at": expires,
    });
    let digest = Sha256::digest(serde_jcs::to_vec(&presented).unwrap_or_default());
    let mut object = json!({
        "schema_version": "1.0",
        "type": "approval_request",
        "input_digest": format!("sha256:{}", hex::encode(digest)),
    });
    if let (Some(o), Value::Object(p)) = (object.as_object_mut(), presented) {
        o.extend(p);
    }
    serde_json::to_vec(&object).unwrap_or_default()
}

/// The AGT side: keeps `held` calls open; prints `answer <id> <unix nanos>` for each answer
/// and posts a new request in its place.
async fn hold(url: String, credential: String, held: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    for slot in 0..held {
        let (http, url, credential, tx) =
            (http.clone(), url.clone(), credential.clone(), tx.clone());
        tokio::spawn(async move {
            let mut n = slot as u64;
            loop {
                let answer = http
                    .post(&url)
                    .header("Accept-Encoding", "identity")
                    .header("User-Agent", "Python-urllib/3.11")
                    .header("Content-Type", "application/json")
                    .header("Connection", "close")
                    .bearer_auth(&credential)
                    .body(body(n))
                    .send()
                    .await;
                let at = unix_nanos();
                if let Ok(response) = answer {
                    let ok = response.status().is_success();
                    let _ = response.bytes().await;
                    if ok {
                        let _ = tx.send(format!("answer ar_{n:032x} {at}"));
                    }
                }
                n += held as u64;
            }
        });
    }
    drop(tx);
    while let Some(line) = rx.recv().await {
        println!("{line}");
    }
    Ok(())
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Every run in a process of its own (this binary with `--one-run`), so memory freed by one
/// run cannot hide the next one's growth.
async fn run(held: usize, decisions: usize) -> anyhow::Result<()> {
    let mut runs = support::Runs::from_args();
    for r in 0..runs.n() {
        runs.begin(r + 1);
        let out = tokio::process::Command::new(std::env::current_exe()?)
            .args(["--one-run", "--held", &held.to_string()])
            .args(["--decisions", &decisions.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .await?;
        anyhow::ensure!(out.status.success(), "run {} failed", r + 1);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            if let ["figure", name, unit, decimals, value] = fields.as_slice() {
                let unit = match *unit {
                    "s" => "s",
                    "ms" => "ms",
                    "KiB" => "KiB",
                    _ => "",
                };
                runs.record(name, unit, decimals.parse()?, value.parse()?);
            }
        }
    }
    runs.summary();
    Ok(())
}

/// One run: prints each figure as `figure<TAB>name<TAB>unit<TAB>decimals<TAB>value`.
async fn one_run(held: usize, decisions: usize) -> anyhow::Result<()> {
    let figure = |name: &str, unit: &str, decimals: usize, value: f64| {
        println!("figure\t{name}\t{unit}\t{decimals}\t{value}");
    };
    let credential = sponsor_console::settings::new_credential();
    let mut settings = ServerSettings::default();
    settings.agt.integrations.push(AgtIntegration {
        name: "bench".into(),
        sponsor: "bench".into(),
        credential_sha256: hex::encode(Sha256::digest(credential.as_bytes())),
    });
    let bench = support::start_server(settings).await?;
    let sponsor = bench.sponsor_client.clone();
    let before = rss();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--hold",
            &format!("{}/v1/agt/approvals", bench.server.base_url()),
        ])
        .args(["--credential", &credential, "--held", &held.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<(String, u128)>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut parts = line.split(' ').skip(1);
            if let (Some(id), Some(at)) = (parts.next(), parts.next().and_then(|a| a.parse().ok()))
            {
                let _ = arrived_tx.send((id.to_owned(), at));
            }
        }
    });
    let started = std::time::Instant::now();
    let ids = loop {
        let page = sponsor
            .action_page(&ActionQuery::pending(decisions as u32, None))
            .await?;
        if page.total >= Some(held as u64) && bench.server.state.held.len() >= held {
            break page.actions.into_iter().map(|a| a.id).collect::<Vec<_>>();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the calls were not all held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let filled = started.elapsed();
    // Let the allocator settle, then read again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss();
    let mut early: HashMap<String, u128> = HashMap::new();
    let mut samples = Vec::with_capacity(ids.len());
    for (k, id) in ids.iter().enumerate() {
        let decision = if k % 2 == 0 {
            Decision::Approve
        } else {
            Decision::Deny
        };
        let sent = unix_nanos();
        sponsor
            .decide_action(
                id,
                &ActionDecisionBody {
                    decision,
                    justification: "bench".into(),
                },
            )
            .await?;
        let at = loop {
            if let Some(at) = early.remove(id) {
                break at;
            }
            let (got, at) = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the holder stopped"))?;
            if &got == id {
                break at;
            }
            early.insert(got, at);
        };
        samples.push(Duration::from_nanos(at.saturating_sub(sent) as u64));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let summary = support::summarize(samples, filled);
    figure("held calls", "", 0, bench.server.state.held.len() as f64);
    figure("time to hold them all", "s", 2, filled.as_secs_f64());
    figure(
        "decision -> answer: median",
        "ms",
        3,
        summary.median.as_secs_f64() * 1e3,
    );
    figure(
        "decision -> answer: p99",
        "ms",
        3,
        summary.p99.as_secs_f64() * 1e3,
    );
    figure(
        "server memory per held call",
        "KiB",
        1,
        during.saturating_sub(before) as f64 / held as f64 / 1024.0,
    );
    child.kill().await.ok();
    drop(bench);
    Ok(())
}
