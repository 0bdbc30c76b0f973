//! The dialogs: decide, reason (deny, reactivate, revoke), suspend, suspend all, bulk approve.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::{Frame2, centered, dialog_block, local, safe};
use crate::console::state::{
    BulkApproveForm, DecideForm, Focus, PRESETS, ReasonForm, State, SuspendAllForm, SuspendForm,
    human_duration,
};

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

pub(super) fn decide(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    form: &DecideForm,
    ctx: Frame2<'_>,
) {
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

pub(super) fn reason(frame: &mut Frame, area: Rect, form: &ReasonForm, ctx: Frame2<'_>) {
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

pub(super) fn suspend(frame: &mut Frame, area: Rect, form: &SuspendForm, ctx: Frame2<'_>) {
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

pub(super) fn suspend_all(frame: &mut Frame, area: Rect, form: &SuspendAllForm, ctx: Frame2<'_>) {
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

pub(super) fn bulk(frame: &mut Frame, area: Rect, form: &BulkApproveForm, ctx: Frame2<'_>) {
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
