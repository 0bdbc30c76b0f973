//! The audit screen: the verdict of the last verification and the tail of the chain.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Frame2, list_filter_note, loading, local, safe, window};
use crate::client::checkpoint::CheckpointProblem;
use crate::console::keymap::Command;
use crate::console::state::State;
use crate::protocol::audit::StateReport;

/// The verdict of the last verification, and the checkpoint kept: a chain that no longer holds
/// a kept checkpoint, or a refused checkpoint, is a red failure like a broken chain.
/// Returns the title's spans and, below it, the line about checkpoints (empty without one).
fn verdict(state: &State, ctx: Frame2<'_>) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
    let v = match &state.verify {
        None => {
            let title = Span::styled(
                format!(
                    " chain not verified yet ({} verifies) ",
                    state.keymap.first_key(Command::Verify)
                ),
                ctx.theme.dim,
            );
            return (vec![title], Vec::new());
        }
        Some(Err(e)) => {
            let title = Span::styled(
                format!(" verification failed: {} ", safe(&e.to_string())),
                ctx.theme.error,
            );
            return (vec![title], Vec::new());
        }
        Some(Ok(v)) => v,
    };
    let r = &v.report;
    let title = vec![match &v.problem {
        Some(CheckpointProblem::Disagrees(d)) => Span::styled(
            format!(
                " CHAIN DOES NOT HOLD THE CHECKPOINT KEPT: {} ",
                safe(&d.to_string())
            ),
            ctx.theme.error,
        ),
        Some(refused) => Span::styled(
            format!(" CHECKPOINT REFUSED: {} ", safe(&refused.to_string())),
            ctx.theme.error,
        ),
        None if !r.ok => Span::styled(
            format!(
                " CHAIN BROKEN at seq {}: {} ",
                r.first_bad_seq.unwrap_or_default(),
                safe(r.reason.as_deref().unwrap_or("?"))
            ),
            ctx.theme.error,
        ),
        None => Span::styled(
            format!(
                " chain verified: ok, {} events, head {}… ",
                r.count,
                safe(&r.head.chars().take(12).collect::<String>())
            ),
            ctx.theme.ok,
        ),
    }];
    let mut spans = Vec::new();
    if v.ok()
        && let Some(c) = v.compared.last()
    {
        spans.push(Span::styled(
            format!(" agrees with the checkpoint of seq {} ", c.seq),
            ctx.theme.ok,
        ));
    }
    if let Some(k) = &v.kept {
        spans.push(Span::styled(
            format!(
                " checkpoint kept: seq {}, signed {} ",
                k.seq,
                k.at.with_timezone(&ctx.offset).format("%Y-%m-%d %H:%M")
            ),
            ctx.theme.dim,
        ));
    }
    (title, spans)
}

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let (mut title, checkpoints) = verdict(state, ctx);
    // The state check is shown once asked for (verify) or when it found a difference.
    match &state.record {
        Some(r) if !r.ok => title.push(Span::styled(
            format!(" STATE DIFFERS FROM THE RECORD: {} ", r.count),
            ctx.theme.error,
        )),
        Some(r) if state.verify.is_some() => title.push(Span::styled(
            format!(" state agrees with the record (to seq {}) ", r.head_seq),
            ctx.theme.ok,
        )),
        _ => {}
    }
    if !state.list_filter.is_empty() {
        title.push(Span::styled(list_filter_note(state), ctx.theme.accent));
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Line::from(title));
    let mut inner = block.inner(area);
    frame.render_widget(block, area);
    if !checkpoints.is_empty() && inner.height > 1 {
        let line = Rect { height: 1, ..inner };
        frame.render_widget(Paragraph::new(Line::from(checkpoints)), line);
        inner.y += 1;
        inner.height -= 1;
    }
    if let Some(r) = state.record.as_ref().filter(|r| !r.ok) {
        inner = differences(frame, inner, r, ctx);
    }
    if loading(
        frame,
        inner,
        state,
        &state.audit_load,
        "the audit chain",
        ctx,
    ) {
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

/// The differences the state check found, above the tail; returns the room left for the tail.
fn differences(frame: &mut Frame, area: Rect, report: &StateReport, ctx: Frame2<'_>) -> Rect {
    const MOST: usize = 8;
    let mut lines: Vec<Line> = report
        .differences
        .iter()
        .take(MOST)
        .map(|d| {
            Line::from(Span::styled(
                format!(" {}", safe(&d.to_string())),
                ctx.theme.error,
            ))
        })
        .collect();
    if report.differences.is_empty() {
        lines.push(Line::from(Span::styled(
            " a security lead or admin can read the differences",
            ctx.theme.dim,
        )));
    } else if report.differences.len() > MOST {
        lines.push(Line::from(Span::styled(
            format!(
                " … and {} more (sponsor-console audit verify --state)",
                report.differences.len() - MOST
            ),
            ctx.theme.dim,
        )));
    }
    let height = u16::try_from(lines.len() + 1)
        .unwrap_or(u16::MAX)
        .min(area.height / 2);
    let [top, rest] =
        Layout::vertical([Constraint::Length(height), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(lines), top);
    rest
}
