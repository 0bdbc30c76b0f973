//! The agents screen: status, trust, grants and the delegation tree of each of my agents.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Frame2, list_filter_note, loading, safe, window};
use crate::console::state::{State, human_duration};
use crate::protocol::agents::AgentStatus;

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
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
    if loading(frame, inner, state, &state.agents_load, "agents", ctx) {
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
                AgentStatus::Proposed => "proposed".to_owned(),
                AgentStatus::Active => "active".to_owned(),
                AgentStatus::Suspended if a.suspension_security => "SUSPENDED (security)".into(),
                AgentStatus::Suspended => "SUSPENDED".into(),
                AgentStatus::Revoked => "revoked".into(),
            };
            let mut style = match a.status {
                AgentStatus::Proposed => ctx.theme.dim,
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
