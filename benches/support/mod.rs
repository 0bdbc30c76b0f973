//! What the benchmarks share: an in-process server on loopback (real clock, SQLite in WAL with
//! synchronous=FULL, or PostgreSQL in a fresh schema), or several on one database, a sponsor with a token minted by the server's own key ring, and summary
//! statistics. Each benchmark uses part of it.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sponsor_console::client::ApiClient;
use sponsor_console::clock::SystemClock;
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::oauth::{AccessClaims, SubjectKind};
use sponsor_console::server::passwords::hash_password;
use sponsor_console::server::store::{PgStore, SponsorRecord, SponsorUpsert};
use sponsor_console::server::{RunningServer, start, start_with_store};
use sponsor_console::settings::ServerSettings;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

pub struct Bench {
    pub server: RunningServer,
    pub sponsor: SponsorRecord,
    /// A client holding the sponsor's token (roles sponsor and security-lead).
    pub sponsor_client: ApiClient,
    /// That token, for a console's session file.
    pub sponsor_token: String,
    _dir: tempfile::TempDir,
    /// The PostgreSQL schema this server runs in, dropped after it (none on SQLite).
    _schema: Option<PgSchema>,
}

pub async fn start_server(settings: ServerSettings) -> anyhow::Result<Bench> {
    start_server_at(settings, None).await
}

/// The same on the database file `db` (created if missing, kept afterwards), or on a fresh one
/// in a temporary directory.
pub async fn start_server_at(
    settings: ServerSettings,
    db: Option<&std::path::Path>,
) -> anyhow::Result<Bench> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let path = db.map_or_else(|| dir.path().join("bench.db"), std::path::Path::to_owned);
    let server = start(settings, &path, listener, Arc::new(SystemClock)).await?;
    let (sponsor, token) = sponsor_of(&server).await?;
    let sponsor_client = ApiClient::new(&server.base_url())?.with_token(token.clone());
    Ok(Bench {
        server,
        sponsor,
        sponsor_client,
        sponsor_token: token,
        _dir: dir,
        _schema: None,
    })
}

/// The same on PostgreSQL (`url`), in a fresh schema dropped when the bench is.
pub async fn start_server_pg(settings: ServerSettings, url: &str) -> anyhow::Result<Bench> {
    let schema = PgSchema::create(url).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let store = PgStore::connect_with(schema.options()?).await?;
    let server =
        start_with_store(settings, Arc::new(store), listener, Arc::new(SystemClock)).await?;
    let (sponsor, token) = sponsor_of(&server).await?;
    let sponsor_client = ApiClient::new(&server.base_url())?.with_token(token.clone());
    Ok(Bench {
        server,
        sponsor,
        sponsor_client,
        sponsor_token: token,
        _dir: tempfile::tempdir()?,
        _schema: Some(schema),
    })
}

/// The sponsor `bench` (roles sponsor and security-lead), stored through `server`, and a
/// token for it signed with the server's own key ring.
async fn sponsor_of(server: &RunningServer) -> anyhow::Result<(SponsorRecord, String)> {
    let state = server.state.clone();
    let now = Utc::now();
    let sponsor = state
        .store
        .upsert_sponsor(
            &SponsorUpsert {
                username: "bench".into(),
                display_name: "Bench".into(),
                roles: vec![Role::Sponsor, Role::SecurityLead],
                password_hash: hash_password("bench-password-123")?,
                source: "cli".into(),
            },
            Actor::system(),
            now,
        )
        .await?;
    let claims = AccessClaims {
        iss: state.issuer.clone(),
        sub: sponsor.id.clone(),
        aud: state.settings.tokens.audience.clone(),
        exp: now.timestamp() + 3600,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "governance".into(),
        client_id: "sponsor-console".into(),
        kind: SubjectKind::Sponsor,
        roles: vec!["sponsor".into(), "security-lead".into()],
        preferred_username: Some("bench".into()),
        cnf: None,
    };
    let token = state.keys.sign(&claims)?;
    Ok((sponsor, token))
}

/// The PostgreSQL server the benches may use: `BENCH_DATABASE_URL`, else `TEST_DATABASE_URL`.
pub fn postgres_url() -> Option<String> {
    ["BENCH_DATABASE_URL", "TEST_DATABASE_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
}

/// A fresh schema `t_bench_<uuid>` in a PostgreSQL database; dropped (with everything in it,
/// after ending the connections that carry its name) when this is dropped.
pub struct PgSchema {
    url: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create(url: &str) -> anyhow::Result<Self> {
        let name = format!("t_bench_{}", uuid::Uuid::new_v4().simple());
        run_sql(url, &format!("CREATE SCHEMA {name}")).await?;
        Ok(Self {
            url: url.to_owned(),
            name,
        })
    }

    /// Connection options that work in this schema only; its connections carry its name.
    pub fn options(&self) -> anyhow::Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(&self.url)?
            .options([("search_path", self.name.as_str())])
            .application_name(&self.name))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop may run inside the runtime: clean up on a thread with a runtime of its own.
        let done = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let ended = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
                );
                run_sql(&url, &ended).await?;
                run_sql(&url, &format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("dropping schema {} failed: {e}", self.name);
        }
    }
}

async fn run_sql(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Where a cluster keeps its data.
#[derive(Clone)]
pub enum Backend {
    /// A fresh SQLite file (one instance only).
    Sqlite,
    /// A fresh schema in the PostgreSQL database this URL names.
    Postgres(String),
}

/// `n` server instances on one database, in-process on loopback, each with its own store and
/// listener and all behind the same issuer (the first one's address), with a sponsor whose
/// token every instance accepts.
pub struct Cluster {
    pub servers: Vec<RunningServer>,
    /// One client per instance, at that instance's own address, holding the sponsor's token.
    pub sponsor_clients: Vec<ApiClient>,
    pub sponsor: SponsorRecord,
    stores: Vec<PgStore>,
    _dir: tempfile::TempDir,
    _schema: Option<PgSchema>,
}

pub async fn start_cluster(
    mut settings: ServerSettings,
    backend: &Backend,
    n: usize,
) -> anyhow::Result<Cluster> {
    anyhow::ensure!(n >= 1, "a cluster needs an instance");
    let dir = tempfile::tempdir()?;
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    }
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    settings.server.issuer = format!("http://{}", addrs[0]);
    let mut servers = Vec::new();
    let mut stores = Vec::new();
    let schema = match backend {
        Backend::Sqlite => {
            anyhow::ensure!(n == 1, "SQLite serves one instance per file");
            let path = dir.path().join("bench.db");
            for listener in listeners {
                servers
                    .push(start(settings.clone(), &path, listener, Arc::new(SystemClock)).await?);
            }
            None
        }
        Backend::Postgres(url) => {
            let schema = PgSchema::create(url).await?;
            for listener in listeners {
                let store = PgStore::connect_with(schema.options()?).await?;
                stores.push(store.clone());
                servers.push(
                    start_with_store(
                        settings.clone(),
                        Arc::new(store),
                        listener,
                        Arc::new(SystemClock),
                    )
                    .await?,
                );
            }
            Some(schema)
        }
    };
    let (sponsor, token) = sponsor_of(&servers[0]).await?;
    let sponsor_clients = addrs
        .iter()
        .map(|a| Ok(ApiClient::new(&format!("http://{a}"))?.with_token(token.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Cluster {
        servers,
        sponsor_clients,
        sponsor,
        stores,
        _dir: dir,
        _schema: schema,
    })
}

impl Cluster {
    /// Stops every instance, closes their stores, and drops the schema.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for server in self.servers {
            server.shutdown().await?;
        }
        for store in &self.stores {
            store.close().await;
        }
        Ok(())
    }
}

pub struct Summary {
    pub median: Duration,
    pub p99: Duration,
    pub per_second: f64,
}

pub fn summarize(mut samples: Vec<Duration>, wall: Duration) -> Summary {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Summary {
        median: at(0.5),
        p99: at(0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

pub fn report(name: &str, s: &Summary) {
    println!(
        "{name:<44} median {:>9.3} ms   p99 {:>9.3} ms   {:>9.0} /s",
        s.median.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.per_second
    );
}

/// Reads `--name value` from the command line as text.
pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Reads `--name value` from the command line.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Repeated runs of a bench and the figures each run produced.
///
/// `--runs N` (default 3) says how many times the bench repeats its measurement. Each run
/// records its figures by name; [`Runs::summary`] then prints, for each figure, its median over
/// the runs and its p99 over the runs, under a header with the machine's core count, the run
/// count and the date. The p99 over N runs is the nearest-rank 99th percentile of the N per-run
/// values (the value at rank ⌈0.99·N⌉ in ascending order): with fewer than 100 runs, the
/// largest. The median is the middle value (the mean of the two middle ones for even N).
pub struct Runs {
    n: usize,
    started: chrono::DateTime<Utc>,
    figures: Vec<Figure>,
}

struct Figure {
    name: String,
    unit: &'static str,
    decimals: usize,
    values: Vec<f64>,
}

impl Runs {
    /// `--runs N` from the command line, 3 if absent (at least 1).
    pub fn from_args() -> Self {
        Self::new(arg("--runs", 3))
    }

    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            started: Utc::now(),
            figures: Vec::new(),
        }
    }

    /// How many runs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Prints the line that starts run `r` (1-based).
    pub fn begin(&self, r: usize) {
        println!("--- run {r} of {} ---", self.n);
    }

    /// Records one run's value of a figure, in `unit`, shown with `decimals` decimals. Figures
    /// keep the order in which they were first recorded.
    pub fn record(&mut self, name: &str, unit: &'static str, decimals: usize, value: f64) {
        match self.figures.iter_mut().find(|f| f.name == name) {
            Some(f) => f.values.push(value),
            None => self.figures.push(Figure {
                name: name.to_owned(),
                unit,
                decimals,
                values: vec![value],
            }),
        }
    }

    /// A duration in milliseconds.
    pub fn record_ms(&mut self, name: &str, value: Duration) {
        self.record(name, "ms", 3, value.as_secs_f64() * 1e3);
    }

    /// A duration in microseconds.
    pub fn record_us(&mut self, name: &str, value: Duration) {
        self.record(name, "µs", 1, value.as_secs_f64() * 1e6);
    }

    /// A rate per second.
    pub fn record_rate(&mut self, name: &str, per_second: f64) {
        self.record(name, "/s", 0, per_second);
    }

    /// A [`Summary`]'s median and p99 (in ms) and rate, as three figures.
    pub fn record_summary(&mut self, name: &str, s: &Summary) {
        self.record_ms(&format!("{name}: median"), s.median);
        self.record_ms(&format!("{name}: p99"), s.p99);
        self.record_rate(&format!("{name}: rate"), s.per_second);
    }

    /// A recorded figure's median over the runs so far.
    pub fn median(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| median_of(&f.values))
    }

    /// The header line: cores, runs, date.
    pub fn header(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        format!(
            "{} runs on {cores} cores (available_parallelism), started {}",
            self.n,
            self.started.format("%Y-%m-%d %H:%M UTC")
        )
    }

    /// Prints the summary table: each figure's median and p99 over the runs, and every run's
    /// value.
    pub fn summary(&self) {
        println!();
        println!("== summary: {} ==", self.header());
        println!(
            "median and p99 over the runs; p99 is the nearest-rank 99th percentile of the {} per-run values{}",
            self.n,
            if self.n < 100 {
                " (the largest, with fewer than 100 runs)"
            } else {
                ""
            }
        );
        let width = self
            .figures
            .iter()
            .map(|f| f.name.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        println!(
            "{:<width$}  {:<4}  {:>12}  {:>12}  per run",
            "figure", "unit", "median", "p99"
        );
        for f in &self.figures {
            let d = f.decimals;
            let runs: Vec<String> = f.values.iter().map(|v| format!("{v:.d$}")).collect();
            let median = median_of(&f.values);
            let p99 = nearest_rank(&f.values, 0.99);
            println!(
                "{:<width$}  {:<4}  {median:>12.d$}  {p99:>12.d$}  {}",
                f.name,
                f.unit,
                runs.join(" ")
            );
        }
    }
}

/// The middle value of `values` (the mean of the two middle ones for an even count).
pub fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The nearest-rank `q` quantile of `values`: the value at rank ⌈q·N⌉ in ascending order.
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}
