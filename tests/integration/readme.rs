//! The README's walk-through ("Try a standalone server by hand"), taken from the README itself
//! and run line by line as a newcomer would, with the binaries this build made: a sponsor added
//! on the command line, a real server, a device sign-in (the browser step done over HTTP), an
//! agent registered, its token, a request, the sponsor's approval while the agent waits, and
//! the fleet. Then the exit codes the README's table documents, each reproduced. A command,
//! flag, key or exit code the README names that stops working fails this test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sponsor_console::client::ApiClient;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::common::{PASSWORD, browser};

const README: &str = include_str!("../../README.md");
const WALK_THROUGH: &str = "### Try a standalone server by hand";

/// The first ```sh block after `heading`, as commands: comments dropped, continued lines
/// joined.
fn shell_block(heading: &str) -> Vec<String> {
    let start = README.find(heading).expect("the README has the section");
    let block = README[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the section has a sh block");
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let line = line.split("  #").next().unwrap_or_default().trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending).trim().to_owned();
        if !command.is_empty() && !command.starts_with('#') {
            commands.push(command);
        }
    }
    commands
}

/// The README's table of exit codes: code → meaning.
fn exit_codes() -> HashMap<i32, String> {
    let start = README
        .find("The headless sub-commands exit with a code")
        .expect("the README documents exit codes");
    README[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells.get(1)?.parse().ok()?, (*cells.get(2)?).to_owned()))
        })
        .collect()
}

/// A sandbox like a newcomer's machine: its own XDG directories, working directory and port.
struct Sandbox {
    dir: tempfile::TempDir,
    bin: PathBuf,
    server: String,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_sponsor-console"))
            .parent()
            .unwrap()
            .to_owned();
        // The README's server listens on 127.0.0.1:7070; here on a free port, set as the
        // README's configuration section says (server.toml and GOVERNANCE_SERVER).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config/sponsor-console");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("server.toml"),
            format!("[server]\nbind = \"127.0.0.1:{port}\"\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Self {
            dir,
            bin,
            server: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `sh -c command` in the sandbox, with `$B` naming this build's binaries.
    fn sh(&self, command: &str) -> Command {
        let root = self.dir.path();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", command])
            .current_dir(root.join("work"))
            .env("B", &self.bin)
            .env("GOVERNANCE_SERVER", &self.server)
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_STATE_HOME", root.join("state"))
            .env("RUST_LOG", "warn")
            .env_remove("SPONSOR_CONSOLE_STATE_DIR")
            .env_remove("GOVERNANCE_CONFIG")
            .env_remove("GOVERNANCE_DATABASE")
            .env_remove("SPONSOR_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `command` to its end; `Err` carries what it printed when it did not exit 0.
    async fn run(&self, command: &str, stdin: Option<&str>) -> (i32, String, String) {
        let mut cmd = self.sh(command);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(text.as_bytes()).await.unwrap();
            drop(input);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{command}: still running after 60 s"))
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Sends SIGINT (Ctrl-C) to a child.
async fn interrupt(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_through_runs_as_written_and_the_exit_codes_hold() {
    let commands = shell_block(WALK_THROUGH);
    assert!(commands.len() >= 10, "{commands:?}");
    let sandbox = Sandbox::new();
    let mut server: Option<Child> = None;
    let mut waiting: Option<Child> = None;
    let mut request_id: Option<String> = None;
    let mut ran = Vec::new();

    for command in &commands {
        // The test's own build stands in for `cargo build --release` and `B=target/release`.
        if command.starts_with("cargo build") || command.starts_with("B=") {
            continue;
        }
        let command = match &request_id {
            Some(id) => command.replace("req_…", id),
            None => command.clone(),
        };
        assert!(!command.contains('…'), "a placeholder left in {command}");
        if command.contains("agent-cli wait") {
            // It blocks until the sponsor decides (in the background, or another terminal):
            // the next commands.
            let foreground = command.trim_end_matches('&');
            waiting = Some(sandbox.sh(&format!("exec {foreground}")).spawn().unwrap());
        } else if let Some(background) = command.strip_suffix('&') {
            assert!(background.contains("serve"), "{command}");
            let mut child = sandbox.sh(&format!("exec {background}")).spawn().unwrap();
            let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
            loop {
                let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                    .await
                    .expect("the server starts within 30 s")
                    .unwrap()
                    .expect("the server printed where it listens");
                if line.starts_with("governance-server listening on ") {
                    assert!(line.contains(&sandbox.server), "{line}");
                    break;
                }
            }
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            server = Some(child);
        } else if command.ends_with("sponsor-console login") {
            // The human's part: open the URL, enter the code, sign in, approve.
            let mut child = sandbox.sh(&command).spawn().unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let code = loop {
                let line = lines.next_line().await.unwrap().expect("a sign-in code");
                if let Some(code) = line.strip_prefix("and enter the code ") {
                    break code.trim().to_owned();
                }
            };
            let client = ApiClient::new(&sandbox.server).unwrap();
            let outcome = browser(&client, &code, "alice", PASSWORD, "approve").await;
            assert_eq!(outcome.status, reqwest::StatusCode::OK, "{}", outcome.body);
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("login ends once approved")
                .unwrap();
            assert!(status.success(), "{command}: {status}");
        } else if command.contains("agent-cli fleet") {
            let mut child = sandbox.sh(&format!("exec {command}")).spawn().unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(child.try_wait().unwrap().is_none(), "{command} ended early");
            interrupt(&child).await;
            let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
                .await
                .expect("Ctrl-C stops the fleet")
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            let stdin = command
                .contains("sponsors add")
                .then(|| format!("{PASSWORD}\n"));
            let (code, stdout, stderr) = sandbox.run(&command, stdin.as_deref()).await;
            assert_eq!(code, 0, "{command}\nstdout: {stdout}\nstderr: {stderr}");
            if command.contains("agent-cli request") {
                let request: serde_json::Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("{command} prints the request as JSON: {e}"));
                request_id = Some(request["id"].as_str().unwrap().to_owned());
            }
            if command.contains("sponsor-console approve") {
                // The agent that waited hears of it and exits 0 with the decision.
                let child = waiting.take().expect("an agent waits for the decision");
                let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
                    .await
                    .expect("wait ends once the request is decided")
                    .unwrap();
                let printed = String::from_utf8_lossy(&out.stdout);
                assert_eq!(out.status.code(), Some(0), "wait: {printed}");
                assert!(printed.contains("approved"), "wait: {printed}");
            }
            if command.contains("agent-cli use") {
                assert!(stdout.contains("send:email:vendors"), "{stdout}");
            }
        }
        ran.push(command);
    }
    assert!(
        waiting.is_none(),
        "nobody decided what the agent waited for"
    );
    let id = request_id.expect("the walk-through made a request");

    // The exit codes, as the README's table says.
    let table = exit_codes();
    let expect = |code: i32, says: &str, out: (i32, String, String), what: &str| {
        assert!(
            table.get(&code).is_some_and(|m| m.contains(says)),
            "the README's exit code {code} should say {says:?}: {table:?}"
        );
        assert_eq!(out.0, code, "{what}: {}", out.2);
    };
    let again = format!("$B/sponsor-console approve {id} --for 30m --reason again");
    expect(
        5,
        "already decided",
        sandbox.run(&again, None).await,
        &again,
    );
    let bad = format!("$B/sponsor-console approve {id} --for soon --reason x");
    expect(2, "bad usage", sandbox.run(&bad, None).await, &bad);
    let unknown = "$B/sponsor-console suspend did:mesh:00000000000000000000000000000000 --reason x";
    expect(4, "not found", sandbox.run(unknown, None).await, unknown);
    let signed_out = "XDG_STATE_HOME=$PWD/elsewhere $B/sponsor-console whoami";
    expect(
        3,
        "not signed in",
        sandbox.run(signed_out, None).await,
        signed_out,
    );
    expect(
        0,
        "done",
        sandbox.run("$B/sponsor-console audit verify", None).await,
        "audit verify",
    );

    let mut server = server.expect("the walk-through starts a server");
    interrupt(&server).await;
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("the server stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(ran.len() >= 10, "{ran:?}");
}

/// CI runs the README's test command (with `--locked`, and snapshots never rewritten), and the
/// README names the command that runs the console.
#[test]
fn ci_runs_the_readmes_test_command() {
    let two = shell_block("## The two commands");
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!(two[0], "cargo run --release");
    let ci = include_str!("../../.ci/run");
    let ran = ci
        .lines()
        .map(|l| l.replace("INSTA_UPDATE=no ", "").replace("--locked ", ""))
        .any(|l| l.trim() == two[1]);
    assert!(ran, ".ci/run does not run {:?}", two[1]);
}
