//! A PostgreSQL that goes away while the server runs: calls that need it answer 503
//! `store_unavailable` with `Retry-After`, never a 500 or a hang, and the server recovers by
//! itself when it is back. The database "goes away" behind a TCP proxy the test cuts: every
//! connection through it is closed and new ones are dropped at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sponsor_console::clock::Clock as _;
use sponsor_console::protocol::requests::RequestStatus;
use sponsor_console::server::store::PgStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::common::postgres::Schema;
use crate::common::{TestServer, settings};

/// A TCP proxy in front of PostgreSQL that can be cut and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(std::sync::Mutex::new(Vec::<AbortHandle>::new()));
        let accept = tokio::spawn({
            let (up, links) = (up.clone(), links.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        })
        .abort_handle();
        Self {
            port,
            up,
            links,
            accept,
        }
    }

    /// The database goes away: every open connection is closed, new ones too.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_answers_503_and_recovers_by_itself() {
    let schema = match Schema::create().await {
        Ok(schema) => schema,
        Err(why) => {
            let case =
                "postgres_outage::a_database_that_goes_away_answers_503_and_recovers_by_itself";
            return crate::conformance::skipped(case, &why);
        }
    };
    let upstream = url::Url::parse(&crate::common::postgres::url().unwrap()).unwrap();
    let upstream = format!(
        "{}:{}",
        upstream.host_str().unwrap_or("127.0.0.1"),
        upstream.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    let store = PgStore::connect_with(schema.options().host("127.0.0.1").port(proxy.port))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.db");
    let t = TestServer::start_on(settings(), Arc::new(store), dir, unused).await;
    let token = t.sign_in("alice").await.access_token;
    let http = reqwest::Client::new();
    let base = t.server.base_url();
    let pending = || {
        http.get(format!("{base}/v1/requests?status=pending"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(pending().await.unwrap().status(), 200);

    proxy.cut();
    for _ in 0..2 {
        let down = pending().await.unwrap();
        assert_eq!(down.status(), 503);
        assert_eq!(down.headers()["retry-after"], "5");
        let body: serde_json::Value = down.json().await.unwrap();
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    }
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    proxy.restore();
    assert_eq!(pending().await.unwrap().status(), 200);
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let alice = t.client.with_token(token.clone());
    let (_, agent) = t.agent(&alice, "after-the-outage", &[]).await;
    assert_eq!(agent.name, "after-the-outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_cut_off_by_the_database_going_away_are_whole_or_not_at_all() {
    let schema = match Schema::create().await {
        Ok(schema) => schema,
        Err(why) => {
            let case = "postgres_outage::decisions_cut_off_by_the_database_going_away_are_whole_or_not_at_all";
            return crate::conformance::skipped(case, &why);
        }
    };
    let upstream = url::Url::parse(&crate::common::postgres::url().unwrap()).unwrap();
    let upstream = format!(
        "{}:{}",
        upstream.host_str().unwrap_or("127.0.0.1"),
        upstream.port().unwrap_or(5432)
    );
    let proxy = Arc::new(Proxy::start(upstream).await);
    let store = PgStore::connect_with(schema.options().host("127.0.0.1").port(proxy.port))
        .await
        .unwrap();
    let mut s = settings();
    let mut policy = sponsor_console::domain::policy::Policy::shipped().unwrap();
    policy.requests.fatigue_limit = 100_000;
    s.policy = Some(policy);
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.db");
    let t = TestServer::start_on(s, Arc::new(store.clone()), dir, unused).await;
    let alice = t.as_user("alice").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let (key, _) = t.agent(&alice, &format!("bot-{i}"), &[]).await;
        let bot = t.as_agent(&key).await;
        for n in 0..15 {
            let body = crate::common::elevation(&[&format!("read:crm:item-{i}-{n}")], 3600);
            ids.push(bot.request_elevation(&body, None).await.unwrap().id);
        }
    }

    // Sixty decisions, eight at a time; the database goes away after the twentieth answer
    // and comes back 300 ms later.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let outage = {
        let (proxy, answered) = (proxy.clone(), answered.clone());
        tokio::spawn(async move {
            while answered.load(Ordering::SeqCst) < 20 {
                tokio::task::yield_now().await;
            }
            proxy.cut();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            proxy.restore();
        })
    };
    use futures::StreamExt as _;
    let answers: Vec<(String, Result<(), String>)> = futures::stream::iter(ids.clone())
        .map(|id| {
            let (alice, answered) = (alice.clone(), answered.clone());
            async move {
                let answer = alice
                    .decide(&id, &crate::common::approve(Some(1800), None))
                    .await;
                answered.fetch_add(1, Ordering::SeqCst);
                let answer = match answer {
                    Ok(r) => {
                        assert_eq!(r.status, RequestStatus::Approved);
                        Ok(())
                    }
                    Err(e) => {
                        // Never a 500 or a hang: an outage, said so.
                        assert_eq!(e.status(), Some(reqwest::StatusCode::SERVICE_UNAVAILABLE));
                        assert_eq!(e.code(), Some("store_unavailable"), "{e}");
                        Err(e.to_string())
                    }
                };
                (id, answer)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    outage.await.unwrap();
    let refused = answers.iter().filter(|(_, a)| a.is_err()).count();
    assert!(refused > 0, "the outage refused nothing");
    assert!(refused < 60, "the outage refused everything");

    // Each decision is whole or absent: approved exactly when it has its grant and its event.
    let grants = alice
        .grants(&crate::common::query("active=true"))
        .await
        .unwrap();
    let sam = t.as_user("sam").await;
    let chain = sam.audit_export().await.unwrap();
    let approved_events: Vec<String> = chain
        .iter()
        .filter(|e| e.event.action == "request.approved")
        .filter_map(|e| e.event.details["request_id"].as_str().map(str::to_owned))
        .collect();
    for (id, answer) in &answers {
        let now = alice.get_request(id).await.unwrap();
        if answer.is_ok() {
            assert_eq!(now.status, RequestStatus::Approved, "{id} was acknowledged");
        }
        let approved = now.status == RequestStatus::Approved;
        assert!(
            approved || now.status == RequestStatus::Pending,
            "{id}: {:?}",
            now.status
        );
        let with_grant = grants.iter().filter(|g| &g.request_id == id).count();
        let with_event = approved_events.iter().filter(|e| *e == id).count();
        assert_eq!(with_grant, usize::from(approved), "{id}: grants");
        assert_eq!(with_event, usize::from(approved), "{id}: events");
        // What was refused can be decided now that the database is back.
        if !approved {
            alice
                .decide(id, &crate::common::approve(Some(1800), None))
                .await
                .unwrap();
        }
    }
    let report = sponsor_console::server::record::check(&store, t.clock.now())
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert!(sam.audit_verify(None).await.unwrap().ok);
}
