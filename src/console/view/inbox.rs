//! The inbox: one row per pending request (the governance server's, its action requests and
//! Entra's), only the rows on screen built, critical and high rows coloured and flagged in
//! words.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Frame2, kind_label, loading, safe, window};
use crate::console::keymap::Command;
use crate::console::state::{
    EntraInbox, Item, Risk, State, action_what, action_who, human_duration,
};
use crate::domain::entra::{EntraApproval, Expiration};
use crate::domain::trust::Tier;
use crate::protocol::actions::Action as ActionRequest;
use crate::protocol::requests::Request;

/// While the rest of the pending requests are still coming: how many of how many.
fn loading_note(state: &State) -> String {
    if !state.pending_paging {
        return String::new();
    }
    match state.pending_total {
        Some(total) => format!(" (loaded {} of {total}, loading…)", state.requests.len()),
        None => " (loading…)".to_owned(),
    }
}

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let mut title = vec![Span::styled(
        format!(
            " pending {}{}{}  sorted by {}{} ",
            state.inbox.len(),
            loading_note(state),
            if state.filter.is_empty() {
                String::new()
            } else {
                format!(
                    " of {} matching /{}",
                    state.row_count(),
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
    )];
    // The rows kept from the last good load stay; this says they may be stale.
    if state.actions.error.is_some() {
        title.push(Span::styled(
            format!(
                " action requests could not be loaded ({} retries) ",
                state.keymap.first_key(Command::Refresh)
            ),
            ctx.theme.error,
        ));
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if loading(frame, inner, state, &state.requests_load, "requests", ctx) {
        return;
    }
    if state.inbox.is_empty() {
        let text = if state.row_count() == 0 {
            match &state.entra {
                Some(_) => "No pending requests. New ones appear here as agents ask, and as Entra's approvals wait on you.".to_owned(),
                None => "No pending requests. New ones appear here as agents ask.".to_owned(),
            }
        } else {
            format!(
                "Nothing matches the filter ({} then {} clears it).",
                state.keymap.first_key(Command::Filter),
                state.keymap.first_key(Command::Cancel)
            )
        };
        frame.render_widget(Paragraph::new(text).style(ctx.theme.dim), inner);
        return;
    }
    let height = inner.height.saturating_sub(1) as usize;
    let (start, end) = window(state.inbox_selected, state.inbox.len(), height);
    let with_source = state.entra.is_some();
    let with_actions = !state.actions.rows.is_empty();
    let rows: Vec<Row> = state.inbox[start..end]
        .iter()
        .enumerate()
        .map(|(offset, item)| {
            let selected = start + offset == state.inbox_selected;
            match *item {
                Item::Local(i) => local_row(state, &state.requests[i], selected, with_source, ctx),
                Item::Action(i) => {
                    action_row(state, &state.actions.rows[i], selected, with_source, ctx)
                }
                Item::Entra(i) => match &state.entra {
                    Some(entra) => entra_row(entra, &entra.rows[i], selected, ctx),
                    None => Row::default(),
                },
            }
        })
        .collect();
    let mut header = vec![
        "",
        "KIND",
        "AGENT",
        "CAPABILITIES",
        "ASKED",
        "TRUST",
        "AGE",
        "LEFT",
        "FLAGS",
    ];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(5),
        Constraint::Length(24),
        Constraint::Min(16),
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(14),
    ];
    if with_actions {
        // Requests and action requests share the columns; `action` needs one more for its
        // kind, which the name gives up.
        header[2] = "WHO";
        header[3] = "WHAT";
        widths[1] = Constraint::Length(6);
        widths[2] = Constraint::Length(23);
    }
    if with_source {
        // Agents' requests and people's approvals share the columns.
        header[2] = "WHO";
        header[3] = "WHAT";
        header.insert(1, "SOURCE");
        widths.insert(1, Constraint::Length(10));
        // Room for a person's name and UPN.
        widths[3] = Constraint::Length(if with_actions { 31 } else { 32 });
    }
    let header = Row::new(header).style(ctx.theme.dim.add_modifier(Modifier::BOLD));
    let table = Table::new(rows, widths).header(header);
    frame.render_widget(table, inner);
}

fn local_row<'a>(
    state: &State,
    r: &Request,
    selected: bool,
    with_source: bool,
    ctx: Frame2<'_>,
) -> Row<'a> {
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
    if selected {
        style = style.patch(ctx.theme.selected);
    }
    let mut cells = vec![
        Cell::from(if marked { "✓" } else { " " }),
        Cell::from(kind_label(r)),
        Cell::from(agent),
        Cell::from(safe(&r.capabilities.join(" "))),
        Cell::from(human_duration(r.duration_seconds)),
        Cell::from(Tier::of(r.trust_score).as_str()),
        Cell::from(human_duration(age)),
        Cell::from(human_duration(left)),
        Cell::from(flags(state, r, risk)),
    ];
    if with_source {
        cells.insert(1, Cell::from("local"));
    }
    Row::new(cells).style(style)
}

/// An action request in the same columns: who asks (and through which integration), the
/// operation and its target, asked for once, its time left.
fn action_row<'a>(
    state: &State,
    a: &ActionRequest,
    selected: bool,
    with_source: bool,
    ctx: Frame2<'_>,
) -> Row<'a> {
    let age = (ctx.now - a.created_at).num_seconds();
    let left = (a.expires_at - ctx.now).num_seconds();
    let flags = if state.actions.deciding.contains(&a.id) {
        "deciding…"
    } else {
        ""
    };
    let mut style = ctx.theme.base;
    if selected {
        style = style.patch(ctx.theme.selected);
    }
    let mut cells = vec![
        Cell::from(" "),
        Cell::from("action"),
        Cell::from(safe(&action_who(a))),
        Cell::from(safe(&action_what(a))),
        Cell::from("once"),
        Cell::from("—"),
        Cell::from(human_duration(age)),
        Cell::from(human_duration(left)),
        Cell::from(flags),
    ];
    if with_source {
        cells.insert(1, Cell::from("AGT"));
    }
    Row::new(cells).style(style)
}

/// An Entra row in the same columns: who asks (name and UPN), for what role, group or package
/// and scope, the window asked, the approvers' time left.
fn entra_row<'a>(
    entra: &EntraInbox,
    r: &EntraApproval,
    selected: bool,
    ctx: Frame2<'_>,
) -> Row<'a> {
    let who = safe(&r.requester.name_and_upn());
    let what = match r.scope.as_deref() {
        Some(scope) => format!("{} @ {}", safe(r.target.label()), safe(scope)),
        None => safe(r.target.label()),
    };
    let asked = match &r.window.expiration {
        Expiration::AfterDuration { duration } => duration
            .after(ctx.now)
            .map(|end| human_duration((end - ctx.now).num_seconds()))
            .unwrap_or_else(|| duration.as_str().to_owned()),
        Expiration::AfterDateTime { end } => {
            human_duration((*end - r.window.starts(ctx.now)).num_seconds())
        }
        Expiration::NoExpiration => "perm".to_owned(),
        Expiration::NotSpecified { .. } => "—".to_owned(),
    };
    let age = r
        .created_at
        .map(|c| human_duration((ctx.now - c).num_seconds()))
        .unwrap_or_default();
    let left = r
        .decide_by()
        .map(|d| human_duration((d - ctx.now).num_seconds()))
        .unwrap_or_default();
    let mut flags = Vec::new();
    if entra.is_own(r) {
        flags.push("yours");
    }
    if entra.deciding.contains(&r.key()) {
        flags.push("deciding…");
    }
    if matches!(r.window.expiration, Expiration::NoExpiration) {
        flags.push("perm");
    }
    let mut style = ctx.theme.base;
    if selected {
        style = style.patch(ctx.theme.selected);
    }
    Row::new(vec![
        Cell::from(" "),
        Cell::from(r.source.column()),
        Cell::from("human"),
        Cell::from(who),
        Cell::from(what),
        Cell::from(asked),
        Cell::from("—"),
        Cell::from(age),
        Cell::from(left),
        Cell::from(flags.join(" ")),
    ])
    .style(style)
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
