//! The generic dialog update: typing, focus, presets, confirming and cancelling.

use super::*;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(d: &mut Dialog, code: KeyCode) -> Step {
    d.on_key(&key(code), &Keymap::defaults(false))
}

fn typed(d: &mut Dialog, text: &str) {
    for c in text.chars() {
        assert_eq!(press(d, KeyCode::Char(c)), Step::Stay);
    }
}

/// A decide dialog for `max_seconds`, two capabilities.
fn decide(max_seconds: i64) -> Dialog {
    Dialog::new(
        "Approve",
        vec![
            Row::Duration(DurationField::new(max_seconds)),
            Row::Checks(Checks {
                id: FieldId::Capabilities,
                heading: Some("Capabilities"),
                items: vec![("read:a".into(), true), ("write:b".into(), true)],
                at_least_one: true,
            }),
            Row::Text(TextField::new(
                FieldId::Justification,
                "Justification",
                Rule::Required,
            )),
            Row::GrantSummary {
                grantee: "bot".into(),
                did: "did:mesh:1".into(),
            },
        ],
        "Confirm",
        Confirm::Approve {
            request_id: "req_1".into(),
        },
    )
}

fn suspend_all(count: usize) -> Dialog {
    Dialog::new(
        "Suspend ALL",
        vec![
            Row::Line("Every one stops.".into()),
            Row::Text(TextField::new(
                FieldId::Count,
                "Type it",
                Rule::Count(count),
            )),
            Row::Text(TextField::new(FieldId::Reason, "Reason", Rule::Required)),
        ],
        "Suspend all",
        Confirm::SuspendAll { count },
    )
}

fn confirm(d: &mut Dialog) -> Step {
    d.focus = Focus::Confirm;
    press(d, KeyCode::Enter)
}

#[test]
fn every_dialog_opens_on_cancel_and_esc_or_cancel_closes_without_acting() {
    for mut d in [
        decide(7200),
        suspend_all(3),
        reason(
            "Deny",
            Confirm::Deny {
                request_ids: vec!["req_1".into()],
            },
        ),
    ] {
        assert_eq!(d.focus, Focus::Cancel, "{}", d.title);
        assert_eq!(press(&mut d, KeyCode::Enter), Step::Close, "{}", d.title);
        d.focus = Focus::Field { row: 0, item: 0 };
        assert_eq!(press(&mut d, KeyCode::Esc), Step::Close, "{}", d.title);
    }
}

#[test]
fn typing_goes_to_the_focused_text_field() {
    let mut d = reason(
        "Deny",
        Confirm::Deny {
            request_ids: vec!["r".into()],
        },
    );
    d.focus = Focus::Field { row: 0, item: 0 };
    // Letters, digits, space and characters bound elsewhere (q quits, 1 is the inbox) all type.
    typed(&mut d, "q1 ok");
    assert_eq!(d.text(FieldId::Reason), "q1 ok");
    assert_eq!(press(&mut d, KeyCode::Backspace), Step::Stay);
    assert_eq!(d.text(FieldId::Reason), "q1 o");
}

#[test]
fn typing_on_a_button_moves_to_the_text_field_and_types_there() {
    let mut d = reason(
        "Deny",
        Confirm::Deny {
            request_ids: vec!["r".into()],
        },
    );
    assert_eq!(d.focus, Focus::Cancel);
    typed(&mut d, "not needed");
    assert_eq!(d.focus, Focus::Field { row: 0, item: 0 });
    assert_eq!(d.text(FieldId::Reason), "not needed");
    // From Confirm too; Enter still only acts on the button it is on.
    let mut d = decide(7200);
    d.focus = Focus::Confirm;
    typed(&mut d, "checked");
    assert_eq!(d.text(FieldId::Justification), "checked");
    assert_eq!(d.focus, Focus::Field { row: 2, item: 0 });
    // From a check entry, a letter types; space still toggles the entry.
    let mut d = decide(7200);
    d.focus = Focus::Field { row: 1, item: 1 };
    assert_eq!(press(&mut d, KeyCode::Char(' ')), Step::Stay);
    assert_eq!(d.checked(FieldId::Capabilities), vec!["read:a".to_owned()]);
    typed(&mut d, "x");
    assert_eq!(d.text(FieldId::Justification), "x");
}

#[test]
fn tab_and_shift_tab_cycle_fields_and_buttons() {
    let mut d = decide(3600);
    let field = |row, item| Focus::Field { row, item };
    let forward = [
        field(0, 0),
        field(1, 0),
        field(1, 1),
        field(2, 0),
        Focus::Cancel,
        Focus::Confirm,
    ];
    assert_eq!(d.stops(), forward);
    for want in forward.iter().cycle().skip(4).take(7) {
        assert_eq!(d.focus, *want);
        press(&mut d, KeyCode::Tab);
    }
    let mut d = decide(3600);
    for want in [
        Focus::Cancel,
        field(2, 0),
        field(1, 1),
        field(1, 0),
        field(0, 0),
    ] {
        assert_eq!(d.focus, want);
        press(&mut d, KeyCode::BackTab);
    }
    assert_eq!(d.focus, Focus::Confirm, "wraps");
    // The arrows move between fields too, and switch the buttons.
    press(&mut d, KeyCode::Down);
    assert_eq!(d.focus, field(0, 0));
    press(&mut d, KeyCode::Up);
    press(&mut d, KeyCode::Left);
    assert_eq!(d.focus, Focus::Cancel);
    // Custom duration adds its text field after the presets.
    d.focus = field(0, 0);
    press(&mut d, KeyCode::Right); // 1h → custom: 4h and 8h are over the cap
    assert!(d.duration().is_some_and(DurationField::is_custom));
    press(&mut d, KeyCode::Tab);
    assert_eq!(d.focus, field(0, 1));
}

#[test]
fn confirm_produces_exactly_the_action_and_only_when_valid() {
    let mut d = decide(3600);
    assert_eq!(confirm(&mut d), Step::Stay);
    assert_eq!(d.error, Some(DialogError::Required(FieldId::Justification)));
    assert_eq!(
        d.error.map(|e| e.to_string()).as_deref(),
        Some("a justification is required")
    );
    d.focus = Focus::Field { row: 2, item: 0 };
    typed(&mut d, "FIN-7 checked");
    d.focus = Focus::Field { row: 1, item: 1 };
    press(&mut d, KeyCode::Char(' '));
    assert_eq!(confirm(&mut d), Step::Confirmed);
    assert_eq!(
        d.effects(),
        vec![Effect::Decide {
            id: "req_1".into(),
            body: DecisionBody {
                decision: Decision::Approve,
                duration_seconds: Some(3600),
                capabilities: Some(vec!["read:a".into()]),
                justification: "FIN-7 checked".into(),
            },
        }]
    );
    // Nothing ticked is refused; so is a custom duration over the cap.
    d.focus = Focus::Field { row: 1, item: 0 };
    press(&mut d, KeyCode::Char(' '));
    assert_eq!(confirm(&mut d), Step::Stay);
    assert_eq!(
        d.error,
        Some(DialogError::NothingChosen(FieldId::Capabilities))
    );

    let mut d = reason(
        "Reactivate",
        Confirm::Reactivate {
            did: "did:mesh:1".into(),
        },
    );
    typed(&mut d, "cleared");
    assert_eq!(confirm(&mut d), Step::Confirmed);
    assert_eq!(
        d.effects(),
        vec![Effect::Reactivate {
            did: "did:mesh:1".into(),
            reason: "cleared".into()
        }]
    );
    let mut d = reason(
        "Deny",
        Confirm::Deny {
            request_ids: vec!["a".into(), "b".into()],
        },
    );
    typed(&mut d, "no");
    assert_eq!(confirm(&mut d), Step::Confirmed);
    assert_eq!(d.effects().len(), 2);
    assert!(d.action.clears_marks());
}

#[test]
fn suspending_all_needs_the_count_typed() {
    let mut d = suspend_all(3);
    typed(&mut d, "2");
    assert_eq!(d.text(FieldId::Count), "2", "typing starts in the count");
    press(&mut d, KeyCode::Tab);
    typed(&mut d, "incident 9");
    assert_eq!(confirm(&mut d), Step::Stay);
    assert_eq!(d.error, Some(DialogError::Count(3)));
    assert_eq!(
        d.error.map(|e| e.to_string()).as_deref(),
        Some("type 3 to confirm how many agents stop")
    );
    d.focus = Focus::Field { row: 1, item: 0 };
    press(&mut d, KeyCode::Backspace);
    typed(&mut d, "3");
    assert_eq!(confirm(&mut d), Step::Confirmed);
    assert_eq!(
        d.effects(),
        vec![Effect::SuspendAll {
            reason: "incident 9".into(),
            expected: 3
        }]
    );
}

#[test]
fn a_digit_picks_a_preset_except_in_a_text_field() {
    let mut d = decide(7200);
    // What was asked (2h, within policy) is chosen, as a custom duration: not a preset
    // below it, not the rule's maximum.
    assert_eq!(d.duration().map(|f| f.chosen), Some(PRESETS.len()));
    assert_eq!(d.duration().map(DurationField::seconds), Some(Ok(7200)));
    press(&mut d, KeyCode::Char('1'));
    assert_eq!(d.duration().map(DurationField::seconds), Some(Ok(900)));
    assert_eq!(d.focus, Focus::Cancel);
    // 4h is over the cap: refused with the reason, the choice unchanged.
    press(&mut d, KeyCode::Char('3'));
    assert_eq!(d.duration().map(DurationField::seconds), Some(Ok(900)));
    assert_eq!(
        d.error.map(|e| e.to_string()).as_deref(),
        Some("duration: at most 2h")
    );
    d.focus = Focus::Field { row: 2, item: 0 };
    typed(&mut d, "FIN-2");
    assert_eq!(d.text(FieldId::Justification), "FIN-2");
    assert_eq!(d.duration().map(DurationField::seconds), Some(Ok(900)));
    // A dialog without presets types the digit.
    let mut d = suspend_all(2);
    typed(&mut d, "2");
    assert_eq!(d.text(FieldId::Count), "2");
}

#[test]
fn presets_skip_what_policy_does_not_allow_and_custom_starts_at_the_cap() {
    let mut d = decide(5400);
    d.focus = Focus::Field { row: 0, item: 0 };
    let mut seen = Vec::new();
    for _ in 0..3 {
        press(&mut d, KeyCode::Right);
        seen.push(d.duration().map(|f| f.chosen));
    }
    assert_eq!(
        seen,
        [Some(0), Some(1), Some(4)],
        "from the asked 1h 30m, round"
    );
    assert_eq!(d.duration().map(|f| f.custom.as_str()), Some("1h 30m"));
    assert_eq!(d.duration().map(DurationField::seconds), Some(Ok(5400)));
    d.focus = Focus::Field { row: 0, item: 1 };
    typed(&mut d, "0");
    assert_eq!(
        d.duration().map(DurationField::seconds),
        Some(Err(DurationError::Unreadable))
    );
    // Nothing preset fits under a minute's cap: custom from the start.
    let tiny = DurationField::new(600);
    assert!(tiny.is_custom());
    assert_eq!(tiny.seconds(), Ok(600));
}

#[test]
fn enter_on_the_last_field_goes_to_confirm_and_one_more_enter_confirms() {
    let mut d = decide(3600);
    typed(&mut d, "FIN-9 checked");
    assert_eq!(d.focus, Focus::Field { row: 2, item: 0 });
    assert_eq!(press(&mut d, KeyCode::Enter), Step::Stay);
    assert_eq!(d.focus, Focus::Confirm, "not Cancel");
    assert_eq!(press(&mut d, KeyCode::Enter), Step::Confirmed);
    // Enter on an earlier field still moves on by one.
    let mut d = decide(3600);
    d.focus = Focus::Field { row: 0, item: 0 };
    press(&mut d, KeyCode::Enter);
    assert_eq!(d.focus, Focus::Field { row: 1, item: 0 });
}
