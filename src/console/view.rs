//! Drawing: a pure function of the state and the time. Only the rows on screen are built, so a
//! frame costs the same with ten requests or a hundred thousand. Every agent-written string
//! passes through `safe_text` first.

use chrono::{DateTime, FixedOffset, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap};

use super::keymap::{Context, line_summary};
use super::safe_text::{lines as safe_lines, one_line as safe};
use super::state::{
    Connection, DecideForm, Focus, Load, Modal, PRESETS, ReasonForm, Risk, Screen, State,
    SuspendAllForm, SuspendForm, human_duration,
};
use super::theme::Theme;
use crate::domain::trust::Tier;
use crate::protocol::agents::AgentStatus;
use crate::protocol::requests::{Request, RequestKind};

/// Everything `render` needs besides the state.
#[derive(Debug, Clone, Copy)]
pub struct Frame2<'a> {
    pub now: DateTime<Utc>,
    pub offset: FixedOffset,
    pub theme: &'a Theme,
}

pub fn render(frame: &mut Frame, state: &State, ctx: Frame2<'_>) {
    let mut area = frame.area();
    if state
        .identity
        .environment
        .eq_ignore_ascii_case("production")
    {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(ctx.theme.production_frame)
            .title(Span::styled(" PRODUCTION ", ctx.theme.production_frame));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        area = inner;
    }
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(area);
    tabs(frame, rows[0], state, ctx);
    match state.screen {
        Screen::Inbox => inbox(frame, rows[1], state, ctx),
        Screen::Agents => agents(frame, rows[1], state, ctx),
        Screen::Grants => grants(frame, rows[1], state, ctx),
        Screen::Audit => audit(frame, rows[1], state, ctx),
    }
    hints(frame, rows[2], state, ctx);
    status(frame, rows[3], state, ctx);
    for modal in &state.modals {
        match modal {
            Modal::Help => help(frame, area, state, ctx),
            Modal::Detail { id, scroll } => detail(frame, rows[1], state, id, *scroll, ctx),
            Modal::Decide(form) => decide(frame, area, state, form, ctx),
            Modal::Reason(form) => reason(frame, area, form, ctx),
            Modal::Suspend(form) => suspend(frame, area, form, ctx),
            Modal::SuspendAll(form) => suspend_all(frame, area, form, ctx),
            Modal::BulkApprove(form) => bulk(frame, area, form, ctx),
            Modal::Filter(text) => input_line(frame, rows[2], "/", text, ctx),
            Modal::CommandLine(text) => input_line(frame, rows[2], ":", text, ctx),
        }
    }
}

fn local(at: DateTime<Utc>, ctx: Frame2<'_>) -> String {
    at.with_timezone(&ctx.offset).format("%H:%M:%S").to_string()
}

fn tabs(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let mut spans = Vec::new();
    for (i, screen) in Screen::ALL.iter().enumerate() {
        let mut label = format!(" {} {} ", i + 1, screen.title());
        if *screen == Screen::Inbox {
            label = format!(" 1 Inbox ({}) ", state.requests.len());
        }
        let style = if *screen == state.screen {
            ctx.theme.selected
        } else {
            ctx.theme.base
        };
        spans.push(Span::styled(label, style));
        if *screen == Screen::Inbox && state.badge > 0 {
            spans.push(Span::styled(
                format!("+{} new ", state.badge),
                ctx.theme.warn,
            ));
        }
    }
    if !state.identity.environment.is_empty() {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            format!("[{}]", safe(&state.identity.environment)),
            if state
                .identity
                .environment
                .eq_ignore_ascii_case("production")
            {
                ctx.theme.production_frame
            } else {
                ctx.theme.accent
            },
        ));
    }
    if state.read_only {
        spans.push(Span::styled("  READ-ONLY", ctx.theme.accent));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn loading(frame: &mut Frame, area: Rect, load: &Load, what: &str, ctx: Frame2<'_>) -> bool {
    match load {
        Load::Loading => {
            frame.render_widget(
                Paragraph::new(format!("loading {what}…")).style(ctx.theme.dim),
                area,
            );
            true
        }
        Load::Failed(e) => {
            frame.render_widget(
                Paragraph::new(format!(
                    "could not load {what}: {} (ctrl-r retries)",
                    safe(&e.to_string())
                ))
                .style(ctx.theme.error)
                .wrap(Wrap { trim: true }),
                area,
            );
            true
        }
        Load::Ready => false,
    }
}

/// The first row to show so that `selected` is visible in `height` rows.
fn window(selected: usize, len: usize, height: usize) -> (usize, usize) {
    if height == 0 || len == 0 {
        return (0, 0);
    }
    let start = if selected < height {
        0
    } else {
        selected + 1 - height
    };
    (start, (start + height).min(len))
}

fn kind_label(r: &Request) -> &'static str {
    match r.kind {
        RequestKind::Elevation => "elev",
        RequestKind::Delegation => "deleg",
    }
}

fn inbox(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(
            " pending {}{}  sorted by {}{} ",
            state.inbox.len(),
            if state.filter.is_empty() {
                String::new()
            } else {
                format!(
                    " of {} matching /{}",
                    state.requests.len(),
                    safe(&state.filter)
                )
            },
            state.sort.label(),
            if state.marks.is_empty() {
                String::new()
            } else {
                format!("  {} marked", state.marks.len())
            }
        ),
        ctx.theme.accent,
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if loading(frame, inner, &state.requests_load, "requests", ctx) {
        return;
    }
    if state.inbox.is_empty() {
        let text = if state.requests.is_empty() {
            "No pending requests. New ones appear here as agents ask."
        } else {
            "Nothing matches the filter (Esc clears it)."
        };
        frame.render_widget(Paragraph::new(text).style(ctx.theme.dim), inner);
        return;
    }
    let height = inner.height.saturating_sub(1) as usize;
    let (start, end) = window(state.inbox_selected, state.inbox.len(), height);
    let rows: Vec<Row> = state.inbox[start..end]
        .iter()
        .enumerate()
        .map(|(offset, i)| {
            let r = &state.requests[*i];
            let risk = Risk::of(r);
            let marked = state.marks.contains(&r.id);
            let left = (r.expires_at - ctx.now).num_seconds();
            let age = (ctx.now - r.created_at).num_seconds();
            let agent = match &r.child_name {
                Some(child) => format!("{} → {}", safe(&r.agent_name), safe(child)),
                None => safe(&r.agent_name),
            };
            let mut style = if risk.critical {
                ctx.theme.critical
            } else if risk.high {
                ctx.theme.high
            } else {
                ctx.theme.base
            };
            if start + offset == state.inbox_selected {
                style = style.patch(ctx.theme.selected);
            }
            Row::new(vec![
                Cell::from(if marked { "✓" } else { " " }),
                Cell::from(kind_label(r)),
                Cell::from(agent),
                Cell::from(safe(&r.capabilities.join(" "))),
                Cell::from(human_duration(r.duration_seconds)),
                Cell::from(Tier::of(r.trust_score).as_str()),
                Cell::from(human_duration(age)),
                Cell::from(human_duration(left)),
                Cell::from(flags(state, r, risk)),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new([
        "",
        "KIND",
        "AGENT",
        "CAPABILITIES",
        "ASKED",
        "TRUST",
        "AGE",
        "LEFT",
        "FLAGS",
    ])
    .style(ctx.theme.dim.add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(5),
            Constraint::Length(24),
            Constraint::Min(16),
            Constraint::Length(6),
            Constraint::Length(12),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(14),
        ],
    )
    .header(header);
    frame.render_widget(table, inner);
}

/// Risk flags as words; a delegation shows the depth the child would be at.
fn flags(state: &State, r: &Request, risk: Risk) -> String {
    let depth = state.agent(&r.agent_did).map(|a| a.delegation_depth + 1);
    risk.labels()
        .into_iter()
        .map(|l| match (l, depth) {
            ("deleg", Some(d)) => format!("deleg d{d}"),
            (l, _) => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn agents(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(
            " my agents {}{} ",
            state.agents.len(),
            list_filter_note(state)
        ),
        ctx.theme.accent,
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if loading(frame, inner, &state.agents_load, "agents", ctx) {
        return;
    }
    if state.agents.is_empty() {
        frame.render_widget(
            Paragraph::new("You sponsor no agents yet.").style(ctx.theme.dim),
            inner,
        );
        return;
    }
    let visible = state.visible_agents();
    let height = inner.height.saturating_sub(1) as usize;
    let (start, end) = window(state.agents_selected, visible.len(), height);
    let rows: Vec<Row> = visible[start..end]
        .iter()
        .map(|i| &state.agents[*i])
        .enumerate()
        .map(|(offset, a)| {
            let active: Vec<_> = state
                .grants
                .iter()
                .filter(|g| g.agent_did == a.did && g.active)
                .collect();
            let soonest = active
                .iter()
                .map(|g| g.not_after)
                .min()
                .map(|t| human_duration((t - ctx.now).num_seconds()))
                .unwrap_or_else(|| "—".into());
            let status = match a.status {
                AgentStatus::Active => "active".to_owned(),
                AgentStatus::Suspended if a.suspension_security => "SUSPENDED (security)".into(),
                AgentStatus::Suspended => "SUSPENDED".into(),
                AgentStatus::Revoked => "revoked".into(),
            };
            let mut style = match a.status {
                AgentStatus::Active => ctx.theme.base,
                AgentStatus::Suspended => ctx.theme.warn,
                AgentStatus::Revoked => ctx.theme.dim,
            };
            if start + offset == state.agents_selected {
                style = style.patch(ctx.theme.selected);
            }
            let depth = if a.delegation_depth > 0 {
                format!(
                    "{}└ ",
                    "  ".repeat((a.delegation_depth - 1).max(0) as usize)
                )
            } else {
                String::new()
            };
            Row::new(vec![
                Cell::from(format!("{depth}{}", safe(&a.name))),
                Cell::from(status),
                Cell::from(format!("{} {}", a.trust_tier.as_str(), a.trust_score)),
                Cell::from(active.len().to_string()),
                Cell::from(soonest),
                Cell::from(safe(a.model.as_deref().unwrap_or("—"))),
                Cell::from(a.did.clone()),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new([
        "NAME", "STATUS", "TRUST", "GRANTS", "SOONEST", "MODEL", "DID",
    ])
    .style(ctx.theme.dim.add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(26),
            Constraint::Length(21),
            Constraint::Length(18),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Min(20),
        ],
    )
    .header(header);
    frame.render_widget(table, inner);
}

fn grants(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let active = state.grants.iter().filter(|g| g.active).count();
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(" active grants {active}{} ", list_filter_note(state)),
        ctx.theme.accent,
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if loading(frame, inner, &state.grants_load, "grants", ctx) {
        return;
    }
    if state.grants.is_empty() {
        frame.render_widget(
            Paragraph::new("No active grants: every agent holds only its standing capabilities.")
                .style(ctx.theme.dim),
            inner,
        );
        return;
    }
    let visible = state.visible_grants();
    let height = inner.height.saturating_sub(1) as usize;
    let (start, end) = window(state.grants_selected, visible.len(), height);
    let rows: Vec<Row> = visible[start..end]
        .iter()
        .map(|i| &state.grants[*i])
        .enumerate()
        .map(|(offset, g)| {
            let name = state
                .agent(&g.agent_did)
                .map(|a| safe(&a.name))
                .unwrap_or_else(|| g.agent_did.clone());
            let left = (g.not_after - ctx.now).num_seconds();
            let live = g.active && left > 0;
            let mut style = if !live {
                ctx.theme.dim
            } else if left < 300 {
                ctx.theme.warn
            } else {
                ctx.theme.base
            };
            if start + offset == state.grants_selected {
                style = style.patch(ctx.theme.selected);
            }
            Row::new(vec![
                Cell::from(name),
                Cell::from(g.capabilities.join(" ")),
                Cell::from(if live {
                    human_duration(left)
                } else {
                    "ended".into()
                }),
                Cell::from(local(g.not_after, ctx)),
                Cell::from(if g.source_grant_id.is_some() {
                    "delegated"
                } else {
                    "approved"
                }),
                Cell::from(g.id.clone()),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new(["AGENT", "CAPABILITIES", "LEFT", "UNTIL", "FROM", "GRANT"])
        .style(ctx.theme.dim.add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(24),
            Constraint::Min(20),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(36),
        ],
    )
    .header(header);
    frame.render_widget(table, inner);
}

fn audit(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let verdict = match &state.verify {
        None => Span::styled(" chain not verified yet (v verifies) ", ctx.theme.dim),
        Some(Ok(r)) if r.ok => Span::styled(
            format!(
                " chain verified: ok, {} events, head {}… ",
                r.count,
                &r.head[..12.min(r.head.len())]
            ),
            ctx.theme.ok,
        ),
        Some(Ok(r)) => Span::styled(
            format!(
                " CHAIN BROKEN at seq {}: {} ",
                r.first_bad_seq.unwrap_or_default(),
                safe(r.reason.as_deref().unwrap_or("?"))
            ),
            ctx.theme.error,
        ),
        Some(Err(e)) => Span::styled(
            format!(" verification failed: {} ", safe(&e.to_string())),
            ctx.theme.error,
        ),
    };
    let mut title = vec![verdict];
    if !state.list_filter.is_empty() {
        title.push(Span::styled(list_filter_note(state), ctx.theme.accent));
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if loading(frame, inner, &state.audit_load, "the audit chain", ctx) {
        return;
    }
    let visible = state.visible_audit();
    let height = inner.height.saturating_sub(1) as usize;
    let len = visible.len();
    // The tail: newest at the bottom, following it unless the user moved up.
    let selected = if state.audit_selected == 0 {
        len.saturating_sub(1)
    } else {
        state.audit_selected
    };
    let (start, end) = window(selected, len, height);
    let rows: Vec<Row> = visible[start..end]
        .iter()
        .map(|i| &state.audit[*i])
        .map(|e| {
            let ev = &e.event;
            let subject = state
                .agent(&ev.subject)
                .map(|a| safe(&a.name))
                .unwrap_or_else(|| safe(&ev.subject));
            let style = if ev.action.contains("suspended") || ev.action.contains("revoked") {
                ctx.theme.warn
            } else {
                ctx.theme.base
            };
            Row::new(vec![
                Cell::from(ev.seq.to_string()),
                Cell::from(local(ev.at, ctx)),
                Cell::from(format!("{}:{}", ev.actor.kind, safe(&ev.actor.id))),
                Cell::from(ev.action.clone()),
                Cell::from(subject),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new(["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT"])
        .style(ctx.theme.dim.add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(30),
            Constraint::Length(26),
            Constraint::Min(20),
        ],
    )
    .header(header);
    frame.render_widget(table, inner);
}

fn list_filter_note(state: &State) -> String {
    if state.list_filter.is_empty() {
        String::new()
    } else {
        format!("  matching /{}", safe(&state.list_filter))
    }
}

fn hints(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let context = state.context();
    let dialog = matches!(
        state.modals.last(),
        Some(
            Modal::Decide(_)
                | Modal::Reason(_)
                | Modal::Suspend(_)
                | Modal::SuspendAll(_)
                | Modal::BulkApprove(_)
        )
    );
    let spans: Vec<Span> = if dialog {
        vec![Span::styled(
            "tab next field · ←/→ presets and buttons · space toggles · enter activates · esc cancels",
            ctx.theme.dim,
        )]
    } else {
        let mut v = Vec::new();
        for (keys, help) in state.keymap.footer(context) {
            v.push(Span::styled(keys, ctx.theme.accent));
            v.push(Span::styled(format!(" {help}  "), ctx.theme.dim));
        }
        v
    };
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn status(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let (conn, conn_style) = match &state.connection {
        Connection::Live => ("● live".to_owned(), ctx.theme.ok),
        Connection::Connecting => ("○ connecting".to_owned(), ctx.theme.warn),
        Connection::Reconnecting { attempt, .. } => {
            (format!("◌ reconnecting (try {attempt})"), ctx.theme.error)
        }
    };
    let token = state
        .token_expires_at
        .map(|t| format!("token {}", human_duration((t - ctx.now).num_seconds())))
        .unwrap_or_default();
    let mut spans = vec![
        Span::styled(
            format!(" {} ", safe(&state.identity.username)),
            ctx.theme.accent,
        ),
        Span::raw(format!(
            "@ {}{} │ ",
            safe(&state.identity.server),
            if state.identity.embedded {
                " (embedded)"
            } else {
                ""
            }
        )),
        Span::styled(conn, conn_style),
        Span::raw(format!(" │ {token} │ {} pending ", state.requests.len())),
    ];
    if let Some(flash) = &state.flash {
        spans.push(Span::raw("│ "));
        spans.push(Span::styled(
            safe(&flash.text),
            if flash.error {
                ctx.theme.error
            } else {
                ctx.theme.ok
            },
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn dialog_block<'a>(title: String, ctx: Frame2<'_>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.theme.accent)
        .title(Span::styled(
            format!(" {title} "),
            ctx.theme.accent.add_modifier(Modifier::BOLD),
        ))
}

fn buttons(focus: Focus, confirm: &str, ctx: Frame2<'_>) -> Line<'static> {
    let style = |on: bool| {
        if on {
            ctx.theme.selected.add_modifier(Modifier::BOLD)
        } else {
            ctx.theme.base
        }
    };
    Line::from(vec![
        Span::styled("[ Cancel ]".to_owned(), style(focus == Focus::Cancel)),
        Span::raw("   "),
        Span::styled(format!("[ {confirm} ]"), style(focus == Focus::Confirm)),
    ])
}

fn field(label: &str, value: &str, focused: bool, ctx: Frame2<'_>) -> Line<'static> {
    let cursor = if focused { "▏" } else { "" };
    Line::from(vec![
        Span::styled(format!("{label}: "), ctx.theme.dim),
        Span::styled(
            format!("{}{cursor}", safe(value)),
            if focused {
                ctx.theme.selected
            } else {
                ctx.theme.base.add_modifier(Modifier::UNDERLINED)
            },
        ),
    ])
}

fn error_line(error: &Option<String>, ctx: Frame2<'_>) -> Line<'static> {
    match error {
        Some(e) => Line::from(Span::styled(format!("✗ {}", safe(e)), ctx.theme.error)),
        None => Line::raw(""),
    }
}

fn decide(frame: &mut Frame, area: Rect, state: &State, form: &DecideForm, ctx: Frame2<'_>) {
    let mut lines: Vec<Line> = Vec::new();
    let request = state.request(&form.request_id);
    // Duration presets capped by policy and by the request.
    let mut presets = vec![Span::styled("Duration: ", ctx.theme.dim)];
    for (i, (secs, label)) in PRESETS.iter().enumerate() {
        let allowed = *secs <= form.max_seconds;
        let chosen = form.preset == i;
        let text = if chosen {
            format!("({label})")
        } else {
            format!("[{label}]")
        };
        let mut style = if allowed {
            ctx.theme.base
        } else {
            ctx.theme.dim.add_modifier(Modifier::CROSSED_OUT)
        };
        if chosen {
            style = style.add_modifier(Modifier::BOLD);
            if form.focus == Focus::Presets {
                style = style.patch(ctx.theme.selected);
            }
        }
        presets.push(Span::styled(text, style));
        presets.push(Span::raw(" "));
    }
    let custom_chosen = form.preset == PRESETS.len();
    let mut custom_style = ctx.theme.base;
    if custom_chosen && form.focus == Focus::Presets {
        custom_style = ctx.theme.selected;
    }
    presets.push(Span::styled(
        if custom_chosen {
            "(custom)"
        } else {
            "[custom]"
        },
        custom_style,
    ));
    presets.push(Span::styled(
        format!("   at most {}", human_duration(form.max_seconds)),
        ctx.theme.dim,
    ));
    lines.push(Line::from(presets));
    if custom_chosen {
        lines.push(field(
            "  custom",
            &form.custom,
            form.focus == Focus::Custom,
            ctx,
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Capabilities (space toggles):", ctx.theme.dim));
    for (i, (cap, on)) in form.capabilities.iter().enumerate() {
        let focused = form.focus == Focus::Capability(i);
        let text = format!("  [{}] {}", if *on { "x" } else { " " }, safe(cap));
        lines.push(Line::styled(
            text,
            if focused {
                ctx.theme.selected
            } else {
                ctx.theme.base
            },
        ));
    }
    lines.push(Line::raw(""));
    lines.push(field(
        "Justification",
        &form.justification,
        form.focus == Focus::Text,
        ctx,
    ));
    lines.push(Line::raw(""));
    // Exactly what will be granted, to whom, until when.
    let summary = match form.seconds() {
        Ok(secs) => {
            let until = ctx.now + chrono::Duration::seconds(secs);
            let caps = form.chosen();
            let did = request
                .map(|r| r.child_did.clone().unwrap_or_else(|| r.agent_did.clone()))
                .unwrap_or_default();
            if caps.is_empty() {
                Line::styled(
                    "Nothing would be granted: keep at least one capability.",
                    ctx.theme.error,
                )
            } else {
                Line::from(vec![
                    Span::styled("Grants ", ctx.theme.base),
                    Span::styled(
                        safe(&caps.join(", ")),
                        ctx.theme.accent.add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(format!(
                        " to {} ({did}) for {}, until {} local (in {}).",
                        safe(&form.grantee),
                        human_duration(secs),
                        local(until, ctx),
                        human_duration(secs)
                    )),
                ])
            }
        }
        Err(e) => Line::styled(format!("Duration: {e}"), ctx.theme.error),
    };
    lines.push(summary);
    lines.push(error_line(&form.error, ctx));
    lines.push(buttons(form.focus, "Confirm", ctx));
    // Room for the summary to wrap onto a second line.
    let height = lines.len() as u16 + 4;
    let rect = centered(area, 96.min(area.width), height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(dialog_block(
                format!("Approve the request of {}", safe(&form.agent)),
                ctx,
            ))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn reason(frame: &mut Frame, area: Rect, form: &ReasonForm, ctx: Frame2<'_>) {
    let lines = vec![
        field("Reason", &form.reason, form.focus == Focus::Text, ctx),
        Line::raw(""),
        error_line(&form.error, ctx),
        buttons(form.focus, "Confirm", ctx),
    ];
    let rect = centered(area, 80, lines.len() as u16 + 3);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(dialog_block(form.title.clone(), ctx))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn suspend(frame: &mut Frame, area: Rect, form: &SuspendForm, ctx: Frame2<'_>) {
    let mut lines = vec![Line::styled(
        "This will, at once and in one step:",
        ctx.theme.dim,
    )];
    for c in &form.consequences {
        lines.push(Line::raw(format!("  • {}", safe(c))));
    }
    lines.push(Line::raw(""));
    lines.push(field(
        "Reason",
        &form.reason,
        form.focus == Focus::Text,
        ctx,
    ));
    let toggle = format!(
        "[{}] security incident (only a security lead may lift it)",
        if form.security { "x" } else { " " }
    );
    lines.push(Line::styled(
        toggle,
        if form.focus == Focus::Toggle {
            ctx.theme.selected
        } else {
            ctx.theme.base
        },
    ));
    lines.push(error_line(&form.error, ctx));
    lines.push(buttons(form.focus, "Suspend", ctx));
    let rect = centered(area, 90, lines.len() as u16 + 3);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(dialog_block(
                format!("Suspend {} ({})", safe(&form.name), form.did),
                ctx,
            ))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn suspend_all(frame: &mut Frame, area: Rect, form: &SuspendAllForm, ctx: Frame2<'_>) {
    let lines = vec![
        Line::raw(format!(
            "Every one of your {} active agents stops at once: grants revoked, requests cancelled, tokens dead.",
            form.count
        )),
        Line::raw(""),
        field(
            &format!("Type {} to confirm", form.count),
            &form.typed,
            form.focus == Focus::Custom,
            ctx,
        ),
        field("Reason", &form.reason, form.focus == Focus::Text, ctx),
        error_line(&form.error, ctx),
        buttons(form.focus, "Suspend all", ctx),
    ];
    let rect = centered(area, 90, lines.len() as u16 + 3);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(dialog_block("Suspend ALL my agents".into(), ctx))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn bulk(frame: &mut Frame, area: Rect, form: &super::state::BulkApproveForm, ctx: Frame2<'_>) {
    let mut lines = vec![Line::styled(
        "Each of these is approved as asked (capped by policy):",
        ctx.theme.dim,
    )];
    for l in &form.lines {
        lines.push(Line::raw(format!("  • {}", safe(l))));
    }
    lines.push(Line::raw(""));
    lines.push(field(
        "Justification",
        &form.justification,
        form.focus == Focus::Text,
        ctx,
    ));
    lines.push(error_line(&form.error, ctx));
    lines.push(buttons(
        form.focus,
        &format!("Approve {}", form.request_ids.len()),
        ctx,
    ));
    let rect = centered(area, 96, (lines.len() as u16 + 2).min(area.height));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(dialog_block(
                format!("Approve {} marked requests", form.request_ids.len()),
                ctx,
            ))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn input_line(frame: &mut Frame, area: Rect, prompt: &str, text: &str, ctx: Frame2<'_>) {
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(prompt.to_owned(), ctx.theme.accent),
            Span::raw(format!("{}▏", safe(text))),
        ])),
        area,
    );
}

fn help(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let underneath = match state.modals.iter().rev().nth(1) {
        Some(Modal::Detail { .. }) => Context::Detail,
        _ => match state.screen {
            Screen::Inbox => Context::Inbox,
            Screen::Agents => Context::Agents,
            Screen::Grants => Context::Grants,
            Screen::Audit => Context::Audit,
        },
    };
    let mut lines = vec![Line::styled(
        "Keys active here (from your keymap):",
        ctx.theme.dim,
    )];
    for (keys, help) in state.keymap.hints(underneath) {
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<18}"), ctx.theme.accent),
            Span::raw(help),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Commands after ':' — {}", line_summary()),
        ctx.theme.dim,
    ));
    let rect = centered(area, 70, (lines.len() as u16 + 2).min(area.height));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines)).block(dialog_block("Help (esc closes)".into(), ctx)),
        rect,
    );
}

fn detail(frame: &mut Frame, area: Rect, state: &State, id: &str, scroll: u16, ctx: Frame2<'_>) {
    frame.render_widget(Clear, area);
    let Some(r) = state.request(id) else {
        frame.render_widget(
            Paragraph::new("This request is no longer pending (esc goes back).")
                .block(dialog_block("Request".into(), ctx)),
            area,
        );
        return;
    };
    let agent = state.agent(&r.agent_did);
    let trust = state.trust.get(&r.agent_did);
    let columns = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(40), Constraint::Percentage(60)])
        .split(area);
    // Left: agent card, trust, capabilities diff, chain, policy.
    let mut left: Vec<Line> = Vec::new();
    left.push(Line::styled(
        safe(&r.agent_name),
        ctx.theme.accent.add_modifier(Modifier::BOLD),
    ));
    left.push(Line::raw(r.agent_did.clone()));
    if let Some(a) = agent {
        left.push(Line::raw(format!("status   {}", a.status.as_str())));
        let sponsors: Vec<String> = a.sponsors.iter().map(|s| safe(&s.username)).collect();
        left.push(Line::raw(format!("sponsors {}", sponsors.join(", "))));
        left.push(Line::raw(format!(
            "model    {}",
            safe(a.model.as_deref().unwrap_or("—"))
        )));
        left.push(Line::raw(format!(
            "runtime  {}",
            safe(a.runtime.as_deref().unwrap_or("—"))
        )));
    }
    // The server's current score and tier when loaded; else what the request carried.
    let (score, tier) = trust.map_or((r.trust_score, Tier::of(r.trust_score)), |t| {
        (t.score, t.tier)
    });
    left.push(Line::raw(format!(
        "trust    {score} {} (at request: {})",
        tier.as_str(),
        r.trust_score
    )));
    left.push(Line::raw(""));
    left.push(Line::styled("capabilities", ctx.theme.dim));
    if let Some(a) = agent {
        for c in &a.capabilities {
            left.push(Line::raw(format!("    {}  (standing)", safe(c))));
        }
    }
    for c in &r.capabilities {
        left.push(Line::styled(
            format!("  + {}  (requested)", safe(c)),
            ctx.theme.warn,
        ));
    }
    if r.kind == RequestKind::Delegation {
        left.push(Line::raw(""));
        left.push(Line::styled("delegation chain", ctx.theme.dim));
        let mut chain = Vec::new();
        let mut cursor = agent.and_then(|a| a.parent_did.clone());
        while let Some(did) = cursor {
            if chain.len() > 10 {
                break;
            }
            let a = state.agent(&did);
            chain.push(a.map(|a| safe(&a.name)).unwrap_or(did.clone()));
            cursor = a.and_then(|a| a.parent_did.clone());
        }
        chain.reverse();
        let mut depth = 0;
        for name in chain {
            left.push(Line::raw(format!("{}{name}", "  ".repeat(depth))));
            depth += 1;
        }
        left.push(Line::raw(format!(
            "{}{} (asks)",
            "  ".repeat(depth),
            safe(&r.agent_name)
        )));
        left.push(Line::styled(
            format!(
                "{}└ {} (would receive)",
                "  ".repeat(depth),
                safe(r.child_name.as_deref().unwrap_or("?"))
            ),
            ctx.theme.accent,
        ));
    }
    left.push(Line::raw(""));
    left.push(Line::styled("policy", ctx.theme.dim));
    left.push(Line::raw(format!(
        "  {} · max {} · asked {}",
        r.policy.sensitivity.as_str(),
        human_duration(r.policy.max_seconds),
        human_duration(r.duration_seconds)
    )));
    let given = r
        .approvals
        .iter()
        .filter(|a| a.decision == crate::protocol::requests::Decision::Approve)
        .count();
    left.push(Line::raw(format!(
        "  approvals {given} of {}{}",
        r.policy.approvals_required,
        r.approvals
            .iter()
            .map(|a| format!(" · {}", safe(&a.approver_username)))
            .collect::<String>()
    )));
    left.push(Line::raw(format!(
        "  expires {} (in {})",
        local(r.expires_at, ctx),
        human_duration((r.expires_at - ctx.now).num_seconds())
    )));
    let left_block = dialog_block(format!("{} request", kind_label(r)), ctx);
    let left_inner = left_block.inner(columns[0]);
    frame.render_widget(left_block, columns[0]);
    let spark_height = if trust.is_some() { 3 } else { 0 };
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(1), Constraint::Length(spark_height)])
        .split(left_inner);
    frame.render_widget(
        Paragraph::new(Text::from(left)).wrap(Wrap { trim: false }),
        parts[0],
    );
    if let Some(t) = trust {
        let data: Vec<u64> = t.history.iter().map(|p| p.score.max(0) as u64).collect();
        frame.render_widget(
            Sparkline::default()
                .block(Block::default().title(Span::styled("trust history", ctx.theme.dim)))
                .data(&data)
                .max(1000)
                .style(ctx.theme.accent),
            parts[1],
        );
    }
    // Right: justification, context, ticket, in full, scrollable.
    let mut right: Vec<Line> = vec![Line::styled("justification", ctx.theme.dim)];
    right.extend(safe_lines(&r.justification).into_iter().map(Line::raw));
    right.push(Line::raw(""));
    right.push(Line::styled("context", ctx.theme.dim));
    right.extend(
        safe_lines(r.context.as_deref().unwrap_or("—"))
            .into_iter()
            .map(Line::raw),
    );
    right.push(Line::raw(""));
    right.push(Line::raw(format!(
        "ticket       {}",
        safe(r.ticket.as_deref().unwrap_or("—"))
    )));
    right.push(Line::raw(format!(
        "on behalf of {}",
        safe(r.on_behalf_of.as_deref().unwrap_or("—"))
    )));
    right.push(Line::raw(format!("request      {}", r.id)));
    right.push(Line::raw(format!(
        "asked at     {}",
        local(r.created_at, ctx)
    )));
    let total = right.len() as u16;
    let block = dialog_block(
        format!(
            "why (j/k scroll · {}/{} lines)",
            scroll.min(total) + 1,
            total
        ),
        ctx,
    );
    frame.render_widget(
        Paragraph::new(Text::from(right))
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        columns[1],
    );
}
