//! Token issuance, introspection and `/healthz` measured by `wrk`, a load generator outside
//! this process, against a governance server started in-process on loopback (2 worker
//! threads, SQLite in WAL with `synchronous=FULL`, or with `--database <postgres url>`
//! PostgreSQL in a fresh schema `t_bench_<uuid>`, dropped afterwards). Issuance and introspection are reported as
//! shares of `/healthz` throughput, measured in the same run with the same connections.
//!
//! Run: `cargo bench --bench http` (needs `wrk` on the PATH, e.g. `apt-get install wrk`;
//! options: `-- --runs 3 --seconds 10 --connections 16 --threads 2 --database postgres://…`).
//! Issuance posts pre-signed client assertions (`benches/http/issue.lua`), each once;
//! introspection posts one agent token again and again with a sponsor's bearer token
//! (`benches/http/introspect.lua`).
//!
//! DPoP (RFC 9449) is measured in the same run against the same shape without it: issuance
//! with a pre-signed proof of the agent's key beside each assertion, against plain issuance;
//! the sponsor introspecting a bound token, against the introspection above; an agent
//! introspecting its own DPoP-bound token under the DPoP scheme with a pre-signed
//! proof per request (`benches/http/introspect_dpop.lua`), against the same agent introspecting
//! its own bearer token as `Bearer`. Each proof is used once; proofs are signed just before
//! the wrk run that uses them, so they stay inside the default 60-second window (the settings
//! are not widened).
//!
//! One server serves every run. Each of the `--runs` runs is one full round: fresh assertions
//! signed, then wrk on `/healthz`, on introspection and on issuance, then the agent's
//! introspection without and with DPoP and issuance with DPoP, `--seconds` each, one after
//! the other. The summary gives each figure's median and p99 over the runs; the shares of
//! `/healthz` and the DPoP ratios are each run's own.

use std::io::Write;
use std::process::Command;

use chrono::Utc;
use sponsor_console::client::agent_key::AgentKey;
use sponsor_console::clock::SystemClock;
use sponsor_console::protocol::oauth::ASSERTION_TYPE_JWT_BEARER;
use sponsor_console::server::store::NewAgent;
use sponsor_console::settings::ServerSettings;

mod support;

#[derive(Clone, Copy)]
struct Options {
    seconds: usize,
    connections: usize,
    threads: usize,
}

/// A PostgreSQL URL to measure on instead of SQLite.
fn database() -> Option<String> {
    support::text_arg("--database")
}

fn main() -> anyhow::Result<()> {
    let opts = Options {
        seconds: support::arg("--seconds", 10),
        connections: support::arg("--connections", 16),
        threads: support::arg("--threads", 2),
    };
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk is not installed (apt-get install wrk); nothing measured");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(opts))
}

/// One wrk run: requests per second, and how many answers were not 2xx.
struct Run {
    per_second: f64,
    latency_median: String,
    failed: u64,
}

fn wrk(
    opts: &Options,
    url: &str,
    script: Option<&str>,
    env: &[(&str, &str)],
) -> anyhow::Result<Run> {
    let mut command = Command::new("wrk");
    command
        .args([
            "-t",
            &opts.threads.to_string(),
            "-c",
            &opts.connections.to_string(),
        ])
        .args(["-d", &format!("{}s", opts.seconds), "--latency"]);
    if let Some(script) = script {
        command.args(["-s", script]);
    }
    command.arg(url).env("THREADS", opts.threads.to_string());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let per_second = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output: {text}"))?;
    let failed = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let latency_median = field("50%").unwrap_or_default();
    Ok(Run {
        per_second,
        latency_median,
        failed,
    })
}

/// wrk's latency ("4.93ms", "812.00us", "1.02s") in milliseconds.
fn latency_ms(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1e3)
    } else {
        (text, 1.0)
    };
    number.trim().parse::<f64>().ok().map(|v| v * scale)
}

async fn run(opts: Options) -> anyhow::Result<()> {
    let database = database();
    let bench = match &database {
        Some(url) => support::start_server_pg(ServerSettings::default(), url).await?,
        None => support::start_server(ServerSettings::default()).await?,
    };
    let state = bench.server.state.clone();
    let base = bench.server.base_url();
    let api = bench.sponsor_client.anonymous();
    let token_endpoint = api.token_endpoint();
    let now = Utc::now();
    let mut keys = Vec::new();
    for i in 0..32 {
        let key = AgentKey::generate();
        state
            .store
            .register_agent(
                NewAgent {
                    did: key.did(),
                    name: format!("wrk-agent-{i}"),
                    public_key: key.public_key(),
                    capabilities: vec!["read:crm:*".into(), "send:email".into()],
                    sponsor_id: bench.sponsor.id.clone(),
                    entra_object_id: None,
                    model: None,
                    runtime: None,
                    max_agents_per_sponsor: u32::MAX,
                },
                None,
                now,
            )
            .await?;
        keys.push(key);
    }
    let dir = tempfile::tempdir()?;
    let bodies_path = dir.path().join("assertions.txt");
    let first = keys[0].assertion(&token_endpoint, Utc::now(), chrono::Duration::seconds(60))?;
    let agent_token = api.client_credentials(&first, None).await?.access_token;
    // An agent's own tokens, bearer and bound, for introspecting itself without and with DPoP.
    let second = keys[1].assertion(&token_endpoint, Utc::now(), chrono::Duration::seconds(60))?;
    let own_bearer = api.client_credentials(&second, None).await?.access_token;
    let (_, bound) = api
        .dpop_agent(&keys[1], std::sync::Arc::new(SystemClock), None)
        .await?;
    anyhow::ensure!(bound.token_type == "DPoP", "the bench's token is not bound");
    let bound_token = bound.access_token;
    let introspect_endpoint = format!("{base}/oauth2/introspect");
    let proofs_path = dir.path().join("proofs.txt");
    let dpop_bodies_path = dir.path().join("assertions-dpop.txt");
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/http");

    println!(
        "wrk -t{} -c{} -d{}s against {base} (server: 2 worker threads, same 2-core machine; {})",
        opts.threads,
        opts.connections,
        opts.seconds,
        if database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    // wrk runs on its own threads outside the runtime; the server keeps serving meanwhile.
    let measure = |url: String, script: Option<String>, env: Vec<(&'static str, String)>| {
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            wrk(&opts, &url, script.as_deref(), &env)
        })
    };
    let mut runs = support::Runs::from_args();
    for r in 1..=runs.n() {
        runs.begin(r);
        // More assertions than the run can use at 20,000 issuances a second; each is valid for
        // the two minutes around the run.
        write_assertions(&bodies_path, &keys, &token_endpoint, opts.seconds * 20_000)?;
        let health = measure(format!("{base}/healthz"), None, Vec::new()).await??;
        let introspection = measure(
            format!("{base}/oauth2/introspect"),
            Some(format!("{scripts}/introspect.lua")),
            vec![
                ("AGENT_TOKEN", agent_token.clone()),
                ("CALLER_TOKEN", bench.sponsor_token.clone()),
            ],
        )
        .await??;
        let issuance = measure(
            token_endpoint.clone(),
            Some(format!("{scripts}/issue.lua")),
            vec![("BODIES", bodies_path.display().to_string())],
        )
        .await??;
        for (name, run) in [
            ("/healthz", &health),
            ("introspection", &introspection),
            ("token issuance", &issuance),
        ] {
            println!(
                "{name:<16} {:>9.0} /s   median {:>9}   {} answers not 2xx",
                run.per_second, run.latency_median, run.failed
            );
        }
        println!(
            "ratios           introspection {:.1}%   issuance {:.2}%   (of /healthz throughput)",
            100.0 * introspection.per_second / health.per_second,
            100.0 * issuance.per_second / health.per_second
        );
        anyhow::ensure!(
            introspection.failed == 0 && issuance.failed == 0,
            "some answers were errors"
        );
        runs.record_rate("/healthz", health.per_second);
        runs.record_rate("introspection", introspection.per_second);
        runs.record_rate("token issuance", issuance.per_second);
        if let Some(ms) = latency_ms(&introspection.latency_median) {
            runs.record("introspection latency (wrk's median)", "ms", 2, ms);
        }
        if let Some(ms) = latency_ms(&issuance.latency_median) {
            runs.record("issuance latency (wrk's median)", "ms", 2, ms);
        }
        runs.record(
            "introspection / /healthz",
            "%",
            1,
            100.0 * introspection.per_second / health.per_second,
        );
        runs.record(
            "issuance / /healthz",
            "%",
            2,
            100.0 * issuance.per_second / health.per_second,
        );
        // A resource server (the sponsor's bearer token) introspecting a bound token: only the
        // answer differs (`token_type`, `cnf`) from the introspection above.
        let of_bound = measure(
            introspect_endpoint.clone(),
            Some(format!("{scripts}/introspect.lua")),
            vec![
                ("AGENT_TOKEN", bound_token.clone()),
                ("CALLER_TOKEN", bench.sponsor_token.clone()),
            ],
        )
        .await??;
        // The same agent introspecting its own token, as Bearer, then bound with a proof each.
        let own = measure(
            introspect_endpoint.clone(),
            Some(format!("{scripts}/introspect.lua")),
            vec![
                ("AGENT_TOKEN", own_bearer.clone()),
                ("CALLER_TOKEN", own_bearer.clone()),
            ],
        )
        .await??;
        write_lines(&proofs_path, opts.seconds * 50_000, |_| {
            keys[1].dpop_proof("POST", &introspect_endpoint, Some(&bound_token), Utc::now())
        })?;
        let own_dpop = measure(
            introspect_endpoint.clone(),
            Some(format!("{scripts}/introspect_dpop.lua")),
            vec![
                ("AGENT_TOKEN", bound_token.clone()),
                ("CALLER_TOKEN", bound_token.clone()),
                ("PROOFS", proofs_path.display().to_string()),
            ],
        )
        .await??;
        // Issuance with DPoP: line i's proof is signed by the key of line i's assertion.
        let count = opts.seconds * 20_000;
        write_assertions(&dpop_bodies_path, &keys, &token_endpoint, count)?;
        write_lines(&proofs_path, count, |i| {
            keys[i % keys.len()].dpop_proof("POST", &token_endpoint, None, Utc::now())
        })?;
        let issuance_dpop = measure(
            token_endpoint.clone(),
            Some(format!("{scripts}/issue.lua")),
            vec![
                ("BODIES", dpop_bodies_path.display().to_string()),
                ("PROOFS", proofs_path.display().to_string()),
            ],
        )
        .await??;
        for (name, run) in [
            ("introspection of a bound token", &of_bound),
            ("introspection (agent, Bearer)", &own),
            ("introspection (agent, DPoP)", &own_dpop),
            ("token issuance (DPoP)", &issuance_dpop),
        ] {
            println!(
                "{name:<30} {:>9.0} /s   median {:>9}   {} answers not 2xx",
                run.per_second, run.latency_median, run.failed
            );
        }
        let bound_ratio = 100.0 * of_bound.per_second / introspection.per_second;
        let introspection_ratio = 100.0 * own_dpop.per_second / own.per_second;
        let issuance_ratio = 100.0 * issuance_dpop.per_second / issuance.per_second;
        println!(
            "DPoP ratios      introspection of a bound token {bound_ratio:.1}%   with a proof \
             {introspection_ratio:.1}%   issuance {issuance_ratio:.1}%   (with DPoP / without, \
             this run; the goal is at least 80%)"
        );
        anyhow::ensure!(
            of_bound.failed == 0
                && own.failed == 0
                && own_dpop.failed == 0
                && issuance_dpop.failed == 0,
            "some DPoP answers were errors"
        );
        runs.record_rate("introspection of a bound token", of_bound.per_second);
        runs.record_rate("introspection (agent, Bearer)", own.per_second);
        runs.record_rate("introspection (agent, DPoP)", own_dpop.per_second);
        runs.record_rate("token issuance (DPoP)", issuance_dpop.per_second);
        runs.record("introspection of bound / Bearer", "%", 1, bound_ratio);
        runs.record("introspection DPoP / Bearer", "%", 1, introspection_ratio);
        runs.record("issuance DPoP / plain", "%", 1, issuance_ratio);
    }
    runs.summary();
    bench.server.shutdown().await?;
    Ok(())
}

/// Writes `n` lines made by `line` to `path`.
fn write_lines<E: std::error::Error + Send + Sync + 'static>(
    path: &std::path::Path,
    n: usize,
    line: impl Fn(usize) -> Result<String, E>,
) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(file, "{}", line(i)?)?;
    }
    file.flush()?;
    Ok(())
}

/// `n` token-request bodies, each with a fresh client assertion (valid for two minutes) of the
/// next key in turn.
fn write_assertions(
    path: &std::path::Path,
    keys: &[AgentKey],
    token_endpoint: &str,
    n: usize,
) -> anyhow::Result<()> {
    let assertion_type = url::form_urlencoded::byte_serialize(ASSERTION_TYPE_JWT_BEARER.as_bytes())
        .collect::<String>();
    write_lines(path, n, |i| {
        keys[i % keys.len()]
            .assertion(token_endpoint, Utc::now(), chrono::Duration::seconds(120))
            .map(|assertion| {
                format!(
                    "grant_type=client_credentials&client_assertion_type={assertion_type}&client_assertion={assertion}"
                )
            })
    })
}
