//! Action requests (AGT's approvals) in the console's state and screens, without a terminal:
//! loaded beside the local requests (a failed or missing `/v1/actions` never empties or stalls
//! them), shown and sorted with them, the detail, the decide dialog with no duration and a
//! required justification, the server's answers, the event stream, expiry, and escaping of
//! every agent-written field.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use reqwest::StatusCode;
use sponsor_console::client::ClientError;
use sponsor_console::console::keymap::Keymap;
use sponsor_console::console::state::dialog::{Confirm, FieldId, Row};
use sponsor_console::console::state::{
    Action, Connection, Effect, EffectError, Identity, Item, Modal, State,
};
use sponsor_console::console::theme::Theme;
use sponsor_console::console::view::{self, Frame2};
use sponsor_console::domain::policy::{Requirement, Sensitivity};
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::actions::{
    Action as ActionRequest, ActionDecisionBody, ActionStatus,
};
use sponsor_console::protocol::audit::{Actor, AuditEvent, UnhashedEvent};
use sponsor_console::protocol::requests::{Decision, Request, RequestKind, RequestStatus};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap()
}

fn local_request(n: u32, agent: &str, minutes_left: i64) -> Request {
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
        expires_at: now() + Duration::minutes(minutes_left),
        decided_at: None,
        grant_id: None,
    }
}

fn ar_id(n: u32) -> String {
    format!("ar_{n:032x}")
}

/// An action request `minutes_left` from expiry; `name` when the server knows the agent.
fn action(
    n: u32,
    name: Option<&str>,
    agent_id: &str,
    via: Option<&str>,
    left: i64,
) -> ActionRequest {
    ActionRequest {
        id: ar_id(n),
        agent_id: agent_id.into(),
        agent_did: name.map(|_| format!("did:mesh:{:032x}", 100 + n)),
        agent_name: name.map(str::to_owned),
        integration: via.map(str::to_owned),
        subject_id: Some("user:finance-lead".into()),
        operation: "payments.transfer".into(),
        target_resource: Some("acct:ops-7".into()),
        policy_decision_id: format!("pd_{n:08x}"),
        policy_version: "finance-v12".into(),
        approval_chain_id: "chain-payments".into(),
        approval_chain_version: "3".into(),
        action_digest: format!("sha256:{}", "ab".repeat(32)),
        input_digest: format!("sha256:{}", "cd".repeat(32)),
        status: ActionStatus::Pending,
        created_at: now() - Duration::minutes(2),
        expires_at: now() + Duration::minutes(left),
        decided_at: None,
        approver_id: None,
        approver_username: None,
        justification: None,
    }
}

fn state() -> State {
    let identity = Identity {
        username: "alice".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut s = State::new(identity, Keymap::defaults(false), false);
    s.update(Action::Connection(Connection::Live), now());
    s.update(Action::TokenExpiry(now() + Duration::minutes(9)), now());
    s.update(Action::Requests(Ok(vec![])), now());
    s
}

/// Two local requests (expiring in 30 and 50 minutes) and two action requests: a known agent's
/// (10 minutes) and one only the `agent_id` names, through an integration (40 minutes).
fn fixture() -> State {
    let mut s = state();
    s.update(
        Action::Requests(Ok(vec![
            local_request(1, "invoice-reconciler", 30),
            local_request(2, "deploy-bot", 50),
        ])),
        now(),
    );
    s.update(
        Action::ActionRequests(Ok(vec![
            action(1, Some("payments-agent"), "did:mesh:x", None, 10),
            action(2, None, "*", Some("agt-prod"), 40),
        ])),
        now(),
    );
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
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
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

/// Moves the selection to the row whose id is `id`.
fn select(s: &mut State, id: &str) {
    s.update(key(KeyCode::Home), now());
    for _ in 0..s.inbox.len() {
        if s.selected_key().as_deref() == Some(id) {
            return;
        }
        s.update(key(KeyCode::Down), now());
    }
    panic!("{id} is not in the inbox");
}

fn api_error(status: StatusCode, code: &str, message: &str) -> EffectError {
    EffectError::Client(ClientError::Api {
        status,
        code: code.into(),
        message: message.into(),
    })
}

fn event(seq: i64, action: &str, id: &str) -> Action {
    Action::Event(Box::new(AuditEvent {
        event: UnhashedEvent {
            seq,
            at: now(),
            actor: Actor::agent("did:mesh:x"),
            action: action.into(),
            subject: "did:mesh:x".into(),
            details: serde_json::json!({ "approval_request_id": id, "operation": "payments.transfer" }),
            prev_hash: "0".repeat(64),
        },
        hash: format!("{seq:064x}"),
    }))
}

fn flash_text(s: &State) -> String {
    s.flash.as_ref().map(|f| f.text.clone()).unwrap_or_default()
}

// ---- loading -------------------------------------------------------------------------------

#[test]
fn start_and_refresh_load_the_action_requests() {
    let mut s = state();
    assert!(s.start().contains(&Effect::LoadActions));
    let refresh = s.update(
        Action::Key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL)),
        now(),
    );
    assert!(refresh.contains(&Effect::LoadActions), "{refresh:?}");
    assert!(refresh.contains(&Effect::LoadRequests), "{refresh:?}");
}

#[test]
fn action_rows_join_the_inbox_sorted_with_the_requests() {
    let s = fixture();
    assert_eq!(s.row_count(), 4);
    let order: Vec<String> = (0..s.inbox.len())
        .map(|i| match s.inbox[i] {
            Item::Local(j) => s.requests[j].id.clone(),
            Item::Action(j) => s.actions.rows[j].id.clone(),
            Item::Entra(_) => unreachable!(),
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ar_id(1),
            format!("req_{:032x}", 1),
            ar_id(2),
            format!("req_{:032x}", 2)
        ],
        "soonest to expire first, whatever the kind"
    );
    let text = screen(&s);
    for needle in [
        "KIND",
        "WHO",
        "WHAT",
        "action payments-agent",
        "* via agt-prod",
        "payments.transfe",
        "once",
        "Inbox (4)",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("actions_inbox", text);
}

#[test]
fn the_filter_finds_action_rows_by_operation_integration_and_agent_id() {
    let mut s = fixture();
    s.update(key(KeyCode::Char('/')), now());
    typed(&mut s, "agt-prod");
    assert_eq!(s.inbox.len(), 1);
    assert_eq!(s.selected_key(), Some(ar_id(2)));
    s.update(key(KeyCode::Esc), now());
    s.update(key(KeyCode::Char('/')), now());
    typed(&mut s, "payments.transfer");
    assert_eq!(s.inbox.len(), 2);
}

#[test]
fn a_failed_load_keeps_the_rows_and_never_touches_the_local_inbox() {
    let mut s = fixture();
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    s.update(Action::ActionRequests(Err(EffectError::Io(refused))), now());
    assert_eq!(s.actions.rows.len(), 2, "the last good rows stay");
    assert_eq!(s.requests.len(), 2);
    assert_eq!(s.inbox.len(), 4);
    assert!(s.actions.error.is_some());
    assert!(s.flash.as_ref().is_some_and(|f| f.error));
    let text = screen(&s);
    assert!(
        text.contains("action requests could not be loaded"),
        "{text}"
    );
    // The next good load clears it.
    s.update(
        Action::ActionRequests(Ok(vec![action(3, Some("a3"), "a3", None, 5)])),
        now(),
    );
    assert!(s.actions.error.is_none());
    assert_eq!(s.inbox.len(), 3);
}

#[test]
fn a_server_without_action_requests_has_none_quietly() {
    let mut s = fixture();
    s.flash = None;
    s.update(
        Action::ActionRequests(Err(api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route",
        ))),
        now(),
    );
    assert!(s.actions.rows.is_empty());
    assert!(s.actions.error.is_none());
    assert!(s.flash.is_none(), "quietly");
    assert_eq!(s.inbox.len(), 2, "the local requests stay");
    let text = screen(&s);
    assert!(text.contains("AGENT") && !text.contains("WHO"), "{text}");
}

// ---- detail and decisions ------------------------------------------------------------------

#[test]
fn the_detail_shows_everything_an_approval_is_bound_to() {
    let mut s = fixture();
    select(&mut s, &ar_id(2));
    assert!(s.update(key(KeyCode::Enter), now()).is_empty());
    assert!(matches!(s.modals.last(), Some(Modal::Detail { id, .. }) if *id == ar_id(2)));
    let text = screen(&s);
    for needle in [
        "agent_id     *",
        "integration    agt-prod",
        "subject        user:finance-lead",
        "operation      payments.transfer",
        "target         acct:ops-7",
        "policy         finance-v12",
        "decision id  pd_00000002",
        "approval chain chain-payments version 3",
        "action digest  sha256:abab",
        "input digest   sha256:cdcd",
        "expires        2026-11-24 12:40 +00:00 (in 40m)",
        "status         pending",
        "asked at       2026-11-24 11:58 +00:00",
        "for one execution",
        "a approves once, d denies",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("action_detail", text);
}

#[test]
fn approving_is_two_steps_with_a_justification_and_no_duration() {
    let mut s = fixture();
    select(&mut s, &ar_id(1));
    assert!(s.update(key(KeyCode::Char('a')), now()).is_empty());
    let Some(Modal::Dialog(d)) = s.modals.last() else {
        panic!("a dialog")
    };
    assert!(matches!(
        &d.action,
        Confirm::DecideAction { id, decision: Decision::Approve } if *id == ar_id(1)
    ));
    assert_eq!(d.focus, sponsor_console::console::state::Focus::Cancel);
    assert!(d.duration().is_none(), "no duration");
    assert!(
        !d.rows.iter().any(|r| matches!(r, Row::Checks(_))),
        "nothing to narrow"
    );
    let text = screen(&s);
    for needle in [
        "Approve the action of payments-agent",
        "payments-agent asks to run payments.transfer @ acct:ops-7",
        "exact action once",
        "[ Approve once ]",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("action_decide_dialog", text);
    // Confirming with no justification is refused in the dialog.
    s.update(key(KeyCode::Right), now());
    assert!(s.update(key(KeyCode::Enter), now()).is_empty());
    assert!(matches!(s.modals.last(), Some(Modal::Dialog(d)) if d.error.is_some()));
    typed(&mut s, "INC-88 checked");
    s.update(key(KeyCode::Enter), now());
    let effects = s.update(key(KeyCode::Enter), now());
    assert_eq!(
        effects,
        vec![Effect::DecideAction {
            id: ar_id(1),
            body: ActionDecisionBody {
                decision: Decision::Approve,
                justification: "INC-88 checked".into(),
            },
        }]
    );
    assert!(s.modals.is_empty());
    assert!(s.actions.deciding.contains(&ar_id(1)));
    assert!(screen(&s).contains("deciding…"));
    // The answer settles the row.
    let mut approved = action(1, Some("payments-agent"), "did:mesh:x", None, 10);
    approved.status = ActionStatus::Approved;
    approved.approver_username = Some("alice".into());
    approved.justification = Some("INC-88 checked".into());
    approved.decided_at = Some(now());
    let effects = s.update(
        Action::ActionDecided {
            id: ar_id(1),
            result: Ok(approved),
        },
        now(),
    );
    assert!(effects.is_empty());
    assert!(s.actions.deciding.is_empty());
    assert_eq!(s.inbox.len(), 3);
    assert!(s.actions.rows.iter().all(|a| a.id != ar_id(1)));
    assert_eq!(
        flash_text(&s),
        "Approved once: payments.transfer @ acct:ops-7 for payments-agent"
    );
    let kept = s.action_request(&ar_id(1)).expect("kept as settled");
    assert_eq!(kept.status, ActionStatus::Approved);
}

#[test]
fn deny_uses_the_same_dialog() {
    let mut s = fixture();
    select(&mut s, &ar_id(2));
    s.update(key(KeyCode::Char('d')), now());
    let Some(Modal::Dialog(d)) = s.modals.last() else {
        panic!("a dialog")
    };
    assert!(matches!(
        &d.action,
        Confirm::DecideAction {
            decision: Decision::Deny,
            ..
        }
    ));
    assert!(d.duration().is_none());
    typed(&mut s, "not during the freeze");
    s.update(key(KeyCode::Enter), now());
    let effects = s.update(key(KeyCode::Enter), now());
    assert!(matches!(
        &effects[..],
        [Effect::DecideAction { id, body }]
            if *id == ar_id(2) && body.decision == Decision::Deny
                && body.justification == "not during the freeze"
    ));
}

#[test]
fn the_detail_decides_the_action_it_shows_and_marks_pass_it_by() {
    let mut s = fixture();
    select(&mut s, &ar_id(2));
    // Space does not mark an action request: it says why.
    s.update(key(KeyCode::Char(' ')), now());
    assert!(s.marks.is_empty());
    assert!(flash_text(&s).contains("one at a time"));
    s.update(key(KeyCode::Enter), now());
    s.update(key(KeyCode::Char('a')), now());
    assert!(matches!(
        s.modals.last(),
        Some(Modal::Dialog(d)) if matches!(&d.action, Confirm::DecideAction { id, .. } if *id == ar_id(2))
    ));
    assert_eq!(
        s.modals.len(),
        2,
        "the dialog opens over the detail: {:?}",
        s.modals
    );
}

#[test]
fn a_conflict_shows_the_servers_message_and_reads_the_row_again() {
    let mut s = fixture();
    select(&mut s, &ar_id(1));
    s.update(key(KeyCode::Char('d')), now());
    typed(&mut s, "no");
    s.update(key(KeyCode::Enter), now());
    s.update(key(KeyCode::Enter), now());
    let effects = s.update(
        Action::ActionDecided {
            id: ar_id(1),
            result: Err(api_error(
                StatusCode::CONFLICT,
                "already_decided",
                "this action request was already approved",
            )),
        },
        now(),
    );
    assert_eq!(effects, vec![Effect::LoadAction(ar_id(1))]);
    let flash = s.flash.clone().unwrap();
    assert!(flash.error);
    assert!(
        flash
            .text
            .contains("this action request was already approved"),
        "{flash:?}"
    );
    assert!(s.actions.deciding.is_empty());
    assert_eq!(s.inbox.len(), 4, "the row stays until it is read again");
    let mut other = action(1, Some("payments-agent"), "did:mesh:x", None, 10);
    other.status = ActionStatus::Approved;
    other.approver_username = Some("bob".into());
    s.update(
        Action::ActionRequest {
            id: ar_id(1),
            result: Ok(other),
        },
        now(),
    );
    assert_eq!(s.inbox.len(), 3);
    // Any other failure keeps the row as it was, decidable again.
    select(&mut s, &ar_id(2));
    s.update(
        Action::ActionDecided {
            id: ar_id(2),
            result: Err(EffectError::StreamClosed),
        },
        now(),
    );
    assert_eq!(s.inbox.len(), 3);
    assert!(flash_text(&s).starts_with("Not decided: "));
}

#[test]
fn a_decided_detail_shows_who_decided_and_why() {
    let mut s = fixture();
    select(&mut s, &ar_id(2));
    s.update(key(KeyCode::Enter), now());
    // Someone else denies it while I look: the row leaves, the detail reads it again.
    let effects = s.update(event(7, "action.denied", &ar_id(2)), now());
    assert_eq!(effects, vec![Effect::LoadAction(ar_id(2))]);
    assert!(s.actions.rows.iter().all(|a| a.id != ar_id(2)));
    let mut denied = action(2, None, "*", Some("agt-prod"), 40);
    denied.status = ActionStatus::Denied;
    denied.approver_username = Some("bob".into());
    denied.decided_at = Some(now() - Duration::seconds(5));
    denied.justification = Some("Transfers wait for\nthe quarter close.".into());
    s.update(
        Action::ActionRequest {
            id: ar_id(2),
            result: Ok(denied),
        },
        now(),
    );
    let text = screen(&s);
    for needle in [
        "status         denied (no longer pending)",
        "decided by     bob",
        "Transfers wait for",
        "the quarter close.",
        "no longer pending",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    // Nothing decides a settled one.
    s.update(key(KeyCode::Char('a')), now());
    assert!(!matches!(s.modals.last(), Some(Modal::Dialog(_))));
}

// ---- live updates and expiry ---------------------------------------------------------------

#[test]
fn the_event_stream_adds_and_settles_action_requests() {
    let mut s = fixture();
    s.update(key(KeyCode::Char('2')), now());
    let effects = s.update(event(1, "action.submitted", &ar_id(5)), now());
    assert_eq!(effects[0], Effect::LoadAction(ar_id(5)));
    assert!(
        matches!(&effects[1], Effect::Notify { title, body } if title == "New action request" && body.contains("payments.transfer")),
        "{effects:?}"
    );
    assert_eq!(s.badge, 1);
    s.update(
        Action::ActionRequest {
            id: ar_id(5),
            result: Ok(action(5, Some("a5"), "a5", None, 20)),
        },
        now(),
    );
    assert_eq!(s.row_count(), 5);
    // A redelivery reads it again; the same id is one row.
    assert_eq!(
        s.update(event(2, "action.redelivered", &ar_id(5)), now()),
        vec![Effect::LoadAction(ar_id(5))]
    );
    s.update(
        Action::ActionRequest {
            id: ar_id(5),
            result: Ok(action(5, Some("a5"), "a5", None, 25)),
        },
        now(),
    );
    assert_eq!(s.row_count(), 5);
    // Approved, denied, expired elsewhere: each leaves at once, with no read.
    for (seq, (what, n)) in [
        ("action.approved", 5),
        ("action.denied", 1),
        ("action.expired", 2),
    ]
    .into_iter()
    .enumerate()
    {
        let effects = s.update(event(10 + seq as i64, what, &ar_id(n)), now());
        assert!(effects.is_empty(), "{what}: {effects:?}");
    }
    assert!(s.actions.rows.is_empty());
    assert_eq!(s.row_count(), 2);
    assert_eq!(
        s.action_request(&ar_id(2)).map(|a| a.status),
        Some(ActionStatus::Expired)
    );
    // An event about an action I never saw changes nothing; one read that is gone or not mine
    // is not added.
    assert!(
        s.update(event(20, "action.approved", &ar_id(9)), now())
            .is_empty()
    );
    s.update(
        Action::ActionRequest {
            id: ar_id(9),
            result: Err(api_error(StatusCode::FORBIDDEN, "forbidden", "not yours")),
        },
        now(),
    );
    assert_eq!(s.row_count(), 2);
}

#[test]
fn expired_action_requests_drop_out_when_their_time_passes() {
    let mut s = fixture();
    s.update(Action::Tick, now() + Duration::minutes(9));
    assert_eq!(s.row_count(), 4);
    s.update(Action::Tick, now() + Duration::minutes(10));
    assert_eq!(s.row_count(), 3);
    assert!(s.actions.rows.iter().all(|a| a.id != ar_id(1)));
    s.update(Action::Tick, now() + Duration::minutes(45));
    assert!(s.actions.rows.is_empty());
    assert_eq!(s.requests.len(), 1, "the local one of 50 minutes stays");
}

// ---- escaping ------------------------------------------------------------------------------

#[test]
fn every_agent_written_field_of_an_action_request_is_escaped() {
    let evil = "x\u{1b}]0;pwned\u{7}\u{202e}y";
    let mut a = action(1, Some(evil), evil, Some(evil), 10);
    a.agent_did = Some(evil.into());
    a.subject_id = Some(evil.into());
    a.operation = evil.into();
    a.target_resource = Some(evil.into());
    a.policy_decision_id = evil.into();
    a.policy_version = evil.into();
    a.approval_chain_id = evil.into();
    a.approval_chain_version = evil.into();
    a.action_digest = evil.into();
    a.input_digest = evil.into();
    let mut s = state();
    s.update(Action::ActionRequests(Ok(vec![a.clone()])), now());
    let check = |text: &str, at: &str| {
        assert!(!text.contains('\u{1b}'), "{at}: ESC reached the screen");
        assert!(!text.contains('\u{202e}'), "{at}: bidi reached the screen");
        assert!(
            text.contains("x\\e]0;pwned\\x07\\u{202e}y"),
            "{at}:\n{text}"
        );
    };
    // The inbox's columns cut it short; what shows is escaped.
    let inbox = screen(&s);
    assert!(!inbox.contains('\u{1b}') && !inbox.contains('\u{202e}'));
    assert!(inbox.contains("x\\e]0;pwned\\x07"), "{inbox}");
    s.update(key(KeyCode::Enter), now());
    check(&screen(&s), "detail");
    s.update(key(KeyCode::Char('a')), now());
    check(&screen(&s), "dialog");
    // Decided: the approver and the justification too.
    s.update(key(KeyCode::Esc), now());
    a.status = ActionStatus::Approved;
    a.approver_username = Some(evil.into());
    a.justification = Some(evil.into());
    s.update(
        Action::ActionRequest {
            id: ar_id(1),
            result: Ok(a),
        },
        now(),
    );
    let text = screen(&s);
    check(&text, "decided detail");
    assert!(text.contains("decided by"), "{text}");
}

#[test]
fn the_decide_dialog_requires_a_justification() {
    let mut s = fixture();
    select(&mut s, &ar_id(1));
    s.update(key(KeyCode::Char('a')), now());
    let Some(Modal::Dialog(d)) = s.modals.last() else {
        panic!("a dialog")
    };
    assert!(
        d.rows
            .iter()
            .any(|r| matches!(r, Row::Text(t) if t.id == FieldId::Justification))
    );
    assert_eq!(
        d.validate().map_err(|e| e.to_string()),
        Err("a justification is required".to_owned())
    );
}

#[test]
fn beside_entra_rows_an_action_row_names_its_source() {
    let mut s = fixture();
    s.enable_entra("me", std::time::Duration::from_secs(30), now());
    let mut terminal = Terminal::new(TestBackend::new(120, 12)).unwrap();
    terminal
        .draw(|f| {
            view::render(
                f,
                &s,
                Frame2 {
                    now: now(),
                    offset: FixedOffset::east_opt(0).unwrap(),
                    theme: &Theme::default_theme(),
                },
            )
        })
        .unwrap();
    let text = terminal.backend().to_string();
    for needle in [
        "SOURCE     KIND   WHO",
        "AGT        action payments-agent",
        "local      elev   invoice-reconciler",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
}
