//! The console's state and view with 100,000 pending requests: no server, no network and no
//! terminal. The requests are built in memory and handed to the console's `State` as one
//! `Action::Requests`, as if a load had returned them all; the inbox is drawn at 200×50 into
//! ratatui's `TestBackend`. Measures one frame of the inbox while the selection moves (500
//! frames), one filter keystroke over all of them (60 keystrokes), and the process's resident
//! memory. Targets: frame < 2 ms median, keystroke < 20 ms, under 200 MB. (`console_load`
//! measures the real console binary against a server.)
//!
//! With `--entra N`, N Microsoft Entra approvals (PIM roles, groups, access packages) are
//! merged into the same inbox, as the Entra issue asks (`-- --requests 10000 --entra 10000`).
//!
//! Each of the `--runs` runs builds a fresh state (the previous one is dropped first); the
//! summary gives each figure's median and p99 over the runs.
//!
//! Run: `cargo bench --bench console` (options: `-- --runs 3 --requests 100000 --entra 0`).

use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sponsor_console::console::keymap::Keymap;
use sponsor_console::console::state::{Action, Identity, State};
use sponsor_console::console::theme::Theme;
use sponsor_console::console::view::{self, Frame2};
use sponsor_console::domain::entra::{
    EntraApproval, EntraSource, Expiration, IsoDuration, Principal, RequestedWindow, Target, Ticket,
};
use sponsor_console::domain::policy::{Requirement, Sensitivity};
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::requests::{Request, RequestKind, RequestStatus};

mod support;

const AGENTS: &[&str] = &[
    "invoice-reconciler",
    "support-triage",
    "deploy-bot",
    "data-pipeline",
    "sales-researcher",
    "hr-onboarding",
    "code-reviewer",
];
const CAPS: &[&str] = &[
    "write:erp:invoices",
    "send:email:vendors",
    "read:pii:customer-profile",
    "deploy:prod:payments",
    "delete:warehouse:staging-old",
    "write:crm:leads",
    "admin:directory:groups",
    "read:secrets:ci",
];

fn requests(n: usize) -> Vec<Request> {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or_default();
    (0..n)
        .map(|i| {
            let sensitivity = match i % 7 {
                0 => Sensitivity::Critical,
                1 | 2 => Sensitivity::High,
                _ => Sensitivity::Low,
            };
            Request {
                id: format!("req_{i:032x}"),
                kind: if i % 9 == 0 { RequestKind::Delegation } else { RequestKind::Elevation },
                agent_did: format!("did:mesh:{:032x}", i % 5000),
                agent_name: format!("{}-{:02}", AGENTS[i % AGENTS.len()], i % 97),
                child_did: None,
                child_name: None,
                capabilities: vec![CAPS[i % CAPS.len()].into(), CAPS[(i * 7 + 3) % CAPS.len()].into()],
                duration_seconds: [900, 3600, 7200, 14_400, 28_800][i % 5],
                justification: format!("Vendor ACME-{i} invoice total differs from the PO by 4.2%; post the correcting credit note."),
                ticket: Some(format!("FIN-{i}")),
                context: Some(format!("tool call: erp.post_credit_note(vendor=ACME-{i})")),
                on_behalf_of: None,
                status: RequestStatus::Pending,
                reason: None,
                policy: Requirement {
                    sensitivity,
                    max_seconds: 14_400,
                    approvals_required: 1,
                    approver_roles: vec![Role::SecurityLead],
                },
                approvals: vec![],
                trust_score: 250 + (i as i64 * 37) % 700,
                created_at: now - chrono::Duration::seconds((i % 3600) as i64),
                expires_at: now + chrono::Duration::seconds(3600 - (i % 3600) as i64 + 1),
                decided_at: None,
                grant_id: None,
            }
        })
        .collect()
}

const PEOPLE: &[(&str, &str)] = &[
    ("Megan Bowen", "megan"),
    ("Lee Gu", "lee"),
    ("Alex Wilber", "alex"),
    ("Diego Siciliani", "diego"),
    ("Pradeep Gupta", "pradeep"),
];
const TARGETS: &[&str] = &[
    "User Administrator",
    "Global Reader",
    "Production database operators",
    "Agent tooling access",
    "Exchange Administrator",
];

/// `n` Entra approvals, spread over the three sources, asked within the last day.
fn entra_rows(n: usize, now: chrono::DateTime<Utc>) -> Vec<(EntraSource, EntraApproval)> {
    (0..n)
        .map(|i| {
            let source = EntraSource::ALL[i % 3];
            let (name, user) = PEOPLE[i % PEOPLE.len()];
            let row = EntraApproval {
                source,
                id: format!("{i:08x}-4f1c-4a4e-9f51-2b8d3c6a7e10"),
                approval_id: format!("{i:08x}-4f1c-4a4e-9f51-2b8d3c6a7e10"),
                requester: Principal {
                    id: format!("{:08x}-user", i % 500),
                    display_name: Some(format!("{name} {}", i % 500)),
                    username: Some(format!("{user}{}@contoso.example", i % 500)),
                },
                created_by: None,
                target: Target {
                    id: format!("target-{}", i % TARGETS.len()),
                    display_name: Some(TARGETS[i % TARGETS.len()].to_owned()),
                },
                scope: (source == EntraSource::DirectoryRole).then(|| "/".to_owned()),
                action: Some("selfActivate".into()),
                window: RequestedWindow {
                    start: None,
                    expiration: Expiration::AfterDuration {
                        duration: IsoDuration::parse(["PT1H", "PT4H", "PT8H"][i % 3])
                            .unwrap_or_else(|| unreachable!()),
                    },
                },
                justification: Some(format!("Change CHG-{i}: rotate the break-glass accounts")),
                ticket: Some(Ticket {
                    number: Some(format!("CHG-{i}")),
                    system: Some("ServiceNow".into()),
                }),
                created_at: Some(now - chrono::Duration::seconds((i % 80_000) as i64)),
                status: "PendingApproval".into(),
            };
            (source, row)
        })
        .collect()
}

fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let p99 = v[((v.len() as f64 - 1.0) * 0.99).round() as usize];
    (v[v.len() / 2], p99)
}

fn main() -> anyhow::Result<()> {
    let mut runs = support::Runs::from_args();
    for r in 1..=runs.n() {
        runs.begin(r);
        measure(&mut runs)?;
    }
    runs.summary();
    Ok(())
}

/// One run: a fresh state, loaded, drawn and filtered.
fn measure(runs: &mut support::Runs) -> anyhow::Result<()> {
    let n = support::arg("--requests", 100_000);
    let entra = support::arg("--entra", 0);
    let now = Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let identity = Identity {
        username: "bench".into(),
        server: "http://127.0.0.1:7070".into(),
        environment: String::new(),
        embedded: false,
    };
    let mut state = State::new(identity, Keymap::defaults(false), false);
    let rows = entra_rows(entra, now);
    let before = rss_mb();
    let loaded = Instant::now();
    state.update(Action::Requests(Ok(requests(n))), now);
    if entra > 0 {
        state.enable_entra("bench-user", Duration::from_secs(30), now);
        for source in EntraSource::ALL {
            let of_source = rows
                .iter()
                .filter(|(s, _)| *s == source)
                .map(|(_, r)| r.clone())
                .collect();
            state.update(
                Action::EntraPolled {
                    source,
                    result: Ok(of_source),
                    jitter: 0.5,
                },
                now,
            );
        }
    }
    let load_time = loaded.elapsed();
    let theme = Theme::default_theme();
    let offset = FixedOffset::east_opt(0).ok_or_else(|| anyhow::anyhow!("UTC offset"))?;
    let mut terminal = Terminal::new(TestBackend::new(200, 50))?;

    // Frames: the selection moves every frame, as when someone scrolls. With Entra rows (they
    // sort after the agents' requests, whose time is shorter), the frames cross from one to
    // the other half-way.
    if entra > 0 {
        state.inbox_selected = n.saturating_sub(1375);
    }
    // (500 frames move about 2,750 rows.)
    let mut frames = Vec::with_capacity(500);
    for i in 0..500 {
        let key = if i % 2 == 0 {
            KeyCode::Down
        } else {
            KeyCode::PageDown
        };
        state.update(Action::Key(KeyEvent::new(key, KeyModifiers::NONE)), now);
        let t = Instant::now();
        terminal.draw(|f| {
            view::render(
                f,
                &state,
                Frame2 {
                    now,
                    offset,
                    theme: &theme,
                },
            )
        })?;
        frames.push(t.elapsed());
    }
    let (frame_median, frame_p99) = median(frames);

    // Filter keystrokes: type a query one key at a time, then erase it.
    state.update(
        Action::Key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE)),
        now,
    );
    let mut strokes = Vec::new();
    for _ in 0..5 {
        for c in "deploy".chars().chain(std::iter::repeat_n('\u{8}', 6)) {
            let key = if c == '\u{8}' {
                KeyCode::Backspace
            } else {
                KeyCode::Char(c)
            };
            let t = Instant::now();
            state.update(Action::Key(KeyEvent::new(key, KeyModifiers::NONE)), now);
            strokes.push(t.elapsed());
        }
    }
    let (stroke_median, stroke_p99) = median(strokes);
    let after = rss_mb();

    println!(
        "console with {n} pending requests and {entra} Entra approvals ({} rows), 200x50 frame",
        state.inbox.len()
    );
    println!(
        "load (parse + index + sort)   {:>9.2} ms",
        load_time.as_secs_f64() * 1e3
    );
    println!(
        "inbox frame                   median {:>7.3} ms   p99 {:>7.3} ms",
        frame_median.as_secs_f64() * 1e3,
        frame_p99.as_secs_f64() * 1e3
    );
    println!(
        "filter keystroke              median {:>7.3} ms   p99 {:>7.3} ms",
        stroke_median.as_secs_f64() * 1e3,
        stroke_p99.as_secs_f64() * 1e3
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!("resident memory               {a:>9.1} MB (before loading {b:.1} MB)");
    }
    runs.record_ms("load (parse + index + sort)", load_time);
    runs.record_ms("inbox frame 200x50: median", frame_median);
    runs.record_ms("inbox frame 200x50: p99", frame_p99);
    runs.record_ms(
        &format!("filter keystroke over {} rows: median", state.inbox.len()),
        stroke_median,
    );
    runs.record_ms(
        &format!("filter keystroke over {} rows: p99", state.inbox.len()),
        stroke_p99,
    );
    if let Some(a) = after {
        runs.record("resident memory, all loaded (process)", "MB", 1, a);
    }
    Ok(())
}
