//! `sponsor-console login` against a real server, with the browser step done by posting the
//! verification form: through the library with a stepped clock, and through the real binary.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sponsor_console::client::login::{self, LoginError};
use sponsor_console::client::session::{STATE_DIR_ENV, SessionStore};
use sponsor_console::clock::SharedClock;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, oneshot};

use crate::common::{PASSWORD, TestServer, browser, settings, start_real_clock};

#[tokio::test]
async fn login_honours_slow_down_then_refreshes_and_logs_out() {
    let t = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SessionStore::at(dir.path());
    let clock: SharedClock = t.clock.clone();
    let approved = Arc::new(Notify::new());
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let (code_tx, code_rx) = oneshot::channel::<String>();

    let sleep = {
        let (approved, sleeps, manual) = (approved.clone(), sleeps.clone(), t.clock.clone());
        move |d: Duration| {
            let (approved, manual) = (approved.clone(), manual.clone());
            let n = {
                let mut s = sleeps.lock().unwrap();
                s.push(d);
                s.len()
            };
            async move {
                if n == 1 {
                    // Come back too early once: the server must answer slow_down.
                    manual.advance(chrono::Duration::seconds(1));
                } else {
                    approved.notified().await;
                    manual.advance(chrono::Duration::from_std(d).unwrap());
                }
            }
        }
    };
    let human = async {
        let code = code_rx.await.unwrap();
        let outcome = browser(&t.client, &code, "alice", PASSWORD, "approve").await;
        assert!(outcome.body.contains("Device approved"), "{}", outcome.body);
        approved.notify_one();
    };
    let signing_in = login::device_login(&t.client, clock.clone(), sleep, move |prompt| {
        assert!(prompt.verification_uri.ends_with("/device"));
        code_tx.send(prompt.user_code.clone()).unwrap();
        async {}
    });
    let (session, ()) = tokio::join!(signing_in, human);
    let session = session.unwrap();
    assert_eq!(
        *sleeps.lock().unwrap(),
        vec![Duration::from_secs(5), Duration::from_secs(10)],
        "polls at the interval, then 5 s slower after slow_down"
    );
    assert_eq!(session.username.as_deref(), Some("alice"));
    store.save(&session).unwrap();

    // Fresh: used as is.
    let current = login::current_session(&t.client, &store, &clock)
        .await
        .unwrap();
    assert_eq!(current.access_token, session.access_token);
    // Near expiry: refreshed, rotated and saved.
    t.advance(560);
    let renewed = login::current_session(&t.client, &store, &clock)
        .await
        .unwrap();
    assert_ne!(renewed.access_token, session.access_token);
    assert_ne!(renewed.refresh_token, session.refresh_token);
    assert_eq!(store.load(t.client.base()).unwrap(), Some(renewed.clone()));
    let me = t
        .client
        .with_token(&renewed.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.username.as_deref(), Some("alice"));

    // Logout revokes at the server and forgets locally.
    assert!(login::logout(&t.client, &store, &clock).await.unwrap());
    let sam = t.as_user("sam").await;
    assert!(!sam.introspect(&renewed.access_token).await.unwrap().active);
    let refused = t
        .client
        .refresh("sponsor-console", renewed.refresh_token.as_deref().unwrap())
        .await;
    assert!(refused.is_err());
    assert!(matches!(
        login::current_session(&t.client, &store, &clock).await,
        Err(LoginError::NotSignedIn(_))
    ));
}

#[tokio::test]
async fn a_denied_login_says_so() {
    let t = TestServer::start().await;
    let clock: SharedClock = t.clock.clone();
    let (code_tx, code_rx) = oneshot::channel::<String>();
    let denied = Arc::new(Notify::new());
    let sleep = {
        let (denied, manual) = (denied.clone(), t.clock.clone());
        move |d: Duration| {
            let (denied, manual) = (denied.clone(), manual.clone());
            async move {
                denied.notified().await;
                manual.advance(chrono::Duration::from_std(d).unwrap());
            }
        }
    };
    let human = async {
        let code = code_rx.await.unwrap();
        browser(&t.client, &code, "alice", PASSWORD, "deny").await;
        denied.notify_one();
    };
    let signing_in = login::device_login(&t.client, clock, sleep, move |p| {
        code_tx.send(p.user_code.clone()).unwrap();
        async {}
    });
    let (result, ()) = tokio::join!(signing_in, human);
    assert!(matches!(result, Err(LoginError::Denied)), "{result:?}");
}

/// The real binary against a server on the real clock (interval 1 s, so the binary's own
/// wait between polls is short).
#[tokio::test]
async fn the_binary_signs_in_whoami_and_logs_out() {
    let mut s = settings();
    s.device.interval_seconds = 1;
    let (server, dir) = start_real_clock(s).await;
    let base = server.base_url();
    let state_dir = dir.path().join("state");
    let bin = env!("CARGO_BIN_EXE_sponsor-console");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args)
            .arg("--server")
            .arg(&base)
            .env(STATE_DIR_ENV, &state_dir)
            .env_remove("GOVERNANCE_SERVER")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };

    let mut child = run(&["login"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut code = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(c) = line.strip_prefix("and enter the code ") {
            code = Some(c.trim().to_owned());
            break;
        }
    }
    let code = code.expect("the binary printed a user code");
    let client = sponsor_console::client::ApiClient::new(&base).unwrap();
    let outcome = browser(&client, &code, "alice", PASSWORD, "approve").await;
    assert!(outcome.body.contains("Device approved"));
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Signed in to"), "{rest}");

    let who = run(&["whoami", "--json"]).output().await.unwrap();
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let me: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(me["username"], "alice");

    let out = run(&["logout"]).output().await.unwrap();
    assert!(out.status.success());
    let after = run(&["whoami"]).output().await.unwrap();
    assert_eq!(after.status.code(), Some(3), "not signed in any more");
    server.shutdown().await.unwrap();
}
