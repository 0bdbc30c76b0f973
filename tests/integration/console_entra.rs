//! Entra's approvals in the console's state and screens, without a terminal: merged into the
//! inbox beside the governance server's requests, each source polled on its own (a failing one
//! keeps its rows and holds up nothing), my own request with no approve, the decide dialog
//! with the window fixed, and what each of Graph's answers does to the row.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sponsor_console::client::graph::DecisionOutcome;
use sponsor_console::console::keymap::Keymap;
use sponsor_console::console::state::dialog::{Confirm, Row};
use sponsor_console::console::state::{
    Action, Connection, Effect, EntraDecided, Identity, Item, Modal, PollFailure, State,
};
use sponsor_console::console::theme::Theme;
use sponsor_console::console::view::{self, Frame2};
use sponsor_console::domain::entra::{
    EntraApproval, EntraSource, Expiration, IsoDuration, Principal, RequestedWindow, Target, Ticket,
};
use sponsor_console::domain::policy::{Requirement, Sensitivity};
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::requests::{Decision, Request, RequestKind, RequestStatus};

const ME: &str = "0b4a5c8e-adele";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap()
}

fn local_request(n: u32, agent: &str) -> Request {
    Request {
        id: format!("req_{n:032x}"),
        kind: RequestKind::Elevation,
        agent_did: format!("did:mesh:{n:032x}"),
        agent_name: agent.into(),
        child_did: None,
        child_name: None,
        capabilities: vec!["write:erp:invoices".into()],
        duration_seconds: 3600,
        justification: "Month-end close.".into(),
        ticket: None,
        context: None,
        on_behalf_of: None,
        status: RequestStatus::Pending,
        reason: None,
        policy: Requirement {
            sensitivity: Sensitivity::Low,
            max_seconds: 4 * 3600,
            approvals_required: 1,
            approver_roles: vec![Role::SecurityLead],
        },
        approvals: vec![],
        trust_score: 700,
        created_at: now() - Duration::minutes(i64::from(n)),
        expires_at: now() + Duration::minutes(30 + i64::from(n)),
        decided_at: None,
        grant_id: None,
    }
}

fn row(source: EntraSource, id: &str, who: (&str, &str, &str), target: &str) -> EntraApproval {
    EntraApproval {
        source,
        id: id.into(),
        approval_id: id.into(),
        requester: Principal {
            id: who.0.into(),
            display_name: Some(who.1.into()),
            username: Some(who.2.into()),
        },
        created_by: None,
        target: Target {
            id: format!("{target}-id"),
            display_name: Some(target.into()),
        },
        scope: (source == EntraSource::DirectoryRole).then(|| "/".to_owned()),
        action: Some("selfActivate".into()),
        window: RequestedWindow {
            start: None,
            expiration: Expiration::AfterDuration {
                duration: IsoDuration::parse("PT2H").unwrap(),
            },
        },
        justification: Some("Rotate the break-glass accounts".into()),
        ticket: Some(Ticket {
            number: Some("CHG-4711".into()),
            system: Some("ServiceNow".into()),
        }),
        created_at: Some(now() - Duration::minutes(10)),
        status: "PendingApproval".into(),
    }
}

const MEGAN: (&str, &str, &str) = ("megan-oid", "Megan Bowen", "megan@contoso.example");
const ADELE: (&str, &str, &str) = (ME, "Adele Vance", "adele@contoso.example");

fn polled(source: EntraSource, rows: Vec<EntraApproval>) -> Action {
    Action::EntraPolled {
        source,
        result: Ok(rows),
        jitter: 0.5,
    }
}

/// Two local requests and, from Entra, Megan's role (soonest to expire after the local ones),
/// my own role request and a group request.
fn fixture() -> State {
    let identity = Identity {
        username: "adele@contoso.example".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut s = State::new(identity, Keymap::defaults(false), false);
    s.enable_entra(ME, StdDuration::from_secs(30), now());
    s.update(Action::Connection(Connection::Live), now());
    s.update(
        Action::Requests(Ok(vec![
            local_request(1, "invoice-reconciler"),
            local_request(2, "deploy-bot"),
        ])),
        now(),
    );
    let mut own = row(
        EntraSource::DirectoryRole,
        "r-own",
        ADELE,
        "User Administrator",
    );
    own.created_at = Some(now() - Duration::minutes(5));
    s.update(
        polled(
            EntraSource::DirectoryRole,
            vec![
                row(
                    EntraSource::DirectoryRole,
                    "r-1",
                    MEGAN,
                    "User Administrator",
                ),
                own,
            ],
        ),
        now(),
    );
    s.update(
        polled(
            EntraSource::PimGroup,
            vec![row(
                EntraSource::PimGroup,
                "g-1",
                MEGAN,
                "Production database operators",
            )],
        ),
        now(),
    );
    s.update(polled(EntraSource::AccessPackage, vec![]), now());
    s
}

fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typed(s: &mut State, text: &str) {
    for c in text.chars() {
        s.update(key(KeyCode::Char(c)), now());
    }
}

fn screen(state: &State) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
    terminal
        .draw(|f| {
            view::render(
                f,
                state,
                Frame2 {
                    now: now(),
                    offset: FixedOffset::east_opt(0).unwrap(),
                    theme: &Theme::default_theme(),
                },
            )
        })
        .unwrap();
    terminal.backend().to_string()
}

/// Moves the selection to the row whose key or id is `key`.
fn select(s: &mut State, key_of: &str) {
    s.update(key(KeyCode::Home), now());
    for _ in 0..s.inbox.len() {
        if s.selected_key().as_deref() == Some(key_of) {
            return;
        }
        s.update(key(KeyCode::Down), now());
    }
    panic!("{key_of} is not in the inbox");
}

#[test]
fn entra_rows_join_the_inbox_with_their_source() {
    let s = fixture();
    assert_eq!(s.inbox.len(), 5);
    assert_eq!(s.row_count(), 5);
    // Local requests expire within the hour; Entra's approvers have 24 hours.
    assert!(matches!(s.inbox[0], Item::Local(_)));
    assert!(matches!(s.inbox[4], Item::Entra(_)));
    let text = screen(&s);
    for needle in [
        "SOURCE",
        "WHO",
        "local",
        "Entra role",
        "PIM group",
        "Megan Bowen <megan@contoso.examp",
        "User Administrato",
        "yours",
        "Inbox (5)",
        "Entra synced 0 s ago (3)",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("entra_inbox", text);
}

#[test]
fn the_filter_finds_entra_rows_by_person_target_and_ticket() {
    let mut s = fixture();
    s.update(key(KeyCode::Char('/')), now());
    typed(&mut s, "operators");
    assert_eq!(s.inbox.len(), 1);
    assert_eq!(s.selected_key().as_deref(), Some("group:g-1"));
    s.update(key(KeyCode::Esc), now());
    s.update(key(KeyCode::Char('/')), now());
    typed(&mut s, "megan chg-4711");
    assert_eq!(s.inbox.len(), 2);
    s.update(key(KeyCode::Esc), now());
    assert_eq!(s.inbox.len(), 5, "esc clears the filter");
}

#[test]
fn sources_are_polled_on_their_own_and_a_failing_one_keeps_its_rows() {
    let identity = Identity {
        username: "adele".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut s = State::new(identity, Keymap::defaults(false), false);
    s.enable_entra(ME, StdDuration::from_secs(30), now());
    let polls = |effects: Vec<Effect>| -> Vec<EntraSource> {
        effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::PollEntra(source) => Some(source),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        polls(s.update(Action::Tick, now())),
        EntraSource::ALL.to_vec()
    );
    assert!(
        polls(s.update(Action::Tick, now())).is_empty(),
        "never two polls of one source at once"
    );
    s.update(
        polled(
            EntraSource::PimGroup,
            vec![row(EntraSource::PimGroup, "g-1", MEGAN, "Operators")],
        ),
        now(),
    );
    // The group source fails next time: its row stays, its failure is said, the others go on.
    let later = now() + Duration::seconds(40);
    assert_eq!(
        polls(s.update(Action::Tick, later)),
        vec![EntraSource::PimGroup]
    );
    s.update(
        Action::EntraPolled {
            source: EntraSource::PimGroup,
            result: Err(PollFailure {
                reason: "503 (request-id r-9)".into(),
                retry_after: Some(StdDuration::from_secs(40)),
            }),
            jitter: 0.5,
        },
        later,
    );
    assert_eq!(s.inbox.len(), 1, "the last good rows stay");
    let entra = s.entra.as_ref().unwrap();
    assert_eq!(
        sponsor_console::domain::entra::summary(&entra.sources, later),
        "Entra: PIM groups retrying in 40 s — 503 (request-id r-9)"
    );
    s.update(polled(EntraSource::DirectoryRole, vec![]), later);
    assert_eq!(s.inbox.len(), 1);
    // ctrl-r asks the sources not already being polled, now.
    let refresh = s.update(
        Action::Key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL)),
        later,
    );
    assert!(refresh.contains(&Effect::LoadRequests));
    assert_eq!(
        polls(refresh),
        vec![EntraSource::DirectoryRole, EntraSource::PimGroup]
    );
}

#[test]
fn my_own_request_has_no_approve() {
    let mut s = fixture();
    select(&mut s, "role:r-own");
    let text = screen(&s);
    assert!(!text.contains("a approve"), "{text}");
    s.update(key(KeyCode::Char('a')), now());
    assert!(s.modals.is_empty(), "no dialog");
    let flash = s.flash.clone().unwrap();
    assert!(
        flash.error && flash.text.contains("your own request"),
        "{flash:?}"
    );
    // Denying (withdrawing) one's own is Entra's call, but the dialog may open.
    select(&mut s, "role:r-1");
    assert!(screen(&s).contains("a approve"));
}

#[test]
fn approving_shows_the_fixed_window_and_needs_a_justification() {
    let mut s = fixture();
    select(&mut s, "role:r-1");
    s.update(key(KeyCode::Char('a')), now());
    let Some(Modal::Dialog(d)) = s.modals.last() else {
        panic!("a dialog")
    };
    assert!(d.duration().is_none(), "no duration picker");
    assert!(d.rows.iter().any(|r| matches!(r, Row::EntraWindow(_))));
    let text = screen(&s);
    for needle in [
        "Entra does not let an approver change it",
        "from approval until 2026-11-24 14:00 +00:00 local (2h)",
        "Approve in Entra",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("entra_decide_dialog", text);
    // Confirm with no justification: refused in the dialog.
    s.update(key(KeyCode::Right), now());
    s.update(key(KeyCode::Enter), now());
    assert!(matches!(s.modals.last(), Some(Modal::Dialog(d)) if d.error.is_some()));
    typed(&mut s, "CHG-4711 checked");
    s.update(key(KeyCode::Enter), now());
    let effects = s.update(key(KeyCode::Enter), now());
    let [
        Effect::DecideEntra {
            approval,
            decision,
            justification,
        },
    ] = &effects[..]
    else {
        panic!("one decision: {effects:?}")
    };
    assert_eq!(
        (approval.key(), *decision, justification.as_str()),
        ("role:r-1".to_owned(), Decision::Approve, "CHG-4711 checked")
    );
    assert!(s.modals.is_empty());
    assert!(screen(&s).contains("deciding…"));
}

#[test]
fn deny_uses_the_same_dialog_without_a_window() {
    let mut s = fixture();
    select(&mut s, "group:g-1");
    s.update(key(KeyCode::Char('d')), now());
    let Some(Modal::Dialog(d)) = s.modals.last() else {
        panic!("a dialog")
    };
    assert!(matches!(
        &d.action,
        Confirm::DecideEntra {
            decision: Decision::Deny,
            ..
        }
    ));
    assert!(!d.rows.iter().any(|r| matches!(r, Row::EntraWindow(_))));
}

fn decided(s: &mut State, key: &str, outcome: DecisionOutcome) {
    s.update(
        Action::EntraDecided {
            key: key.into(),
            decision: Decision::Approve,
            result: Ok(EntraDecided {
                outcome,
                recorded: Some(Ok(())),
            }),
        },
        now(),
    );
}

#[test]
fn what_each_answer_of_graph_does_to_the_row() {
    let mut s = fixture();
    let rid = || Some("req-77".to_owned());
    decided(
        &mut s,
        "role:r-1",
        DecisionOutcome::Done {
            stage_id: "r-1".into(),
            request_id: rid(),
            client_request_id: "c-1".into(),
        },
    );
    assert!(s.entra_row("role:r-1").is_none(), "done: the row leaves");
    let flash = s.flash.clone().unwrap();
    assert!(
        !flash.error
            && flash
                .text
                .contains("Approved in Entra: User Administrator for Megan Bowen"),
        "{flash:?}"
    );
    assert!(
        flash.text.contains("req-77"),
        "Graph's request-id: {flash:?}"
    );

    decided(
        &mut s,
        "group:g-1",
        DecisionOutcome::NotApprover { request_id: rid() },
    );
    assert!(s.entra_row("group:g-1").is_some(), "not mine: it stays");
    assert!(
        s.flash
            .clone()
            .unwrap()
            .text
            .contains("you are not an approver of this")
    );

    decided(
        &mut s,
        "group:g-1",
        DecisionOutcome::DecidedElsewhere {
            by: Some("Alex Wilber".into()),
            result: Some("Approved".into()),
            request_id: rid(),
        },
    );
    assert!(s.entra_row("group:g-1").is_none());
    assert!(
        s.flash
            .clone()
            .unwrap()
            .text
            .contains("decided by someone else: Alex Wilber")
    );

    // A failure on the way: never shown as done, the row stays.
    s.update(
        Action::EntraDecided {
            key: "role:r-own".into(),
            decision: Decision::Deny,
            result: Err("Graph: 503 (request-id r-5)".into()),
        },
        now(),
    );
    assert!(s.entra_row("role:r-own").is_some());
    let flash = s.flash.clone().unwrap();
    assert!(
        flash.error
            && flash
                .text
                .contains("Not decided: User Administrator for Adele Vance"),
        "{flash:?}"
    );

    // Done in Entra but not recorded by the governance server: said, as an error.
    s.update(
        Action::EntraDecided {
            key: "role:r-own".into(),
            decision: Decision::Deny,
            result: Ok(EntraDecided {
                outcome: DecisionOutcome::Done {
                    stage_id: "r-own".into(),
                    request_id: rid(),
                    client_request_id: "c-2".into(),
                },
                recorded: Some(Err("503".into())),
            }),
        },
        now(),
    );
    let flash = s.flash.clone().unwrap();
    assert!(
        flash.error && flash.text.contains("did not record it"),
        "{flash:?}"
    );
}

#[test]
fn the_detail_shows_everything_entra_said() {
    let mut s = fixture();
    select(&mut s, "role:r-1");
    s.update(key(KeyCode::Enter), now());
    assert!(matches!(s.modals.last(), Some(Modal::Detail { id, .. }) if id == "role:r-1"));
    let text = screen(&s);
    for needle in [
        "Entra role request role:r-1",
        "Megan Bowen",
        "megan@contoso.example",
        "megan-oid",
        "User Administrator",
        "scope        /",
        "asked      PT2H",
        "2026-11-24 14:00 +00:00 if approved now",
        "approvers have 24 hours",
        "Rotate the break-glass accounts",
        "CHG-4711 (ServiceNow)",
        "a approves, d denies",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    // Approve from the detail opens the same dialog.
    s.update(key(KeyCode::Char('a')), now());
    assert!(matches!(
        s.modals.last(),
        Some(Modal::Dialog(d)) if matches!(d.action, Confirm::DecideEntra { .. })
    ));
}

#[test]
fn without_entra_the_inbox_is_as_before() {
    let identity = Identity {
        username: "alice".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut s = State::new(identity, Keymap::defaults(false), false);
    s.update(
        Action::Requests(Ok(vec![local_request(1, "invoice-reconciler")])),
        now(),
    );
    assert!(s.update(Action::Tick, now()).is_empty());
    let text = screen(&s);
    assert!(
        !text.contains("SOURCE") && !text.contains("Entra"),
        "{text}"
    );
}

#[test]
fn rows_that_tie_keep_their_places_from_poll_to_poll() {
    let mut s = fixture();
    let order = |s: &State| -> Vec<String> {
        s.inbox
            .iter()
            .map(|item| match *item {
                Item::Local(i) => s.requests[i].id.clone(),
                Item::Action(i) => s.actions.rows[i].id.clone(),
                Item::Entra(i) => s.entra.as_ref().unwrap().rows[i].key(),
            })
            .collect()
    };
    let first = order(&s);
    // The same rows again, listed by Graph in the other order: nothing moves.
    let mut rows = vec![
        row(EntraSource::DirectoryRole, "r-2", MEGAN, "Global Reader"),
        row(
            EntraSource::DirectoryRole,
            "r-1",
            MEGAN,
            "User Administrator",
        ),
    ];
    s.update(polled(EntraSource::DirectoryRole, rows.clone()), now());
    let once = order(&s);
    rows.reverse();
    s.update(polled(EntraSource::DirectoryRole, rows), now());
    assert_eq!(order(&s), once);
    assert_eq!(first.len(), 5);
}
