//! The inbox: one row per pending request, only the rows on screen built, critical and high
//! rows coloured and flagged in words.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Frame2, kind_label, loading, safe, window};
use crate::console::keymap::Command;
use crate::console::state::{Risk, State, human_duration};
use crate::domain::trust::Tier;
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
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(
            " pending {}{}{}  sorted by {}{} ",
            state.inbox.len(),
            loading_note(state),
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
    if loading(frame, inner, state, &state.requests_load, "requests", ctx) {
        return;
    }
    if state.inbox.is_empty() {
        let text = if state.requests.is_empty() {
            "No pending requests. New ones appear here as agents ask.".to_owned()
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
