//! Every request carries an id (the caller's `x-request-id`, or a new one) that every span a
//! handler or store method opens for it is nested under.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::format::FmtSpan;

use crate::common::{CLIENT_ID, TestServer};

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tracing caches per call site whether anyone listens, for the whole process; other tests of
/// this binary hitting the same call sites first would race that. So the check runs alone, in
/// a child process of this same test binary.
#[test]
fn the_request_id_is_carried_by_store_spans() {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "request_ids::alone",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .expect("the child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run alone by the_request_id_is_carried_by_store_spans"]
async fn alone() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        // A line when each span opens: the store call's opens before the answer is sent.
        .with_span_events(FmtSpan::NEW)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("alone in this process");
    let t = TestServer::start().await;

    let response = t
        .client
        .http()
        .post(t.client.url("/oauth2/device_authorization"))
        .header("x-request-id", "req-id-test-42")
        .form(&[("client_id", CLIENT_ID)])
        .send()
        .await
        .expect("answered");
    assert!(response.status().is_success());
    let logs = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    let store_line = logs
        .lines()
        .find(|l| l.contains("create_device_authorization") && l.contains("req-id-test-42"))
        .unwrap_or_else(|| {
            let ours: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains("req-id-test-42") || l.contains("create_device"))
                .collect();
            panic!(
                "no store span; related lines:\n{}\nall:\n{logs}",
                ours.join("\n")
            )
        });
    assert!(
        store_line.contains("request_id=req-id-test-42"),
        "{store_line}"
    );
    assert!(!logs.contains("device_code="), "no secrets in logs");

    // Without one, the server makes one up, a new one each time.
    for _ in 0..2 {
        t.client
            .device_authorization(CLIENT_ID, None)
            .await
            .expect("answered");
    }
    let logs = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    let made: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("create_device_authorization"))
        .filter_map(|l| l.split("request_id=").nth(1))
        .map(|rest| rest.split(['}', ' ']).next().unwrap_or(""))
        .filter(|id| *id != "req-id-test-42")
        .collect();
    assert_eq!(made.len(), 2, "{logs}");
    assert_ne!(made[0], made[1]);
    assert!(made.iter().all(|id| id.len() >= 10), "{made:?}");
}
