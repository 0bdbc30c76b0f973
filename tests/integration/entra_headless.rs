//! The real `sponsor-console` commands on Entra ids, against the Entra emulator over HTTPS and
//! an in-process governance server that trusts it: `requests ls --source entra`, `approve` and
//! `deny` with the exit codes of the governance server's own requests, each decision recorded
//! in the audit chain.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use entra_emulator::{Emulator, EmulatorConfig, Fault, RequestKind, RequestSeed, demo};
use sponsor_console::client::session::STATE_DIR_ENV;

use crate::common::entra::{api_scope, console_config, console_toml, trusting, write_ca};
use crate::common::{settings, start_real_clock};

struct Cli {
    server: String,
    config: PathBuf,
    state: PathBuf,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"))
            .args(args)
            .args(["--server", &self.server])
            .arg("--config")
            .arg(&self.config)
            .env(STATE_DIR_ENV, &self.state)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn entra_approvals_from_the_command_line() {
    // The person's browser step is done at once: no one waits in this test.
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: Some(demo::ADELE.to_owned()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(&emu, dir.path());
    let (server, _server_dir) = start_real_clock(trusting(settings(), &emu, &ca_file)).await;
    let cli = Cli {
        server: server.base_url(),
        config: dir.path().join("console.toml"),
        state: dir.path().join("state"),
    };
    std::fs::write(&cli.config, console_toml(&console_config(&emu, &ca_file))).unwrap();

    let not_yet = cli.run(&["requests", "ls", "--source", "entra"]).await;
    assert_eq!(
        not_yet.status.code(),
        Some(3),
        "not signed in: {}",
        err(&not_yet)
    );
    let login = cli.run(&["login"]).await;
    assert_eq!(
        login.status.code(),
        Some(0),
        "{}{}",
        out(&login),
        err(&login)
    );

    let ids = emu.seed_demo_requests().unwrap();
    let (role, lee_role, group, package) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let own = emu
        .seed(
            RequestSeed::role(demo::ADELE, demo::ROLE_USER_ADMIN)
                .approvers(&[demo::ADELE, demo::ALEX]),
        )
        .unwrap();
    let not_mine = emu
        .seed(RequestSeed::group(demo::LEE, demo::ON_CALL_GROUP))
        .unwrap();

    // What waits on Adele, as a table and as JSON.
    let table = cli.run(&["requests", "ls", "--source", "entra"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", err(&table));
    let text = out(&table);
    for needle in [
        format!("role:{role}"),
        format!("group:{group}"),
        format!("package:{package}"),
        "Megan Bowen <megan@contoso.example>".into(),
        "User Administrator".into(),
        "Production database operators".into(),
        "Agent tooling access".into(),
        "CHG-4711".into(),
        "approval → ".into(),
        "(PT2H)".into(),
        "(yours)".into(),
    ] {
        assert!(text.contains(&needle), "{needle}: {text}");
    }
    assert!(!text.contains(&not_mine));
    let json = cli
        .run(&["requests", "ls", "--source", "entra", "--json"])
        .await;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .any(|r| r["source"] == "access_package" && r["id"] == package.as_str())
    );
    // The governance server's own list is still the default.
    let local = cli.run(&["requests", "ls", "--json"]).await;
    assert_eq!(local.status.code(), Some(0), "{}", err(&local));
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&local.stdout)
            .unwrap()
            .len(),
        0
    );

    // Approve a role by key: Graph's beta step, then the audit chain.
    let approved = cli
        .run(&[
            "approve",
            &format!("role:{role}"),
            "--reason",
            "CHG-4711 checked",
        ])
        .await;
    let said = out(&approved);
    assert_eq!(approved.status.code(), Some(0), "{said}{}", err(&approved));
    let made = emu.decisions();
    let m = made.last().unwrap();
    assert_eq!(
        (m.kind, m.review_result.as_str()),
        (RequestKind::Role, "Approve")
    );
    assert_eq!(
        (m.approval_id.as_str(), m.justification.as_str()),
        (role.as_str(), "CHG-4711 checked")
    );
    assert!(
        said.starts_with(&format!(
            "approved role:{role} (Entra role: User Administrator for Megan Bowen"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("Graph request-id {}", m.request_id)),
        "{said}"
    );
    assert!(
        said.contains("recorded in the governance server's audit chain"),
        "{said}"
    );
    let adele = sponsor_console::client::ApiClient::new(&server.base_url())
        .unwrap()
        .with_token(emu.access_token(demo::ADELE, &api_scope()).unwrap());
    let events = adele.audit_tail(20).await.unwrap();
    let recorded = events
        .iter()
        .find(|e| {
            e.event.action == "entra.decided"
                && e.event.subject == format!("entra:directory_role:{role}")
        })
        .expect("the decision is in the audit chain");
    assert_eq!(
        recorded.event.details["graph_request_id"],
        m.request_id.as_str()
    );
    assert_eq!(recorded.event.details["justification"], "CHG-4711 checked");

    // Deny a group by its bare id, and a package by key.
    let denied = cli.run(&["deny", group, "--reason", "not this week"]).await;
    assert_eq!(
        denied.status.code(),
        Some(0),
        "{}{}",
        out(&denied),
        err(&denied)
    );
    assert!(out(&denied).starts_with(&format!("denied group:{group}")));
    assert_eq!(emu.decisions().last().unwrap().api_version, "v1.0");
    let package_ok = cli
        .run(&[
            "approve",
            &format!("package:{package}"),
            "--reason",
            "release 42",
        ])
        .await;
    assert_eq!(package_ok.status.code(), Some(0), "{}", err(&package_ok));

    // The exit codes of the governance server's own requests.
    let again = cli
        .run(&["deny", &format!("role:{role}"), "--reason", "too late"])
        .await;
    assert_eq!(
        again.status.code(),
        Some(5),
        "decided already: {}",
        out(&again)
    );
    assert!(
        out(&again).contains("you decided this already (approved)"),
        "{}",
        out(&again)
    );
    let mine = cli.run(&["approve", &own, "--reason", "me"]).await;
    assert_eq!(mine.status.code(), Some(4), "own request: {}", err(&mine));
    assert!(err(&mine).contains("your own request"), "{}", err(&mine));
    let outsider = cli.run(&["approve", &not_mine, "--reason", "x"]).await;
    assert_eq!(
        outsider.status.code(),
        Some(4),
        "not an approver: {}",
        out(&outsider)
    );
    assert!(out(&outsider).contains("you are not an approver of this"));
    let unknown = cli
        .run(&[
            "approve",
            "role:00000000-0000-0000-0000-000000000000",
            "--reason",
            "x",
        ])
        .await;
    assert_eq!(unknown.status.code(), Some(4), "{}", err(&unknown));
    assert!(err(&unknown).contains("request-id"), "{}", err(&unknown));
    let windowed = cli
        .run(&[
            "approve",
            &format!("role:{lee_role}"),
            "--for",
            "1h",
            "--reason",
            "x",
        ])
        .await;
    assert_eq!(
        windowed.status.code(),
        Some(2),
        "no --for on Entra: {}",
        err(&windowed)
    );
    let no_reason = cli
        .run(&["approve", &format!("role:{lee_role}"), "--reason", " "])
        .await;
    assert_eq!(no_reason.status.code(), Some(2), "{}", err(&no_reason));
    let local_no_for = cli
        .run(&[
            "approve",
            "req_00000000000000000000000000000000",
            "--reason",
            "x",
        ])
        .await;
    assert_eq!(
        local_no_for.status.code(),
        Some(2),
        "{}",
        err(&local_no_for)
    );
    assert!(err(&local_no_for).contains("--for is required"));

    // Graph failing: exit 1, Graph's request-id in the message, nothing decided.
    emu.inject(Fault::unavailable("/steps/", Some("120")).method("PATCH"));
    let down = cli
        .run(&["approve", &format!("role:{lee_role}"), "--reason", "x"])
        .await;
    assert_eq!(down.status.code(), Some(1), "{}", err(&down));
    let failed = emu
        .calls_to("/steps/")
        .into_iter()
        .rev()
        .find(|c| c.method == "PATCH")
        .unwrap();
    assert!(
        err(&down).contains(&format!("request-id {}", failed.request_id)),
        "{}",
        err(&down)
    );
    assert_eq!(emu.decisions().len(), 3);
    // A source that fails is said, the others still listed.
    emu.inject(Fault::status(
        "group/assignmentScheduleRequests",
        500,
        "generalException",
    ));
    let partial = cli.run(&["requests", "ls", "--source", "entra"]).await;
    assert_eq!(partial.status.code(), Some(1));
    assert!(err(&partial).contains("PIM group"), "{}", err(&partial));
    assert!(out(&partial).contains(&format!("role:{lee_role}")));
    server.shutdown().await.unwrap();
}
