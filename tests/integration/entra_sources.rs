//! The three PIM sources as data, against the Entra emulator over HTTPS: what waits on the
//! approver as typed rows (who asks, for what by name, the scope, the window with its exact
//! end, justification and ticket), nothing else; ids found by key or bare; names cached; and a
//! failing source keeping its own state while the others go on.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entra_emulator::{Emulator, EmulatorClock, EmulatorConfig, Fault, RequestSeed, User, demo};
use sponsor_console::client::graph::{
    ApprovalSource, EntraApprovals, GraphClient, StaticToken, entra_sources, poll,
};
use sponsor_console::clock::{ManualClock, SharedClock};
use sponsor_console::domain::entra::{EntraSource, Expiration, SourceState, SyncStatus};

struct Sources {
    emu: Emulator,
    approvals: Arc<EntraApprovals>,
    clock: SharedClock,
    now: DateTime<Utc>,
    _dir: tempfile::TempDir,
}

async fn start() -> Sources {
    let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 24, 9, 0, 0)
        .single()
        .unwrap();
    let emu = Emulator::start(EmulatorConfig::default().with_clock(EmulatorClock::manual(now)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = crate::common::entra::write_ca(&emu, dir.path());
    let config = crate::common::entra::console_config(&emu, &ca_file);
    let token = emu
        .access_token(demo::ADELE, "https://graph.microsoft.com/.default")
        .unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(now));
    let graph = GraphClient::new(
        config.http_client().unwrap(),
        emu.base_url(),
        Arc::new(StaticToken::new(token)),
        clock.clone(),
    )
    .unwrap();
    Sources {
        approvals: Arc::new(EntraApprovals::new(graph, demo::ADELE)),
        emu,
        clock,
        now,
        _dir: dir,
    }
}

#[tokio::test]
async fn each_source_lists_what_waits_on_me_as_typed_rows() {
    let s = start().await;
    let ids = s.emu.seed_demo_requests().unwrap();
    // Adele's own request and one she does not approve are not hers to decide.
    s.emu
        .seed(RequestSeed::role(demo::ADELE, demo::ROLE_SECURITY_ADMIN).approvers(&[demo::ALEX]))
        .unwrap();
    s.emu
        .seed(RequestSeed::group(demo::LEE, demo::ON_CALL_GROUP))
        .unwrap();
    // A scheduled window with an end date.
    let start = s.now + Duration::hours(2);
    let end = s.now + Duration::hours(6);
    let scheduled = s
        .emu
        .seed(
            RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN)
                .starting(start)
                .until(end),
        )
        .unwrap();

    let roles = s.approvals.list(EntraSource::DirectoryRole).await.unwrap();
    assert_eq!(roles.len(), 3, "{roles:#?}");
    let r = roles.iter().find(|r| r.id == ids[0]).unwrap();
    assert_eq!(r.key(), format!("role:{}", ids[0]));
    assert_eq!(r.approval_id, ids[0]);
    assert_eq!(r.requester.id, demo::MEGAN);
    assert_eq!(r.requester.display_name.as_deref(), Some("Megan Bowen"));
    assert_eq!(
        r.requester.username.as_deref(),
        Some("megan@contoso.example")
    );
    assert_eq!(r.target.id, demo::ROLE_USER_ADMIN);
    assert_eq!(r.target.label(), "User Administrator");
    assert_eq!(r.scope.as_deref(), Some("/"));
    assert_eq!(r.action.as_deref(), Some("selfActivate"));
    assert_eq!(
        r.justification.as_deref(),
        Some("Onboard the new contractors for the payments team")
    );
    let ticket = r.ticket.as_ref().unwrap();
    assert_eq!(
        (ticket.number.as_deref(), ticket.system.as_deref()),
        (Some("CHG-4711"), Some("ServiceNow"))
    );
    assert!(r.window.ends_with_approval());
    let approved_at = s.now + Duration::minutes(10);
    assert_eq!(
        r.window.ends(approved_at),
        Some(approved_at + Duration::hours(2))
    );
    assert_eq!(r.created_at, Some(s.now));
    assert_eq!(r.decide_by(), Some(s.now + Duration::hours(24)));
    assert!(!r.is_own(demo::ADELE));
    let lee = roles.iter().find(|r| r.id == ids[1]).unwrap();
    assert_eq!(lee.target.label(), "Security Administrator");
    let sched = roles.iter().find(|r| r.id == scheduled).unwrap();
    assert_eq!(sched.window.start, Some(start));
    assert_eq!(sched.window.expiration, Expiration::AfterDateTime { end });
    assert_eq!(sched.window.ends(s.now), Some(end));

    let groups = s.approvals.list(EntraSource::PimGroup).await.unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        (g.id.as_str(), g.key()),
        (ids[2].as_str(), format!("group:{}", ids[2]))
    );
    assert_eq!(g.target.label(), "Production database operators");
    assert_eq!(g.scope.as_deref(), Some("member"));
    assert_eq!(g.requester.label(), "Megan Bowen");
    assert_eq!(g.window.ends(s.now), Some(s.now + Duration::hours(4)));

    let packages = s.approvals.list(EntraSource::AccessPackage).await.unwrap();
    assert_eq!(packages.len(), 1);
    let p = &packages[0];
    assert_eq!(p.id, ids[3]);
    assert_eq!(p.target.label(), "Agent tooling access");
    assert_eq!(p.requester.id, demo::MEGAN);
    assert_eq!(
        p.requester.username.as_deref(),
        Some("megan@contoso.example")
    );
    assert_eq!(p.action.as_deref(), Some("userAdd"));
    assert_eq!(p.window.ends(s.now), Some(s.now + Duration::days(7)));
    assert_eq!(p.status, "pendingApproval");
    // Rows are data the console and scripts can keep: they round-trip through JSON.
    let json = serde_json::to_string(&roles).unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<sponsor_console::domain::entra::EntraApproval>>(&json).unwrap(),
        roles
    );
    // Every call asked for what waits on the caller as approver, with the filter and names.
    let listed = s.emu.calls_to("filterByCurrentUser(on='approver')");
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|c| c.query.as_deref().unwrap_or("").contains("expand"))
    );
}

#[tokio::test]
async fn requests_are_found_by_key_or_bare_id_and_approvals_read() {
    let s = start().await;
    let ids = s.emu.seed_demo_requests().unwrap();
    let group = s
        .approvals
        .find(&format!("group:{}", ids[2]))
        .await
        .unwrap();
    assert_eq!(group.source, EntraSource::PimGroup);
    let package = s.approvals.find(&ids[3]).await.unwrap();
    assert_eq!(package.source, EntraSource::AccessPackage);
    let missing = s
        .approvals
        .find("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert!(missing.request_id().is_some());
    assert!(
        s.approvals.find("role:../../me").await.is_err(),
        "ids stay ids"
    );

    // Roles are decided at the beta approval's steps, the others at v1.0 stages.
    let role = s
        .approvals
        .approval(EntraSource::DirectoryRole, &ids[0])
        .await
        .unwrap();
    assert_eq!(role.value.stages.len(), 1);
    assert!(role.value.stages[0].assigned_to_me() && role.value.stages[0].in_progress());
    assert!(s.emu.calls().last().unwrap().path.starts_with("/beta/"));
    let package = s
        .approvals
        .approval(EntraSource::AccessPackage, &ids[3])
        .await
        .unwrap();
    assert_eq!(package.value.stages.len(), 2, "two stages");
    assert!(!package.value.stages[1].in_progress());
    assert!(s.emu.calls().last().unwrap().path.starts_with("/v1.0/"));
}

#[tokio::test]
async fn names_graph_cannot_give_are_asked_for_once() {
    let s = start().await;
    let stranger = "11111111-2222-4333-8444-555555555555";
    s.emu
        .seed(RequestSeed::role(stranger, demo::ROLE_USER_ADMIN).approvers(&[demo::ADELE]))
        .unwrap();
    for _ in 0..3 {
        let rows = s.approvals.list(EntraSource::DirectoryRole).await.unwrap();
        assert_eq!(
            rows[0].requester.label(),
            stranger,
            "the id, when there is no name"
        );
    }
    assert_eq!(
        s.emu.calls_to("/users/").len(),
        1,
        "asked once, then cached"
    );
    // Once the directory knows the person, Graph names them.
    s.emu
        .add_user(User::new(stranger, "Sam Stranger", "sam@contoso.example"));
    let rows = s.approvals.list(EntraSource::DirectoryRole).await.unwrap();
    assert_eq!(rows[0].requester.label(), "Sam Stranger");
}

#[tokio::test]
async fn a_failing_source_keeps_its_own_state_and_the_others_go_on() {
    let s = start().await;
    s.emu.seed_demo_requests().unwrap();
    s.emu.set_page_size(1);
    for _ in 0..4 {
        s.emu
            .seed(RequestSeed::group(demo::MEGAN, demo::GROUP_PROD_DB).approvers(&[demo::ADELE]))
            .unwrap();
    }
    let sources = entra_sources(s.approvals.clone());
    assert_eq!(
        sources.iter().map(|x| x.source()).collect::<Vec<_>>(),
        EntraSource::ALL.to_vec()
    );
    let mut states: Vec<SourceState> = sources
        .iter()
        .map(|x| SourceState::new(x.source(), std::time::Duration::from_secs(30), s.now))
        .collect();
    s.emu
        .inject(Fault::unavailable("group/assignmentScheduleRequests", Some("40")).always());
    let mut counts = Vec::new();
    for (source, state) in sources.iter().zip(states.iter_mut()) {
        counts.push(
            poll(source, state, &s.clock)
                .await
                .map(|rows| rows.len())
                .ok(),
        );
    }
    assert_eq!(
        counts,
        vec![Some(2), None, Some(1)],
        "paged, and one source down"
    );
    assert!(matches!(
        states[0].status,
        SyncStatus::Synced { count: 2, .. }
    ));
    assert!(matches!(
        states[1].status,
        SyncStatus::Retrying { failures: 1, .. }
    ));
    let line = states[1].status_line(s.now);
    let request_id = s
        .emu
        .calls_to("group/assignmentScheduleRequests")
        .last()
        .unwrap()
        .request_id
        .clone();
    assert_eq!(
        line,
        format!("PIM groups: retrying in 40 s — 503 (request-id {request_id})")
    );
    assert_eq!(
        states[0].status_line(s.now),
        "Entra roles synced 0 s ago (2)"
    );
    // Graph recovers; the next poll is due when Graph said.
    s.emu.clear_faults();
    assert!(!states[1].due(s.now + Duration::seconds(39)));
    let rows = poll(&sources[1], &mut states[1], &s.clock).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert!(matches!(
        states[1].status,
        SyncStatus::Synced { count: 5, .. }
    ));
}
