//! The grants screen: live countdowns, ending grants in warning colour.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Frame2, list_filter_note, loading, local, safe, window};
use crate::console::state::{State, human_duration};

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let active = state.grants.iter().filter(|g| g.active).count();
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(" active grants {active}{} ", list_filter_note(state)),
        ctx.theme.accent,
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if loading(frame, inner, state, &state.grants_load, "grants", ctx) {
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
