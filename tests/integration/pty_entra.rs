//! The real console in a pseudo-terminal with `[entra]` pointing at the Entra emulator and a
//! governance server that trusts it: the PIM approval shows in the one inbox beside the
//! server's requests, my own request has no approve, and approving a role from the TUI reaches
//! Graph's step (the emulator records the PATCH and its justification) and the audit chain.

use std::io::Write;
use std::process::Stdio;

use entra_emulator::{Emulator, EmulatorConfig, RequestKind, RequestSeed, demo};
use sponsor_console::client::ApiClient;
use sponsor_console::client::session::STATE_DIR_ENV;

use crate::common::entra::{api_scope, console_config, console_toml, trusting, write_ca};
use crate::common::{settings, start_real_clock};
use crate::pty::spawn_console;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_an_entra_role_request_from_the_inbox() {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: Some(demo::ADELE.to_owned()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(&emu, dir.path());
    let (server, _server_dir) = start_real_clock(trusting(settings(), &emu, &ca_file)).await;
    let base = server.base_url();
    // The console's config where the console looks for it, and one Entra sign-in (headless).
    let config_dir = dir.path().join("config").join("sponsor-console");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("console.toml");
    std::fs::write(&config, console_toml(&console_config(&emu, &ca_file))).unwrap();
    let login = tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"))
        .args(["login", "--server", &base, "--config"])
        .arg(&config)
        .env(STATE_DIR_ENV, dir.path().join("state"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(
        login.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let role = emu
        .seed(
            RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN)
                .justification("Rotate the break-glass accounts (CHG-4711)"),
        )
        .unwrap();
    let own = emu
        .seed(
            RequestSeed::role(demo::ADELE, demo::ROLE_USER_ADMIN)
                .approvers(&[demo::ADELE, demo::ALEX])
                .justification("my own activation"),
        )
        .unwrap();

    let (mut child, mut screen, mut keys) = spawn_console(&base, dir.path());
    let mut send = |bytes: &[u8]| {
        keys.write_all(bytes).unwrap();
        keys.flush().unwrap();
    };
    let text = screen.wait_for("the Entra rows", |t| {
        t.contains("Megan Bowen") && t.contains("Entra synced")
    });
    for needle in ["SOURCE", "Entra role", "User Administrato", "yours"] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }

    // My own request: no approve hint, and approve refuses before Graph is asked.
    send(b"/");
    send(own.as_bytes());
    send(b"\r");
    screen.wait_for("my own row alone", |t| {
        t.contains("pending 1 ") && t.contains("yours")
    });
    let hints = screen.text();
    assert!(
        !hints.contains(" approve "),
        "no approve key on my own:\n{hints}"
    );
    send(b"a");
    screen.wait_for("the refusal", |t| t.contains("your own request"));

    // Megan's role: a, the justification, Enter, Enter.
    // Esc in the filter clears it (alone: an escape followed at once by a key reads as alt).
    send(b"/");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send(b"\x1b");
    screen.wait_for("the filter cleared", |t| t.contains("pending 2 "));
    send(b"/");
    send(role.as_bytes());
    send(b"\r");
    let row = screen.wait_for("Megan's row alone", |t| {
        t.contains("pending 1 ") && t.contains("Megan Bowen")
    });
    assert!(!row.contains("yours"), "{row}");
    send(b"a");
    let dialog = screen.wait_for("the decide dialog", |t| t.contains("Approve in Entra"));
    assert!(
        dialog.contains("Entra does not let an approver change it"),
        "{dialog}"
    );
    assert!(dialog.contains("until "), "the exact end:\n{dialog}");
    send(b"CHG-4711 checked from the console");
    send(b"\r");
    send(b"\r");
    screen.wait_for("the decision", |t| t.contains("Approved in Entra"));

    let made = emu.decisions();
    let m = made.last().expect("the emulator recorded the PATCH");
    assert_eq!(
        (m.kind, m.review_result.as_str(), m.approval_id.as_str()),
        (RequestKind::Role, "Approve", role.as_str())
    );
    assert_eq!(m.justification, "CHG-4711 checked from the console");
    let adele = ApiClient::new(&base)
        .unwrap()
        .with_token(emu.access_token(demo::ADELE, &api_scope()).unwrap());
    let events = adele.audit_tail(20).await.unwrap();
    assert!(
        events.iter().any(|e| e.event.action == "entra.decided"
            && e.event.subject == format!("entra:directory_role:{role}")
            && e.event.details["graph_request_id"] == m.request_id.as_str()),
        "recorded in the audit chain"
    );
    send(b"q");
    let _ = child.wait();
}
