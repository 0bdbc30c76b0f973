//! One Entra sign-in for Graph and the governance server, against the Entra emulator over
//! HTTPS with its CA: the device flow with each of its polling answers, the refresh token
//! minting tokens for both resources (rotated and saved), a revoked sign-in, and the real
//! `login` and `whoami` commands.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entra_emulator::{EmulatorConfig, Fault, demo};
use sponsor_console::client::entra::{
    EntraAccount, EntraAccountStore, EntraError, EntraTokens, PollEvent, sign_in,
};
use sponsor_console::client::session::STATE_DIR_ENV;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::entra::{EntraSetup, console_config, console_toml, trusting, write_ca};
use crate::common::{settings, start_real_clock};

/// What a sign-in saw: the user code shown and every pending or slow-down answer.
#[derive(Default)]
struct Seen {
    code: Mutex<Option<String>>,
    events: Mutex<Vec<PollEvent>>,
    sleeps: Mutex<Vec<Duration>>,
}

/// Signs in as `s` would, with `step` run at each sleep (its number and length) instead of
/// waiting: it moves the shared clock and plays the person's part.
async fn device_flow(
    s: &EntraSetup,
    step: impl Fn(usize, Duration),
) -> (Result<EntraAccount, EntraError>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let http = s.config().http_client().unwrap();
    let result = sign_in(
        &s.config(),
        &http,
        s.clock(),
        |d| {
            let n = {
                let mut sleeps = seen.sleeps.lock().unwrap();
                sleeps.push(d);
                sleeps.len()
            };
            step(n, d);
            async {}
        },
        |prompt| {
            assert!(
                prompt
                    .message
                    .as_deref()
                    .unwrap_or("")
                    .contains(&prompt.user_code)
            );
            assert!(prompt.verification_uri.ends_with("/devicelogin"));
            *seen.code.lock().unwrap() = Some(prompt.user_code);
            async {}
        },
        |event| seen.events.lock().unwrap().push(event),
    )
    .await;
    (result, seen)
}

fn pending_code(s: &EntraSetup) -> String {
    s.emu.pending_user_codes().pop().expect("a sign-in waits")
}

#[tokio::test]
async fn one_sign_in_mints_tokens_for_graph_and_the_governance_server() {
    let s = EntraSetup::start().await;
    let (result, seen) = device_flow(&s, |n, d| {
        s.advance(d.as_secs() as i64);
        if n == 2 {
            s.emu
                .approve_device_code(&pending_code(&s), demo::ADELE)
                .unwrap();
        }
    })
    .await;
    let account = result.unwrap();
    assert_eq!(*seen.events.lock().unwrap(), vec![PollEvent::Pending; 2]);
    assert_eq!(account.identity.object_id, demo::ADELE);
    assert_eq!(account.identity.tenant_id, demo::TENANT_ID);
    assert_eq!(
        account.identity.username.as_deref(),
        Some("adele@contoso.example")
    );
    assert_eq!(account.tokens.len(), 1, "the Graph token of the sign-in");

    let store = EntraAccountStore::at(s.dir.path().join("state/entra"));
    store.save(&account).unwrap();
    let http = s.config().http_client().unwrap();
    let tokens = EntraTokens::load(s.config(), http.clone(), store.clone(), s.clock()).unwrap();
    let token_calls = || s.emu.calls_to("/oauth2/v2.0/token").len();
    let before = token_calls();
    let graph = tokens.graph_token().await.unwrap();
    assert_eq!(
        token_calls(),
        before,
        "the sign-in's Graph token is used as it is"
    );

    // The same refresh token mints the governance server's token; the server takes it.
    let api = tokens.governance_token().await.unwrap();
    assert_eq!(token_calls(), before + 1);
    let me =
        s.t.client
            .with_token(api.secret.clone())
            .me()
            .await
            .unwrap();
    assert_eq!(me.sub, format!("entra:{}:{}", demo::TENANT_ID, demo::ADELE));
    assert_eq!(me.roles, vec!["sponsor"]);
    let rotated = store
        .load(&s.config().authority(), &s.emu.client_id())
        .unwrap()
        .unwrap();
    assert_ne!(
        rotated.refresh_token, account.refresh_token,
        "rotated and saved"
    );
    // Graph takes the Graph token, and only that one.
    let graph_me = |token: String| {
        let http = http.clone();
        let url = format!("{}/v1.0/me", s.emu.base_url());
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(graph_me(graph.secret.clone()).await, 200);
    assert_eq!(graph_me(api.secret.clone()).await, 401);

    // An hour on, both are refreshed from the newest refresh token.
    s.advance(3600);
    let graph2 = tokens.graph_token().await.unwrap();
    let api2 = tokens.governance_token().await.unwrap();
    assert_eq!(token_calls(), before + 3);
    assert_ne!(graph2.secret, graph.secret);
    assert!(graph2.expires_at > s.t.clock_now());
    assert_eq!(graph_me(graph2.secret).await, 200);
    assert!(s.t.client.with_token(api2.secret).me().await.is_ok());
    let shown = format!(
        "{tokens:?} {api:?} {:?}",
        store
            .load(&s.config().authority(), &s.emu.client_id())
            .unwrap()
    );
    assert!(!shown.contains(&api.secret) && !shown.contains(&rotated.refresh_token));
}

#[tokio::test]
async fn slow_down_adds_five_seconds_for_good() {
    let s = EntraSetup::start().await;
    // The first wait is too short: the emulator answers slow_down and the interval grows.
    let (result, seen) = device_flow(&s, |n, d| {
        s.advance(if n == 1 { 1 } else { d.as_secs() as i64 });
        if n == 3 {
            s.emu
                .approve_device_code(&pending_code(&s), demo::ADELE)
                .unwrap();
        }
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        *seen.events.lock().unwrap(),
        vec![PollEvent::Pending, PollEvent::SlowDown, PollEvent::Pending]
    );
    assert_eq!(
        *seen.sleeps.lock().unwrap(),
        vec![
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(10)
        ]
    );
}

#[tokio::test]
async fn each_answer_that_ends_the_flow_is_its_own_error() {
    let s = EntraSetup::start().await;
    // Declined in the browser.
    let (declined, _) = device_flow(&s, |_, d| {
        s.advance(d.as_secs() as i64);
        if let Some(code) = s.emu.pending_user_codes().pop() {
            s.emu.decline_device_code(&code).unwrap();
        }
    })
    .await;
    assert!(
        matches!(declined, Err(EntraError::Declined)),
        "{declined:?}"
    );

    // The code expires: Entra says expired_token.
    let (expired, _) = device_flow(&s, |_, _| {
        s.emu.advance(chrono::Duration::seconds(901));
    })
    .await;
    assert!(matches!(expired, Err(EntraError::Expired)), "{expired:?}");
    // Or this side gives up when the code's lifetime is over, without asking again.
    let (timed_out, seen) = device_flow(&s, |_, _| s.advance(901)).await;
    assert!(
        matches!(timed_out, Err(EntraError::Expired)),
        "{timed_out:?}"
    );
    assert_eq!(seen.sleeps.lock().unwrap().len(), 1);

    // A device code Entra does not know.
    s.emu.inject(Fault::oauth_error(
        "/oauth2/v2.0/token",
        "bad_verification_code",
    ));
    let (bad, _) = device_flow(&s, |_, d| s.advance(d.as_secs() as i64)).await;
    assert!(
        matches!(bad, Err(EntraError::BadVerificationCode)),
        "{bad:?}"
    );

    // Anything else is a refusal that names Entra's error.
    s.emu
        .inject(Fault::oauth_error("/oauth2/v2.0/token", "invalid_client"));
    let (other, _) = device_flow(&s, |_, d| s.advance(d.as_secs() as i64)).await;
    match other {
        Err(EntraError::Refused { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("{other:?}"),
    }
    for e in [
        EntraError::Declined,
        EntraError::Expired,
        EntraError::BadVerificationCode,
    ] {
        assert!(e.to_string().contains(['(', '_']), "{e}");
    }
}

#[tokio::test]
async fn a_revoked_sign_in_ends_with_a_clear_error_and_is_forgotten() {
    let s = EntraSetup::start().await;
    let (account, _) = device_flow(&s, |_, d| {
        s.advance(d.as_secs() as i64);
        if let Some(code) = s.emu.pending_user_codes().pop() {
            s.emu.approve_device_code(&code, demo::ADELE).unwrap();
        }
    })
    .await;
    let store = EntraAccountStore::at(s.dir.path().join("state/entra"));
    store.save(&account.unwrap()).unwrap();
    let http = s.config().http_client().unwrap();
    let tokens = EntraTokens::load(s.config(), http, store.clone(), s.clock()).unwrap();
    s.emu.revoke_sign_in_sessions(demo::ADELE);
    let ended = tokens.governance_token().await;
    match ended {
        Err(EntraError::SignInEnded { reason, .. }) => {
            assert!(reason.unwrap_or_default().contains("AADSTS70008"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .load(&s.config().authority(), &s.emu.client_id())
            .unwrap()
            .is_none()
    );
}

/// The real `login` and `whoami`: the prompt with Entra's message and a QR code, the line for
/// `authorization_pending`, then the Entra identity and the server's roles.
#[tokio::test]
async fn the_login_and_whoami_commands() {
    let emu = entra_emulator::Emulator::start(EmulatorConfig {
        poll_interval_seconds: 1,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(&emu, dir.path());
    let (server, _server_dir) = start_real_clock(trusting(settings(), &emu, &ca_file)).await;
    let config_file = dir.path().join("console.toml");
    std::fs::write(&config_file, console_toml(&console_config(&emu, &ca_file))).unwrap();
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"));
        cmd.args(args)
            .args(["--server", &server.base_url()])
            .arg("--config")
            .arg(&config_file)
            .env(STATE_DIR_ENV, &state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        cmd
    };

    let not_yet = run(&["whoami"]).output().await.unwrap();
    assert_eq!(not_yet.status.code(), Some(3), "not signed in");

    let mut login = run(&["login"]).spawn().unwrap();
    let mut lines = BufReader::new(login.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let reading = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.starts_with("authorization_pending") {
                emu.approve_device_code(&emu.pending_user_codes().pop().unwrap(), demo::ADELE)
                    .unwrap();
            }
        }
    };
    // Without the pending line nobody approves: fail instead of waiting out the code.
    tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("login ends once approved");
    let status = login.wait().await.unwrap();
    let text = printed.join("\n");
    assert_eq!(status.code(), Some(0), "{text}");
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("and enter the code "))
        .unwrap();
    assert!(text.contains(&format!("{}/devicelogin", emu.base_url())));
    assert!(
        text.contains(&format!("enter the code {code} to authenticate")),
        "{text}"
    );
    assert!(
        text.contains('▀') || text.contains('▄'),
        "a QR code: {text}"
    );
    assert!(text.contains("Signed in to Microsoft Entra as adele@contoso.example"));
    assert!(
        text.contains(&format!(
            "knows you as entra:{}:{}",
            demo::TENANT_ID,
            demo::ADELE
        )),
        "{text}"
    );
    assert!(text.contains("roles: sponsor"));

    let whoami = run(&["whoami"]).output().await.unwrap();
    let out = String::from_utf8_lossy(&whoami.stdout);
    assert_eq!(whoami.status.code(), Some(0), "{out}");
    assert!(out.contains("Adele Vance (adele@contoso.example)"), "{out}");
    assert!(out.contains(&format!("tenant {}", demo::TENANT_ID)));
    assert!(out.contains("roles: sponsor"));
    let json = run(&["whoami", "--json"]).output().await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["entra"]["object_id"], demo::ADELE);
    assert_eq!(v["server"]["roles"], serde_json::json!(["sponsor"]));

    // The refresh token is in a private file and nowhere in what was printed.
    let saved = std::fs::read_dir(state.join("entra"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let account: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.path()).unwrap()).unwrap();
    let refresh = account["refresh_token"].as_str().unwrap();
    assert!(!text.contains(refresh) && !out.contains(refresh));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = saved.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let logout = run(&["logout"]).output().await.unwrap();
    assert_eq!(logout.status.code(), Some(0));
    let after = run(&["whoami"]).output().await.unwrap();
    assert_eq!(after.status.code(), Some(3));
    server.shutdown().await.unwrap();
}
