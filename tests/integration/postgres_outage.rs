//! A PostgreSQL that goes away while the server runs: calls that need it answer 503
//! `store_unavailable` with `Retry-After`, never a 500 or a hang, and the server recovers by
//! itself when it is back. The database "goes away" behind a TCP proxy the test cuts: every
//! connection through it is closed and new ones are dropped at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
