//! The console without a terminal: state updates (actions in, mode and effects out), insta
//! snapshots of every screen at 100×30 with a fixed clock, the colour of critical rows, and
//! injection of control sequences through every agent-written field.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use sponsor_console::client::checkpoint::{AuditVerdict, CheckpointProblem};
use sponsor_console::console::keymap::Keymap;
use sponsor_console::console::state::dialog::{Confirm, Dialog, DurationField, PRESETS, Row};
use sponsor_console::console::state::{
    Action, Effect, EffectError, Focus, Identity, Modal, RequestsPage, State,
};
use sponsor_console::console::theme::Theme;
use sponsor_console::console::view::{self, Frame2};
use sponsor_console::domain::policy::{Requirement, Sensitivity};
use sponsor_console::domain::role::Role;
use sponsor_console::domain::trust::Tier;
use sponsor_console::protocol::agents::{Agent, AgentStatus, SponsorRef};
use sponsor_console::protocol::audit::{
    Actor, AuditEvent, StateDifference, StateReport, UnhashedEvent, VerifyReport,
};
use sponsor_console::protocol::requests::{
    Decision, Grant, Request, RequestKind, RequestStatus, TrustPoint, TrustReport,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap()
}

fn requirement(sensitivity: Sensitivity, max: i64, approvals: u8) -> Requirement {
    Requirement {
        sensitivity,
        max_seconds: max,
        approvals_required: approvals,
        approver_roles: vec![Role::SecurityLead],
    }
}

fn request(n: u32, agent: &str, caps: &[&str], sensitivity: Sensitivity, trust: i64) -> Request {
    Request {
        id: format!("req_{n:032x}"),
        kind: RequestKind::Elevation,
        agent_did: format!("did:mesh:{n:032x}"),
        agent_name: agent.into(),
        child_did: None,
        child_name: None,
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        duration_seconds: 7200,
        justification: "Month-end close: 37 unmatched invoices need their status set to disputed."
            .into(),
        ticket: Some(format!("FIN-{n}")),
        context: Some("step 4/6 of close-checklist: erp.bulk_update_status".into()),
        on_behalf_of: None,
        status: RequestStatus::Pending,
        reason: None,
        policy: requirement(
            sensitivity,
            4 * 3600,
            if sensitivity == Sensitivity::Critical {
                2
            } else {
                1
            },
        ),
        approvals: vec![],
        trust_score: trust,
        created_at: now() - Duration::minutes(i64::from(n) * 3),
        expires_at: now() + Duration::minutes(60 - i64::from(n) * 3),
        decided_at: None,
        grant_id: None,
    }
}

fn agent(n: u32, name: &str, status: AgentStatus) -> Agent {
    Agent {
        did: format!("did:mesh:{n:032x}"),
        name: name.into(),
        public_key: "AAAA".into(),
        sponsors: vec![SponsorRef {
            id: "s1".into(),
            username: "alice".into(),
            display_name: "Alice".into(),
        }],
        capabilities: vec!["read:erp:invoices".into()],
        status,
        status_reason: None,
        suspension_security: false,
        status_changed_at: None,
        status_changed_by: None,
        trust_score: 520,
        trust_tier: Tier::Standard,
        parent_did: None,
        delegation_depth: 0,
        entra_object_id: None,
        model: Some("claude-sonnet-4".into()),
        runtime: Some("langgraph 0.3".into()),
        created_at: now() - Duration::days(3),
        updated_at: now() - Duration::days(1),
    }
}

fn fixture(read_only: bool) -> State {
    let identity = Identity {
        username: "alice".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut s = State::new(identity, Keymap::defaults(read_only), read_only);
    let t = now();
    s.update(
        Action::Connection(sponsor_console::console::state::Connection::Live),
        t,
    );
    s.update(Action::TokenExpiry(t + Duration::minutes(9)), t);
    s.update(
        Action::Requests(Ok(vec![
            request(
                1,
                "invoice-reconciler-01",
                &["write:erp:invoices"],
                Sensitivity::High,
                610,
            ),
            request(
                2,
                "data-pipeline-02",
                &["delete:warehouse:staging-old"],
                Sensitivity::Critical,
                540,
            ),
            request(
                3,
                "sales-researcher-01",
                &["read:crm:accounts"],
                Sensitivity::Low,
                720,
            ),
            request(
                4,
                "support-triage-03",
                &["read:crm:leads"],
                Sensitivity::Low,
                410,
            ),
        ])),
        t,
    );
    s.update(
        Action::Agents(Ok(vec![
            agent(1, "invoice-reconciler-01", AgentStatus::Active),
            agent(2, "data-pipeline-02", AgentStatus::Active),
            agent(3, "sales-researcher-01", AgentStatus::Suspended),
        ])),
        t,
    );
    s.update(
        Action::Grants(Ok(vec![Grant {
            id: "grt_00000000000000000000000000000001".into(),
            agent_did: format!("did:mesh:{:032x}", 1),
            capabilities: vec!["send:email:vendors".into()],
            not_before: t - Duration::minutes(20),
            not_after: t + Duration::minutes(40),
            request_id: "req_x".into(),
            source_grant_id: None,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            active: true,
        }])),
        t,
    );
    let events = (1..=5)
        .map(|i| AuditEvent {
            event: UnhashedEvent {
                seq: i,
                at: t - Duration::minutes(10 - i),
                actor: Actor::agent(format!("did:mesh:{:032x}", 1)),
                action: if i % 2 == 0 {
                    "token.issued".into()
                } else {
                    "request.submitted".into()
                },
                subject: format!("did:mesh:{:032x}", 1),
                details: serde_json::json!({}),
                prev_hash: "0".repeat(64),
            },
            hash: format!("{i:064x}"),
        })
        .collect();
    s.update(Action::Audit(Ok(events)), t);
    s
}

fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(c: char) -> Action {
    key(KeyCode::Char(c))
}

fn typed(s: &mut State, text: &str) {
    for c in text.chars() {
        s.update(ch(c), now());
    }
}

/// The dialog on top.
fn dialog(s: &State) -> &Dialog {
    match s.modals.last() {
        Some(Modal::Dialog(d)) => d,
        other => panic!("no dialog on top: {other:?}"),
    }
}

/// The duration field of the dialog on top.
fn duration(s: &State) -> &DurationField {
    dialog(s).duration().expect("a duration field")
}

fn draw(state: &State, theme: &Theme) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal
        .draw(|f| {
            view::render(
                f,
                state,
                Frame2 {
                    now: now(),
                    offset: FixedOffset::east_opt(0).unwrap(),
                    theme,
                },
            )
        })
        .unwrap();
    terminal
}

fn screen(state: &State) -> String {
    draw(state, &Theme::default_theme()).backend().to_string()
}

// ---- snapshots -----------------------------------------------------------------------------

#[test]
fn snapshot_inbox() {
    let s = fixture(false);
    insta::assert_snapshot!("inbox", screen(&s));
}

#[test]
fn snapshot_inbox_filtered_sorted_and_marked() {
    let mut s = fixture(false);
    s.update(ch('/'), now());
    typed(&mut s, "read");
    s.update(key(KeyCode::Enter), now());
    s.update(ch('o'), now());
    s.update(ch(' '), now());
    insta::assert_snapshot!("inbox_filtered", screen(&s));
}

#[test]
fn snapshot_detail() {
    let mut s = fixture(false);
    s.update(key(KeyCode::Enter), now());
    let did = s.selected_request().unwrap().agent_did.clone();
    let history = (0..12)
        .map(|i| TrustPoint {
            at: now() - Duration::hours(12 - i),
            score: 480 + i * 11,
            delta: 11,
            reason: "request_approved".into(),
        })
        .collect();
    s.update(
        Action::Trust(
            did.clone(),
            TrustReport {
                did,
                score: 610,
                tier: Tier::Standard,
                history,
            },
        ),
        now(),
    );
    insta::assert_snapshot!("detail", screen(&s));
}

#[test]
fn snapshot_decide_dialog() {
    let mut s = fixture(false);
    s.update(ch('a'), now());
    insta::assert_snapshot!("decide", screen(&s));
}

#[test]
fn snapshot_deny_and_suspend_dialogs() {
    let mut s = fixture(false);
    s.update(ch('d'), now());
    insta::assert_snapshot!("deny", screen(&s));
    s.update(key(KeyCode::Esc), now());
    s.update(ch('s'), now());
    insta::assert_snapshot!("suspend", screen(&s));
}

#[test]
fn snapshot_agents_grants_audit_help() {
    let mut s = fixture(false);
    s.update(ch('2'), now());
    insta::assert_snapshot!("agents", screen(&s));
    s.update(ch('3'), now());
    insta::assert_snapshot!("grants", screen(&s));
    s.update(ch('4'), now());
    s.update(
        Action::Verified(Ok(AuditVerdict {
            report: VerifyReport {
                ok: true,
                count: 5,
                head: "ab".repeat(32),
                first_bad_seq: None,
                reason: None,
                at: None,
                checkpoint: None,
            },
            compared: Vec::new(),
            problem: None,
            kept: None,
        })),
        now(),
    );
    insta::assert_snapshot!("audit", screen(&s));
    s.update(ch('?'), now());
    insta::assert_snapshot!("help_audit", screen(&s));
}

fn checkpoint(seq: i64) -> sponsor_console::protocol::audit::Checkpoint {
    sponsor_console::protocol::audit::Checkpoint {
        seq,
        hash: "ab".repeat(32),
        at: now(),
        issuer: "http://127.0.0.1:7070".into(),
        kid: "k1".into(),
        jws: "x.y.z".into(),
    }
}

fn report(count: i64) -> VerifyReport {
    VerifyReport {
        ok: true,
        count,
        head: "cd".repeat(32),
        first_bad_seq: None,
        reason: None,
        at: None,
        checkpoint: None,
    }
}

/// The row of the screen holding `text`, and the foreground colour of its first character.
fn colour_of(state: &State, text: &str) -> Option<(String, Color)> {
    let terminal = draw(state, &Theme::default_theme());
    let buffer = terminal.backend().buffer();
    for y in 0..buffer.area.height {
        let cells: Vec<_> = (0..buffer.area.width)
            .filter_map(|x| buffer.cell((x, y)))
            .collect();
        let row: String = cells.iter().map(|c| c.symbol()).collect();
        if let Some(byte) = row.find(text) {
            let col = row[..byte].chars().count();
            return Some((row.clone(), cells[col].fg));
        }
    }
    None
}

#[test]
fn the_audit_screen_shows_the_checkpoint_kept_and_a_red_disagreement() {
    let mut s = fixture(false);
    s.update(ch('4'), now());
    s.update(
        Action::Verified(Ok(AuditVerdict {
            report: report(9),
            compared: vec![checkpoint(7)],
            problem: None,
            kept: Some(checkpoint(9)),
        })),
        now(),
    );
    let text = screen(&s);
    assert!(
        text.contains("agrees with the checkpoint of seq 7"),
        "{text}"
    );
    assert!(text.contains("checkpoint kept: seq 9"), "{text}");

    s.update(
        Action::Verified(Ok(AuditVerdict {
            report: report(5),
            compared: vec![checkpoint(7)],
            problem: Some(CheckpointProblem::Disagrees(
                sponsor_console::domain::checkpoint::Disagreement::Shorter { kept: 7, count: 5 },
            )),
            kept: Some(checkpoint(7)),
        })),
        now(),
    );
    let (row, fg) = colour_of(&s, "CHAIN DOES NOT HOLD").expect("the failure is shown");
    assert!(row.contains("shortened"), "{row}");
    assert_eq!(fg, Color::Red);
    assert!(!screen(&s).contains("agrees with"));
}

#[test]
fn snapshot_read_only_and_production() {
    let mut s = fixture(true);
    s.identity.environment = "production".into();
    insta::assert_snapshot!("read_only_production", screen(&s));
}

#[test]
fn snapshot_loading_failure_and_reconnecting() {
    let mut s = fixture(false);
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    s.update(Action::Requests(Err(EffectError::Io(refused))), now());
    s.update(
        Action::Connection(sponsor_console::console::state::Connection::Reconnecting {
            attempt: 3,
            error: EffectError::StreamClosed,
        }),
        now(),
    );
    insta::assert_snapshot!("failure", screen(&s));
}

// ---- state updates -------------------------------------------------------------------------

#[test]
fn approving_is_two_steps_and_cancel_has_the_focus() {
    let mut s = fixture(false);
    assert!(s.update(ch('a'), now()).is_empty());
    let form = dialog(&s);
    assert!(
        matches!(form.action, Confirm::Approve { .. }),
        "decide dialog"
    );
    assert_eq!(form.focus, Focus::Cancel);
    assert_eq!(
        duration(&s).max_seconds,
        7200,
        "min(requested 2h, policy 4h)"
    );
    // Enter on the focused Cancel closes without acting.
    assert!(s.update(key(KeyCode::Enter), now()).is_empty());
    assert!(s.modals.is_empty());

    // Confirm without a justification is refused in place.
    s.update(ch('a'), now());
    s.update(key(KeyCode::Right), now()); // Cancel → Confirm
    assert!(s.update(key(KeyCode::Enter), now()).is_empty());
    let form = dialog(&s);
    assert!(form.error.unwrap().to_string().contains("justification"));

    // Narrow: 15 minutes, justification typed, confirm.
    s.update(key(KeyCode::BackTab), now()); // Confirm → Cancel
    s.update(key(KeyCode::BackTab), now()); // → justification
    typed(&mut s, "ticket FIN-1 checked");
    s.update(key(KeyCode::Tab), now()); // Cancel
    for _ in 0..2 {
        s.update(key(KeyCode::Tab), now()); // Confirm, wrap to presets
    }
    // The presets are the first row of the decide dialog.
    assert_eq!(dialog(&s).focus, Focus::Field { row: 0, item: 0 });
    s.update(key(KeyCode::Left), now()); // the asked 2h (custom) → 1h
    s.update(key(KeyCode::Left), now()); // 1h → 15m
    assert_eq!(duration(&s).seconds(), Ok(900));
    let effects = loop {
        if dialog(&s).focus == Focus::Confirm {
            break s.update(key(KeyCode::Enter), now());
        }
        s.update(key(KeyCode::Tab), now());
    };
    assert_eq!(effects.len(), 1);
    let Effect::Decide { id, body } = &effects[0] else {
        panic!("{effects:?}")
    };
    assert_eq!(id, &s.selected_request().unwrap().id);
    assert_eq!(body.decision, Decision::Approve);
    assert_eq!(body.duration_seconds, Some(900));
    assert_eq!(body.capabilities, None, "all requested capabilities");
    assert_eq!(body.justification, "ticket FIN-1 checked");
    assert!(s.modals.is_empty());
}

#[test]
fn every_dialog_opens_on_cancel() {
    let mut s = fixture(false);
    let mut opened = Vec::new();
    for (keys, what) in [
        ("a", "approve"),
        ("d", "deny"),
        ("s", "suspend"),
        ("2S", "suspend all"),
        ("2jjr", "reactivate"),
        ("3x", "revoke"),
    ] {
        s.update(ch('1'), now());
        typed(&mut s, keys);
        let d = dialog(&s);
        assert_eq!(d.focus, Focus::Cancel, "{what}");
        opened.push(std::mem::discriminant(&d.action));
        s.update(key(KeyCode::Esc), now());
        assert!(s.modals.is_empty(), "{what}: esc closes");
    }
    opened.dedup();
    assert_eq!(opened.len(), 6, "six different dialogs");
}

#[test]
fn typing_while_a_button_has_the_focus_is_not_lost() {
    let mut s = fixture(false);
    s.update(ch('d'), now());
    assert_eq!(dialog(&s).focus, Focus::Cancel);
    typed(&mut s, "spam");
    s.update(key(KeyCode::Tab), now()); // Cancel
    s.update(key(KeyCode::Tab), now()); // Confirm
    let effects = s.update(key(KeyCode::Enter), now());
    assert!(
        matches!(&effects[..], [Effect::Decide { body, .. }] if body.decision == Decision::Deny && body.justification == "spam"),
        "{effects:?}"
    );
}

#[test]
fn presets_above_the_cap_cannot_be_chosen() {
    let mut s = fixture(false);
    s.update(ch('a'), now());
    s.update(key(KeyCode::Tab), now());
    s.update(key(KeyCode::Tab), now()); // presets
    for _ in 0..10 {
        s.update(key(KeyCode::Right), now());
        let form = duration(&s);
        assert!(form.chosen >= 4 || [900, 3600].contains(&PRESETS[form.chosen].0));
    }
}

#[test]
fn deny_needs_a_reason_and_esc_never_quits() {
    let mut s = fixture(false);
    s.update(ch('d'), now());
    s.update(key(KeyCode::Right), now()); // Cancel → Confirm
    assert!(s.update(key(KeyCode::Enter), now()).is_empty());
    s.update(key(KeyCode::Tab), now()); // → text
    typed(&mut s, "not for this task");
    s.update(key(KeyCode::Tab), now());
    s.update(key(KeyCode::Tab), now());
    let effects = s.update(key(KeyCode::Enter), now());
    assert!(
        matches!(&effects[..], [Effect::Decide { body, .. }] if body.decision == Decision::Deny && body.justification == "not for this task")
    );
    for _ in 0..5 {
        assert!(!s.update(key(KeyCode::Esc), now()).contains(&Effect::Quit));
    }
    assert!(!s.quit);
    assert_eq!(s.update(ch('q'), now()), vec![Effect::Quit]);
}

#[test]
fn bulk_actions_on_marks() {
    let mut s = fixture(false);
    // Mark everything: bulk approve is refused (high, critical and low-trust requests).
    for _ in 0..4 {
        s.update(ch(' '), now());
    }
    assert_eq!(s.marks.len(), 4);
    s.update(ch('a'), now());
    assert!(s.modals.is_empty());
    assert!(s.flash.as_ref().unwrap().error);
    // Bulk deny works on any marked set.
    s.update(ch('d'), now());
    s.update(key(KeyCode::BackTab), now()); // Cancel → reason
    typed(&mut s, "incident 7");
    s.update(key(KeyCode::Tab), now());
    s.update(key(KeyCode::Tab), now());
    let effects = s.update(key(KeyCode::Enter), now());
    assert_eq!(effects.len(), 4);
    assert!(s.marks.is_empty());

    // Only the low-sensitivity, standard-trust request: bulk approve re-shows the set first.
    let mut s = fixture(false);
    s.update(ch('/'), now());
    typed(&mut s, "sales");
    s.update(key(KeyCode::Enter), now());
    s.update(ch(' '), now());
    assert!(s.update(ch('a'), now()).is_empty());
    let form = dialog(&s);
    let Confirm::ApproveMarked { request_ids } = &form.action else {
        panic!("{:?}", s.modals)
    };
    assert_eq!(request_ids.len(), 1);
    let lines = form.rows.iter().filter(|r| matches!(r, Row::Bullet(_)));
    assert_eq!(lines.count(), 1);
    assert_eq!(form.focus, Focus::Cancel);
}

#[test]
fn read_only_has_no_acting_keys() {
    let mut s = fixture(true);
    for c in ['a', 'd', 's'] {
        assert!(s.update(ch(c), now()).is_empty());
        assert!(s.modals.is_empty(), "{c}");
    }
    s.update(ch('2'), now());
    assert!(s.update(ch('S'), now()).is_empty());
    assert!(s.modals.is_empty());
}

#[test]
fn a_new_request_raises_badge_and_notification_and_loads_it() {
    let mut s = fixture(false);
    s.update(ch('2'), now());
    let event = AuditEvent {
        event: UnhashedEvent {
            seq: 99,
            at: now(),
            actor: Actor::agent("did:mesh:1"),
            action: "request.submitted".into(),
            subject: "did:mesh:1".into(),
            details: serde_json::json!({ "request_id": "req_new", "capabilities": ["send:email"] }),
            prev_hash: "0".repeat(64),
        },
        hash: "1".repeat(64),
    };
    let effects = s.update(Action::Event(Box::new(event)), now());
    assert!(effects.contains(&Effect::LoadRequest("req_new".into())));
    assert!(effects.iter().any(|e| matches!(e, Effect::Notify { .. })));
    assert_eq!(s.badge, 1);
    s.update(ch('1'), now());
    assert_eq!(s.badge, 0);
    // A decided request leaves the inbox when its update arrives.
    let mut decided = s.selected_request().unwrap().clone();
    decided.status = RequestStatus::Approved;
    let before = s.requests.len();
    s.update(Action::Request(Ok(decided)), now());
    assert_eq!(s.requests.len(), before - 1);
}

#[test]
fn suspending_all_needs_the_count_typed() {
    let mut s = fixture(false);
    s.update(ch('2'), now());
    s.update(ch('S'), now());
    assert_eq!(
        dialog(&s).action,
        Confirm::SuspendAll { count: 2 },
        "two active agents"
    );
    s.update(key(KeyCode::Tab), now()); // Confirm
    s.update(key(KeyCode::Tab), now()); // count field
    typed(&mut s, "3");
    s.update(key(KeyCode::Tab), now());
    typed(&mut s, "incident 9");
    s.update(key(KeyCode::Tab), now());
    s.update(key(KeyCode::Tab), now());
    assert!(
        s.update(key(KeyCode::Enter), now()).is_empty(),
        "wrong count refused"
    );
    for _ in 0..3 {
        s.update(key(KeyCode::BackTab), now());
    }
    s.update(key(KeyCode::Backspace), now());
    typed(&mut s, "2");
    for _ in 0..3 {
        s.update(key(KeyCode::Tab), now());
    }
    let effects = s.update(key(KeyCode::Enter), now());
    assert_eq!(
        effects,
        vec![Effect::SuspendAll {
            reason: "incident 9".into(),
            expected: 2
        }]
    );
}

#[test]
fn filter_and_sort() {
    let mut s = fixture(false);
    assert_eq!(s.inbox.len(), 4);
    s.update(ch('/'), now());
    typed(&mut s, "CRM");
    assert_eq!(s.inbox.len(), 2, "case-insensitive, live while typing");
    s.update(key(KeyCode::Esc), now());
    assert_eq!(s.inbox.len(), 4, "esc clears the filter");
    let first = s.selected_request().unwrap().id.clone();
    s.update(ch('o'), now()); // age
    s.update(ch('o'), now()); // agent
    assert_eq!(
        s.selected_request().unwrap().id,
        first,
        "selection follows the request"
    );
    s.update(key(KeyCode::Char('g')), now());
    assert_eq!(s.selected_request().unwrap().agent_name, "data-pipeline-02");
}

// ---- safety --------------------------------------------------------------------------------

#[test]
fn critical_rows_are_red_and_bold() {
    let s = fixture(false);
    let terminal = draw(&s, &Theme::default_theme());
    let buffer = terminal.backend().buffer();
    let row_of = |needle: &str| {
        (0..buffer.area.height)
            .find(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, *y)].symbol().to_owned())
                    .collect::<String>()
                    .contains(needle)
            })
            .unwrap()
    };
    let critical = row_of("data-pipeline-02");
    let cell = &buffer[(10, critical)];
    assert_eq!(cell.fg, Color::Red);
    assert!(cell.modifier.contains(Modifier::BOLD));
    let text: String = (0..buffer.area.width)
        .map(|x| buffer[(x, critical)].symbol().to_owned())
        .collect();
    assert!(text.contains("CRIT"), "not colour alone: {text}");
    let low = row_of("sales-researcher-01");
    assert_ne!(buffer[(10, low)].fg, Color::Red);
    // The colour-blind theme marks it without red, and still bold.
    let cb = draw(&s, &Theme::colour_blind());
    let cell = &cb.backend().buffer()[(10, critical)];
    assert_ne!(cell.fg, Color::Red);
    assert!(cell.modifier.contains(Modifier::BOLD));
}

const HOSTILE: &[&str] = &[
    "\u{1b}[31mRED\u{1b}[0m",
    "\u{1b}]52;c;cm0gLXJmIH4=\u{7}",
    "\u{1b}]0;owned\u{7}",
    "evil\u{202e}gnp.exe",
    "bell\u{7}\u{7}",
    "\u{9b}2J",
    "line\r\noverwrite",
];

fn assert_clean(rendered: &str, field: &str) {
    for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\r'] {
        assert!(
            !rendered.contains(bad),
            "{field}: raw {bad:?} reached the terminal"
        );
    }
}

#[test]
fn every_agent_written_field_is_escaped() {
    for (i, payload) in HOSTILE.iter().enumerate() {
        let mut s = fixture(false);
        let mut r = request(9, payload, &["read:crm:x"], Sensitivity::Low, 600);
        r.justification = format!("why {payload}\nsecond line {payload}");
        r.context = Some(format!("ctx {payload}"));
        r.ticket = Some(format!("T-{payload}"));
        r.on_behalf_of = Some(format!("bob{payload}"));
        r.kind = RequestKind::Delegation;
        r.child_name = Some(format!("child {payload}"));
        r.created_at = now() - Duration::hours(2);
        r.expires_at = now() + Duration::seconds(30);
        let mut a = agent(9, payload, AgentStatus::Active);
        a.model = Some(payload.to_string());
        a.runtime = Some(payload.to_string());
        a.sponsors[0].username = payload.to_string();
        s.update(Action::Request(Ok(r)), now());
        let mut agents = s.agents.clone();
        agents.push(a);
        s.update(Action::Agents(Ok(agents)), now());
        s.update(ch('g'), now());
        assert_eq!(s.selected_request().unwrap().id, format!("req_{:032x}", 9));
        assert_clean(&screen(&s), &format!("inbox #{i}"));
        s.update(key(KeyCode::Enter), now());
        assert_clean(&screen(&s), &format!("detail #{i}"));
        s.update(ch('a'), now());
        assert_clean(&screen(&s), &format!("decide #{i}"));
        s.update(key(KeyCode::Esc), now());
        s.update(key(KeyCode::Esc), now());
        s.update(ch('s'), now());
        assert_clean(&screen(&s), &format!("suspend #{i}"));
        s.update(key(KeyCode::Esc), now());
        s.update(ch('2'), now());
        assert_clean(&screen(&s), &format!("agents #{i}"));
        assert!(screen(&s).contains("\\e") || !payload.contains('\u{1b}'));
    }
}

#[test]
fn the_audit_filters_by_agent_and_suspend_runs_from_the_command_line() {
    let mut s = fixture(false);
    let mut events = s.audit.clone();
    let mut other = events[0].clone();
    other.event.seq = 6;
    other.event.subject = format!("did:mesh:{:032x}", 2);
    events.push(other);
    s.update(Action::Audit(Ok(events)), now());
    s.update(ch('4'), now());
    assert_eq!(s.visible_audit().len(), 6);
    s.update(ch('/'), now());
    typed(&mut s, "data-pipeline");
    s.update(key(KeyCode::Enter), now());
    assert_eq!(
        s.visible_audit().len(),
        1,
        "only the events about that agent"
    );
    assert_eq!(s.filter, "", "the inbox filter is untouched");
    let shown = screen(&s);
    assert!(
        shown.contains("data-pipeline-02") && !shown.contains("invoice-reconciler-01"),
        "{shown}"
    );
    insta::assert_snapshot!("audit_filtered", shown);

    s.update(ch(':'), now());
    typed(&mut s, &format!("suspend did:mesh:{:032x}", 2));
    s.update(key(KeyCode::Enter), now());
    let form = dialog(&s);
    assert_eq!(
        form.action,
        Confirm::Suspend {
            did: format!("did:mesh:{:032x}", 2)
        }
    );
    assert!(
        form.title.starts_with("Suspend data-pipeline-02 ("),
        "{}",
        form.title
    );
    assert_eq!(form.focus, Focus::Cancel);
    assert!(
        form.rows
            .iter()
            .any(|r| matches!(r, Row::Bullet(c) if c.contains("pending request")))
    );
}

#[test]
fn a_delegation_shows_the_depth_the_child_would_reach() {
    let mut s = fixture(false);
    let mut r = request(
        2,
        "data-pipeline-02",
        &["read:erp:invoices"],
        Sensitivity::Low,
        600,
    );
    r.id = "req_deleg".into();
    r.kind = RequestKind::Delegation;
    r.child_name = Some("worker-7".into());
    let mut agents = s.agents.clone();
    agents[1].delegation_depth = 2;
    s.update(Action::Agents(Ok(agents)), now());
    s.update(Action::Request(Ok(r)), now());
    let shown = screen(&s);
    assert!(shown.contains("deleg d3"), "{shown}");
    assert!(shown.contains("data-pipeline-02 → wor"), "{shown}");
}

#[test]
fn screen_text_names_the_keys_the_keymap_binds() {
    use std::collections::BTreeMap;

    use sponsor_console::console::keymap::KeyList;

    let mut overrides = BTreeMap::new();
    overrides.insert("verify".to_owned(), KeyList::One("x".into()));
    overrides.insert("refresh".to_owned(), KeyList::One("f5".into()));
    let identity = Identity {
        username: "alice".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let keymap = Keymap::new(&overrides, false).expect("a valid overlay");
    let mut s = State::new(identity, keymap, false);
    s.update(ch('4'), now());
    s.update(Action::Audit(Ok(Vec::new())), now());
    let text = screen(&s);
    assert!(text.contains("(x verifies)"), "{text}");
    assert!(!text.contains("(v verifies)"), "{text}");
}

#[test]
fn a_state_that_differs_from_the_record_is_a_banner_on_every_screen() {
    let mut s = fixture(false);
    let agreed = StateReport {
        ok: true,
        checked_at: now(),
        head_seq: 5,
        count: 0,
        differences: Vec::new(),
        note: None,
    };
    s.update(Action::Record(Ok(agreed)), now());
    assert!(
        !screen(&s).contains("DIFFER"),
        "nothing to say while they agree"
    );
    let difference = |id: &str, field: &str, record: &str, table: &str| StateDifference {
        area: "agent".into(),
        id: id.into(),
        field: field.into(),
        record: record.into(),
        table: table.into(),
    };
    let differs = StateReport {
        ok: false,
        checked_at: now(),
        head_seq: 5,
        count: 2,
        differences: vec![
            difference("did:mesh:3", "status", "suspended", "active"),
            // Whatever the tables hold is escaped before it reaches the terminal.
            difference("did:mesh:2", "capabilities", "read:x", "admin:*\u{1b}[2J"),
        ],
        note: None,
    };
    s.update(Action::Record(Ok(differs)), now());
    let inbox = screen(&s);
    assert!(
        inbox.contains("THE SERVER'S TABLES DIFFER FROM THE AUDIT RECORD: 2 difference(s)"),
        "{inbox}"
    );
    s.update(ch('4'), now());
    let audit = screen(&s);
    assert!(!audit.contains('\u{1b}'));
    insta::assert_snapshot!("audit_state_differs", audit);
}

#[test]
fn every_pending_request_arrives_page_by_page_and_the_inbox_stays_usable() {
    let identity = Identity {
        username: "alice".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut s = State::new(identity, Keymap::defaults(false), false);
    let page = |ns: std::ops::Range<u32>, first, done, total| RequestsPage {
        requests: ns
            .map(|n| request(n, "bot", &["read:x"], Sensitivity::Low, 500))
            .collect(),
        first,
        done,
        total,
    };
    s.update(
        Action::RequestsPage(7, Ok(page(1..4, true, false, Some(8)))),
        now(),
    );
    assert_eq!(s.requests.len(), 3);
    assert!(s.pending_paging);
    let shown = screen(&s);
    assert!(shown.contains("loaded 3 of 8, loading…"), "{shown}");
    assert!(shown.contains("3 of 8 pending, loading"), "{shown}");
    // Usable meanwhile: the selection moves, and an event brings in a request of a later page.
    s.update(key(KeyCode::Down), now());
    assert_eq!(s.inbox_selected, 1);
    let fresh = request(5, "bot", &["read:x"], Sensitivity::Low, 500);
    s.update(Action::Request(Ok(fresh)), now());
    // A page of an older load is dropped; the next page joins without repeating request 5.
    s.update(
        Action::RequestsPage(6, Ok(page(20..30, true, true, Some(10)))),
        now(),
    );
    assert_eq!(s.requests.len(), 4);
    s.update(
        Action::RequestsPage(7, Ok(page(4..9, false, true, None))),
        now(),
    );
    assert_eq!(s.requests.len(), 8, "every one, once");
    assert!(!s.pending_paging);
    let shown = screen(&s);
    assert!(!shown.contains("loading"), "{shown}");
    assert!(shown.contains("8 pending"), "{shown}");

    // A load that fails part way keeps what it has and says so.
    s.update(
        Action::RequestsPage(8, Ok(page(1..3, true, false, Some(9)))),
        now(),
    );
    let failed = EffectError::StreamClosed;
    s.update(Action::RequestsPage(8, Err(failed)), now());
    assert_eq!(s.requests.len(), 2);
    assert!(!s.pending_paging);
    assert!(screen(&s).contains("loading pending requests stopped"));
}
