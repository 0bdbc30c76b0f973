//! The real `sponsor-console` binary in a pseudo-terminal against a test server: sign in with
//! the device flow (the browser step posted over HTTP), open a request, approve it for 1 h
//! with a justification and suspend its agent, counting the keys each takes — then both are
//! checked on the server; and the console loading
//! more pending requests than a page holds.

use std::io::{Read, Write};

use futures::StreamExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use sponsor_console::client::ApiClient;
use sponsor_console::client::agent_key::AgentKey;

use crate::common::{PASSWORD, browser, elevation, settings, sign_in, start_real_clock};

pub(crate) struct Screen {
    parser: vt100::Parser,
    rx: mpsc::Receiver<Vec<u8>>,
}

impl Screen {
    pub(crate) fn text(&self) -> String {
        self.parser.screen().contents()
    }

    /// Feeds output until `pred` holds on the screen text (or 60 s pass: a hung console).
    pub(crate) fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if pred(&text) {
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(bytes) => self.parser.process(&bytes),
                Err(_) => panic!("timed out waiting for {what}; screen:\n{text}"),
            }
        }
    }
}

/// The real console in a 40×120 pseudo-terminal against `base`, with its state in `dir`.
pub(crate) fn spawn_console(
    base: &str,
    dir: &std::path::Path,
) -> (
    Box<dyn portable_pty::Child + Send + Sync>,
    Screen,
    Box<dyn Write + Send>,
) {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_sponsor-console"));
    cmd.args(["--server", base]);
    cmd.env("SPONSOR_CONSOLE_STATE_DIR", dir.join("state"));
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("GOVERNANCE_SERVER");
    let child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let writer = pty.master.take_writer().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let screen = Screen {
        parser: vt100::Parser::new(40, 120, 0),
        rx,
    };
    (child, screen, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_open_approve_for_an_hour_in_a_real_terminal() {
    let mut s = settings();
    s.device.interval_seconds = 1;
    let (server, dir) = start_real_clock(s).await;
    let base = server.base_url();
    let client = ApiClient::new(&base).unwrap();
    // An agent of alice's asks for something before she opens the console.
    let alice = client.with_token(sign_in(&client, "alice").await.access_token);
    let key = AgentKey::generate();
    let agent = alice
        .register_agent(
            &sponsor_console::protocol::agents::RegisterAgent {
                public_key: key.public_key(),
                name: "ledger-bot".into(),
                capabilities: vec!["read:erp:invoices".into()],
                entra_object_id: None,
                model: Some("claude-sonnet-4".into()),
                runtime: None,
            },
            None,
        )
        .await
        .unwrap();
    let assertion = key
        .assertion(
            &client.token_endpoint(),
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
        )
        .unwrap();
    let bot = client.with_token(
        client
            .client_credentials(&assertion, None)
            .await
            .unwrap()
            .access_token,
    );
    let asked = bot
        .request_elevation(&elevation(&["write:erp:invoices"], 7200), None)
        .await
        .unwrap();

    let (mut child, mut screen, mut writer) = spawn_console(&base, dir.path());
    let mut keys = |bytes: &[u8]| {
        writer.write_all(bytes).unwrap();
        writer.flush().unwrap();
    };

    // 1. The device flow: the console shows the URL and code; the human approves in a browser.
    let text = screen.wait_for("the user code", |t| t.contains("and enter the code "));
    let code = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("and enter the code "))
        .unwrap()
        .trim()
        .to_owned();
    let outcome = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(browser(&client, &code, "alice", PASSWORD, "approve"))
    });
    assert!(outcome.body.contains("Device approved"));

    // 2. The inbox, live, with the request.
    screen.wait_for("the inbox", |t| {
        t.contains("Inbox (1)") && t.contains("ledger-bot") && t.contains("● live")
    });
    // 3. Open it: the detail shows the justification.
    keys(b"\r");
    screen.wait_for("the detail", |t| {
        t.contains("justification") && t.contains("quarterly close")
    });
    // 4. Approve for one hour, counting keys (the reason's characters aside). The dialog
    //    preselects what was asked (2h, within the policy's 4h); `2` picks the 1h preset;
    //    the reason; Enter goes to Confirm; Enter confirms.
    let mut count = 0;
    keys(b"a");
    count += 1;
    screen.wait_for("the decide dialog", |t| {
        t.contains("Approve the request of ledger-bot")
            && t.contains("(custom)")
            && t.contains("custom: 2h")
    });
    keys(b"2");
    count += 1;
    screen.wait_for("1h chosen", |t| t.contains("(1h)"));
    keys(b"checked FIN-1234 with finance");
    keys(b"\r");
    keys(b"\r");
    count += 2;
    screen.wait_for("the confirmation", |t| t.contains("ledger-bot approved"));
    assert!(count <= 5, "approving took {count} keys plus the reason");

    // 5. On the server: a grant of exactly that, for exactly one hour.
    let grants = alice.grants(&Default::default()).await.unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].agent_did, agent.did);
    assert_eq!(grants[0].capabilities, vec!["write:erp:invoices"]);
    assert_eq!(
        (grants[0].not_after - grants[0].not_before).num_seconds(),
        3600
    );
    let decided = alice.get_request(&asked.id).await.unwrap();
    assert_eq!(
        decided.approvals[0].justification,
        "checked FIN-1234 with finance"
    );
    assert_eq!(decided.approvals[0].approver_username, "alice");

    // 6. Suspend it from the agents screen, counting keys once it is selected: `s`, the
    //    reason, Enter (to the security box), Enter (to Confirm), Enter (confirm).
    keys(b"2");
    screen.wait_for("the agents", |t| {
        t.contains("ledger-bot") && t.contains("active")
    });
    let mut count = 0;
    keys(b"s");
    count += 1;
    screen.wait_for("the suspend dialog", |t| t.contains("Reason"));
    keys(b"invoice fraud alert 77");
    keys(b"\r\r\r");
    count += 3;
    screen.wait_for("the suspension", |t| t.contains("SUSPENDED"));
    assert!(count <= 4, "suspending took {count} keys plus the reason");
    assert_eq!(
        alice.agent(&agent.did).await.unwrap().status,
        sponsor_console::protocol::agents::AgentStatus::Suspended
    );

    // 7. q quits and the terminal is restored.
    keys(b"q");
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert!(status.success());
    server.shutdown().await.unwrap();
}

/// More pending requests than one page holds: the real console shows the first page at once
/// with the server's count, keeps loading the rest, and ends with every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_loads_every_pending_request_page_by_page() {
    const PENDING: usize = 1_100; // three pages of 500
    let mut s = settings();
    let mut policy = sponsor_console::domain::policy::Policy::shipped().unwrap();
    policy.requests.fatigue_limit = 100_000;
    s.policy = Some(policy);
    let (server, dir) = start_real_clock(s).await;
    let base = server.base_url();
    let client = ApiClient::new(&base).unwrap();
    let tokens = sign_in(&client, "alice").await;
    let alice = client.with_token(&tokens.access_token);
    let key = AgentKey::generate();
    alice
        .register_agent(
            &sponsor_console::protocol::agents::RegisterAgent {
                public_key: key.public_key(),
                name: "crawler".into(),
                capabilities: vec![],
                entra_object_id: None,
                model: None,
                runtime: None,
            },
            None,
        )
        .await
        .unwrap();
    let assertion = key
        .assertion(
            &client.token_endpoint(),
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
        )
        .unwrap();
    let bot = client.with_token(
        client
            .client_credentials(&assertion, None)
            .await
            .unwrap()
            .access_token,
    );
    let submitted: Vec<_> = futures::stream::iter(0..PENDING)
        .map(|i| {
            let bot = bot.clone();
            async move {
                bot.request_elevation(&elevation(&[&format!("read:crm:{i}")], 600), None)
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(submitted.len(), PENDING);
    crate::common::save_session(&dir.path().join("state"), &base, &tokens, "alice");

    let (mut child, mut screen, mut writer) = spawn_console(&base, dir.path());
    screen.wait_for("every pending request", |t| {
        t.contains(&format!("Inbox ({PENDING})"))
            && t.contains(&format!("{PENDING} pending"))
            && !t.contains("loading")
    });
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert!(status.success());
    server.shutdown().await.unwrap();
}
