//! The Graph client against the Entra emulator over HTTPS: paging followed to the end,
//! throttling and outages retried as `Retry-After` says (seconds, decimals, a date) or with a
//! jittered backoff, a `client-request-id` on every call and Graph's `request-id` in every
//! error, timeouts, and bad answers (not JSON, a missing field, too large, a nextLink loop or a
//! link to another host, too many pages) as clear errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entra_emulator::{Emulator, EmulatorClock, EmulatorConfig, Fault, RequestSeed, demo};
use serde_json::Value;
use sponsor_console::client::graph::{
    ApiVersion, GraphClient, GraphError, GraphOptions, Sleeper, StaticToken,
};
use sponsor_console::clock::{ManualClock, SharedClock};
use url::Url;

const LIST: &str =
    "roleManagement/directory/roleAssignmentScheduleRequests/filterByCurrentUser(on='approver')";

struct Graph {
    emu: Emulator,
    graph: GraphClient,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    _dir: tempfile::TempDir,
}

impl Graph {
    async fn start() -> Self {
        let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap();
        let emu =
            Emulator::start(EmulatorConfig::default().with_clock(EmulatorClock::manual(start)))
                .await
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = crate::common::entra::write_ca(&emu, dir.path());
        let graph = client(&emu, &ca_file, emu.base_url(), start);
        let sleeps = Arc::new(Mutex::new(Vec::new()));
        let recorded = sleeps.clone();
        let sleeper: Sleeper = Arc::new(move |d| {
            recorded.lock().unwrap().push(d);
            Box::pin(async {})
        });
        Self {
            graph: graph.with_sleeper(sleeper),
            emu,
            sleeps,
            _dir: dir,
        }
    }

    fn seed(&self, n: usize) {
        for _ in 0..n {
            self.emu
                .seed(
                    RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN).approvers(&[demo::ADELE]),
                )
                .unwrap();
        }
    }

    fn list_url(&self) -> Url {
        self.graph
            .url(
                ApiVersion::V1,
                LIST,
                &[("$filter", "status eq 'PendingApproval'")],
            )
            .unwrap()
    }

    fn me_url(&self) -> Url {
        self.graph.url(ApiVersion::V1, "me", &[]).unwrap()
    }

    fn take_sleeps(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.sleeps.lock().unwrap())
    }

    fn with_options(&self, change: impl FnOnce(&mut GraphOptions)) -> GraphClient {
        let mut options = self.graph.options().clone();
        change(&mut options);
        self.graph.clone().with_options(options)
    }

    /// The request-id the emulator gave its last call.
    fn last_request_id(&self) -> String {
        self.emu.calls().last().unwrap().request_id.clone()
    }
}

fn client(
    emu: &Emulator,
    ca_file: &std::path::Path,
    base: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> GraphClient {
    let config = crate::common::entra::console_config(emu, ca_file);
    let token = emu
        .access_token(demo::ADELE, "https://graph.microsoft.com/.default")
        .unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(now));
    GraphClient::new(
        config.http_client().unwrap(),
        base,
        Arc::new(StaticToken::new(token)),
        clock,
    )
    .unwrap()
}

fn within(d: Duration, low_ms: u64, high_ms: u64) -> bool {
    d >= Duration::from_millis(low_ms) && d <= Duration::from_millis(high_ms)
}

#[tokio::test]
async fn every_page_is_followed_and_every_call_says_who_it_is() {
    let g = Graph::start().await;
    g.seed(5);
    g.emu.set_page_size(2);
    let listed = g.graph.list::<Value>(g.list_url()).await.unwrap();
    assert_eq!(listed.items.len(), 5);
    assert_eq!(listed.pages, 3);
    let calls = g.emu.calls_to("filterByCurrentUser");
    assert_eq!(calls.len(), 3);
    assert!(
        calls[1]
            .query
            .as_deref()
            .unwrap_or("")
            .contains("skiptoken")
    );
    assert!(
        calls[0]
            .query
            .as_deref()
            .unwrap_or("")
            .contains("status%20eq%20%27PendingApproval%27"),
        "{:?}",
        calls[0].query
    );
    let ids: std::collections::HashSet<_> = calls
        .iter()
        .map(|c| c.client_request_id.clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "one client-request-id per call");
    assert_eq!(
        listed.ids.request_id.as_deref(),
        Some(calls[2].request_id.as_str())
    );
    // Unknown fields are no trouble, and an empty list is a list.
    g.emu.set_page_size(100);
    let none = g
        .graph
        .list::<Value>(
            g.graph
                .url(ApiVersion::V1, LIST, &[("$filter", "status eq 'Denied'")])
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.pages), (0, 1));
}

#[tokio::test]
async fn throttling_and_outages_wait_as_graph_says_or_back_off() {
    let g = Graph::start().await;
    g.seed(1);
    // Seconds, decimal seconds, an HTTP date three seconds ahead.
    g.emu
        .inject(Fault::throttle("filterByCurrentUser", Some("2")));
    g.emu
        .inject(Fault::unavailable("filterByCurrentUser", Some("2.5")));
    g.emu.inject(Fault::throttle(
        "filterByCurrentUser",
        Some("Tue, 24 Nov 2026 09:00:03 GMT"),
    ));
    let listed = g.graph.list::<Value>(g.list_url()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let sleeps = g.take_sleeps();
    assert_eq!(sleeps.len(), 3, "{sleeps:?}");
    assert!(within(sleeps[0], 2000, 2200), "{sleeps:?}");
    assert!(within(sleeps[1], 2500, 2750), "{sleeps:?}");
    assert!(within(sleeps[2], 3000, 3300), "{sleeps:?}");
    let calls = g.emu.calls_to("filterByCurrentUser");
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![429, 503, 429, 200]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.client_request_id == calls[0].client_request_id),
        "one call, one client-request-id across its tries"
    );

    // No Retry-After: a jittered backoff that doubles.
    g.emu.inject(Fault::gateway_timeout("filterByCurrentUser"));
    g.emu.inject(Fault::throttle("filterByCurrentUser", None));
    g.graph.list::<Value>(g.list_url()).await.unwrap();
    let sleeps = g.take_sleeps();
    assert!(
        within(sleeps[0], 250, 500) && within(sleeps[1], 500, 1000),
        "{sleeps:?}"
    );

    // Still throttled after every try: the error, with Graph's wait and request-id.
    g.emu
        .inject(Fault::throttle("filterByCurrentUser", Some("1")).always());
    let e = g.graph.list::<Value>(g.list_url()).await.unwrap_err();
    assert_eq!(g.take_sleeps().len(), 3, "four tries");
    assert_eq!(e.status(), Some(429));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(e.request_id(), Some(g.last_request_id().as_str()));
    assert!(e.is_transient());
    assert!(e.to_string().contains("asked to wait 1 s"), "{e}");
    g.emu.clear_faults();

    // A wait longer than one call should block is handed back to the caller at once.
    g.emu
        .inject(Fault::throttle("filterByCurrentUser", Some("120")));
    let e = g.graph.list::<Value>(g.list_url()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(g.take_sleeps().is_empty());
}

#[tokio::test]
async fn errors_carry_graphs_request_id() {
    let g = Graph::start().await;
    g.emu.inject(Fault::status("/me", 500, "generalException"));
    let e = g.graph.get::<Value>(g.me_url()).await.unwrap_err();
    let id = g.last_request_id();
    assert_eq!(e.status(), Some(500));
    assert_eq!(e.code(), Some("generalException"));
    assert_eq!(e.request_id(), Some(id.as_str()));
    assert!(e.to_string().contains(&format!("request-id {id}")), "{e}");
    assert!(!e.is_transient());
    // A 403 is not retried either.
    g.emu
        .inject(Fault::status("/me", 403, "Authorization_RequestDenied"));
    let e = g.graph.get::<Value>(g.me_url()).await.unwrap_err();
    assert_eq!((e.status(), g.emu.calls_to("/me").len()), (Some(403), 2));
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct NeedsJobTitle {
    job_title: String,
}

#[tokio::test]
async fn bad_answers_are_clear_errors() {
    let g = Graph::start().await;
    g.seed(5);
    g.emu.inject(Fault::malformed_json("/me"));
    match g.graph.get::<Value>(g.me_url()).await {
        Err(GraphError::BadAnswer { detail, ids }) => {
            assert!(detail.starts_with("not JSON"), "{detail}");
            assert_eq!(ids.request_id, Some(g.last_request_id()));
        }
        other => panic!("{other:?}"),
    }
    match g.graph.get::<NeedsJobTitle>(g.me_url()).await {
        Err(e @ GraphError::BadAnswer { .. }) => {
            assert!(e.to_string().contains("missing field `jobTitle`"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let small = g.with_options(|o| o.max_body_bytes = 512);
    assert!(matches!(
        small.list::<Value>(g.list_url()).await,
        Err(GraphError::TooLarge { limit: 512, .. })
    ));

    g.emu.set_page_size(1);
    g.emu
        .inject(Fault::next_link_loop("filterByCurrentUser").always());
    match g.graph.list::<Value>(g.list_url()).await {
        Err(e @ GraphError::NextLinkLoop { page: 1, .. }) => {
            assert!(e.to_string().contains("nextLink leads back"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    g.emu.clear_faults();
    let capped = g.with_options(|o| o.max_pages = 2);
    assert!(matches!(
        capped.list::<Value>(g.list_url()).await,
        Err(GraphError::TooManyPages { limit: 2, .. })
    ));
    // A nextLink to another host (the emulator names 127.0.0.1; this client knows localhost).
    let start = g.emu.clock().now();
    let localhost = g.emu.base_url().replace("127.0.0.1", "localhost");
    let other = client(
        &g.emu,
        &g._dir.path().join("emulator-ca.pem"),
        &localhost,
        start,
    );
    let url = other.url(ApiVersion::V1, LIST, &[]).unwrap();
    assert!(matches!(
        other.list::<Value>(url).await,
        Err(GraphError::ForeignLink { .. })
    ));
}

#[tokio::test]
async fn a_slow_answer_is_abandoned_and_a_read_asked_again() {
    let g = Graph::start().await;
    let quick = g.with_options(|o| o.timeout = Duration::from_millis(300));
    g.emu.inject(Fault::delay("/me", Duration::from_secs(3)));
    let me = quick.get::<Value>(g.me_url()).await.unwrap();
    assert_eq!(me.value["userPrincipalName"], "adele@contoso.example");
    assert_eq!(g.take_sleeps().len(), 1);
    g.emu
        .inject(Fault::delay("/me", Duration::from_secs(3)).always());
    let once = g.with_options(|o| {
        o.timeout = Duration::from_millis(200);
        o.retry.max_attempts = 2;
    });
    match once.get::<Value>(g.me_url()).await {
        Err(e @ GraphError::Timeout { .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("client-request-id"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_change_is_retried_only_when_graph_cannot_have_made_it() {
    let g = Graph::start().await;
    let id = g
        .emu
        .seed(RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN).approvers(&[demo::ADELE]))
        .unwrap();
    let approval = g
        .graph
        .get::<Value>(
            g.graph
                .url(
                    ApiVersion::Beta,
                    &format!("roleManagement/directory/roleAssignmentApprovals/{id}"),
                    &[],
                )
                .unwrap(),
        )
        .await
        .unwrap();
    let step = approval.value["steps"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = g
        .graph
        .url(
            ApiVersion::Beta,
            &format!("roleManagement/directory/roleAssignmentApprovals/{id}/steps/{step}"),
            &[],
        )
        .unwrap();
    let body = serde_json::json!({"reviewResult": "Approve", "justification": "CHG-1 checked"});
    // A gateway timeout may have let it through: not sent again.
    g.emu
        .inject(Fault::gateway_timeout("/steps/").method("PATCH"));
    let e = g.graph.patch(url.clone(), &body).await.unwrap_err();
    assert_eq!(e.status(), Some(504));
    assert_eq!(g.emu.calls_to("/steps/").len(), 1);
    assert!(g.emu.decisions().is_empty());
    // Throttled: it was not made, so it is sent again.
    g.emu
        .inject(Fault::throttle("/steps/", Some("1")).method("PATCH"));
    let ack = g.graph.patch(url, &body).await.unwrap();
    assert_eq!((ack.status, ack.retries), (204, 1));
    let decided = g.emu.decisions();
    assert_eq!(decided.len(), 1);
    assert_eq!(
        ack.ids.request_id.as_deref(),
        Some(decided[0].request_id.as_str())
    );
    assert_eq!(
        decided[0].client_request_id.as_deref(),
        Some(ack.ids.client_request_id.as_str())
    );
    assert_eq!(decided[0].justification, "CHG-1 checked");
}
