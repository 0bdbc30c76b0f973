//! The real `governance-server` binary's offline commands: `policy show` prints the policy
//! file layered over the shipped defaults (and names the key and the file it refuses), and
//! `sponsors add` / `hash-password` state the password rule in the prompt and the error.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Output, Stdio};

/// `governance-server ARGS` with its configuration from `dir` only, `stdin` on its input.
async fn server_cli(dir: &Path, args: &[&str], stdin: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_governance-server"))
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env_remove("GOVERNANCE_CONFIG")
        .env_remove("GOVERNANCE_DATABASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn shipped() -> toml::Table {
    toml::from_str(sponsor_console::domain::policy::SHIPPED).unwrap()
}

#[tokio::test]
async fn policy_show_prints_a_partial_file_layered_over_the_shipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("partial.toml");
    std::fs::write(&policy, "[requests]\nfatigue_limit = 10\n").unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!("[server]\npolicy = {:?}\n", policy.to_str().unwrap()),
    )
    .unwrap();
    let out = server_cli(
        dir.path(),
        &["--config", config.to_str().unwrap(), "policy", "show"],
        "",
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "# The policy in force: {} layered over the shipped defaults.",
            policy.display()
        )),
        "{text}"
    );
    let shown: toml::Table = toml::from_str(&text).unwrap();
    let mut expected = shipped();
    expected["requests"]["fatigue_limit"] = toml::Value::Integer(10);
    assert_eq!(shown, expected);

    // The user's policy.toml, without [server] policy, is layered the same way.
    let user = dir.path().join("config/sponsor-console");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("policy.toml"), "[trust]\ndenied = -40\n").unwrap();
    let out = server_cli(dir.path(), &["policy", "show"], "").await;
    assert!(out.status.success(), "{out:?}");
    let shown: toml::Table = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let mut expected = shipped();
    expected["trust"]["denied"] = toml::Value::Integer(-40);
    assert_eq!(shown, expected);
}

#[tokio::test]
async fn an_unknown_policy_key_is_refused_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("config/sponsor-console");
    std::fs::create_dir_all(&user).unwrap();
    let policy = user.join("policy.toml");
    std::fs::write(&policy, "[requests]\nfatigue_limt = 10\n").unwrap();
    let out = server_cli(dir.path(), &["policy", "show"], "").await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "{}: requests.fatigue_limt: unknown field `fatigue_limt`",
            policy.display()
        )),
        "{said}"
    );
}

#[tokio::test]
async fn a_short_password_is_refused_stating_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db = db.to_str().unwrap();
    let help = server_cli(dir.path(), &["sponsors", "add", "--help"], "").await;
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("at least 12 characters"),
        "{help:?}"
    );
    let args = [
        "--database",
        db,
        "sponsors",
        "add",
        "bob",
        "--password-stdin",
    ];
    let out = server_cli(dir.path(), &args, "hunter2\n").await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "governance-server: the password has 7 characters; a sponsor's password needs at least \
         12 characters, at most 1024 bytes"
    );
    let out = server_cli(dir.path(), &args, "twelve chars\n").await;
    assert!(out.status.success(), "{out:?}");
}

/// At a terminal the prompt states the rule, and a short password is refused before it is
/// asked for again.
#[test]
fn the_password_prompt_states_the_rule() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_governance-server"));
    cmd.args(["sponsors", "hash-password"]);
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut writer = pty.master.take_writer().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !seen.contains(what) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("timed out waiting for {what:?}; saw {seen:?}"),
            }
        }
    };
    wait_for("Password (at least 12 characters, at most 1024 bytes): ");
    writer.write_all(b"short\r").unwrap();
    wait_for("the password has 5 characters; a sponsor's password needs at least 12");
    assert!(!seen.contains("Again"), "{seen}");
    assert!(!child.wait().unwrap().success());
}
