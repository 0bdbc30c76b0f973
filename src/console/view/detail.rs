//! The request detail: agent card, trust and its history, standing against requested
//! capabilities, the delegation chain and policy on the left; the full justification and
//! context, scrollable, on the right.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Sparkline, Wrap};

use super::{Frame2, dialog_block, kind_label, local, safe, safe_lines, scrolled_panel};
use crate::console::state::{State, human_duration};
use crate::domain::trust::Tier;
use crate::protocol::requests::{Decision, RequestKind};

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    id: &str,
    scroll: u16,
    ctx: Frame2<'_>,
) {
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
        .filter(|a| a.decision == Decision::Approve)
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
    scrolled_panel(frame, columns[1], "why", right, scroll, &state.keymap, ctx);
}
