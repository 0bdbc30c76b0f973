//! The one dialog widget: draws any `Dialog` row by row, then its error and its buttons.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::{Frame2, centered, dialog_block, local, local_date, safe};
use crate::console::keymap::{Command, Keymap};
use crate::console::state::dialog::{
    Checks, Confirm, Dialog, DialogError, DurationField, FieldId, Focus, PRESETS, Row,
};
use crate::console::state::human_duration;
use crate::domain::entra::{Expiration, RequestedWindow};

/// Width, and the lines besides the content (borders, breathing room, and for the grant
/// summary room to wrap onto a second line).
fn size(action: &Confirm) -> (u16, u16) {
    match action {
        Confirm::Approve { .. } => (96, 4),
        Confirm::ApproveMarked { .. } => (96, 2),
        Confirm::Deny { .. } | Confirm::Reactivate { .. } | Confirm::RevokeGrant { .. } => (80, 3),
        Confirm::Suspend { .. } | Confirm::SuspendAll { .. } => (90, 3),
        Confirm::DecideEntra { .. } | Confirm::DecideAction { .. } => (96, 3),
    }
}

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    dialog: &Dialog,
    keymap: &Keymap,
    ctx: Frame2<'_>,
) {
    let mut lines: Vec<Line> = Vec::new();
    for (row, r) in dialog.rows.iter().enumerate() {
        let focused = |item: usize| dialog.focus == Focus::Field { row, item };
        match r {
            Row::Line(text) => lines.push(Line::raw(safe(text))),
            Row::Heading(text) => lines.push(Line::styled(safe(text), ctx.theme.dim)),
            Row::Bullet(text) => lines.push(Line::raw(format!("  • {}", safe(text)))),
            Row::Blank => lines.push(Line::raw("")),
            Row::Duration(d) => duration(&mut lines, d, focused(0), focused(1), ctx),
            Row::Checks(c) => checks(&mut lines, c, keymap, focused, ctx),
            Row::Text(t) => lines.push(field(&t.label, &t.value, focused(0), ctx)),
            Row::GrantSummary { grantee, did } => {
                lines.push(grant_summary(dialog, grantee, did, ctx));
            }
            Row::EntraWindow(window) => lines.push(entra_window(window, ctx)),
        }
    }
    lines.push(error_line(dialog.error.as_ref(), ctx));
    lines.push(buttons(dialog.focus, &dialog.confirm_label, ctx));
    let (width, spare) = size(&dialog.action);
    let rect = centered(area, width, lines.len() as u16 + spare);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(dialog_block(safe(&dialog.title), ctx))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

/// Presets capped by policy (those above the cap struck through), custom, and the cap.
fn duration(
    lines: &mut Vec<Line<'static>>,
    d: &DurationField,
    presets_focused: bool,
    custom_focused: bool,
    ctx: Frame2<'_>,
) {
    let mut presets = vec![Span::styled("Duration: ", ctx.theme.dim)];
    for (i, (_, label)) in PRESETS.iter().enumerate() {
        let chosen = d.chosen == i;
        let text = if chosen {
            format!("({label})")
        } else {
            format!("[{label}]")
        };
        let mut style = if d.allowed(i) {
            ctx.theme.base
        } else {
            ctx.theme.dim.add_modifier(Modifier::CROSSED_OUT)
        };
        if chosen {
            style = style.add_modifier(Modifier::BOLD);
            if presets_focused {
                style = style.patch(ctx.theme.selected);
            }
        }
        presets.push(Span::styled(text, style));
        presets.push(Span::raw(" "));
    }
    let custom_style = if d.is_custom() && presets_focused {
        ctx.theme.selected
    } else {
        ctx.theme.base
    };
    presets.push(Span::styled(
        if d.is_custom() {
            "(custom)"
        } else {
            "[custom]"
        },
        custom_style,
    ));
    presets.push(Span::styled(
        format!("   at most {}", human_duration(d.max_seconds)),
        ctx.theme.dim,
    ));
    lines.push(Line::from(presets));
    if d.is_custom() {
        lines.push(field("  custom", &d.custom, custom_focused, ctx));
    }
}

/// A check list; under a heading (which names the toggle key) its entries are indented.
fn checks(
    lines: &mut Vec<Line<'static>>,
    c: &Checks,
    keymap: &Keymap,
    focused: impl Fn(usize) -> bool,
    ctx: Frame2<'_>,
) {
    let indent = match c.heading {
        Some(heading) => {
            lines.push(Line::styled(
                format!("{heading} ({} toggles):", keymap.keys(Command::Toggle)),
                ctx.theme.dim,
            ));
            "  "
        }
        None => "",
    };
    for (i, (label, on)) in c.items.iter().enumerate() {
        let text = format!("{indent}[{}] {}", if *on { "x" } else { " " }, safe(label));
        let style = if focused(i) {
            ctx.theme.selected
        } else {
            ctx.theme.base
        };
        lines.push(Line::styled(text, style));
    }
}

/// Exactly what will be granted, to whom, until when.
fn grant_summary(dialog: &Dialog, grantee: &str, did: &str, ctx: Frame2<'_>) -> Line<'static> {
    let Some(seconds) = dialog.duration().map(DurationField::seconds) else {
        return Line::raw("");
    };
    match seconds {
        Ok(secs) => {
            let until = ctx.now + chrono::Duration::seconds(secs);
            let caps = dialog.checked(FieldId::Capabilities);
            if caps.is_empty() {
                return Line::styled(
                    "Nothing would be granted: keep at least one capability.",
                    ctx.theme.error,
                );
            }
            Line::from(vec![
                Span::styled("Grants ", ctx.theme.base),
                Span::styled(
                    safe(&caps.join(", ")),
                    ctx.theme.accent.add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(
                    " to {} ({}) for {}, until {} local (in {}).",
                    safe(grantee),
                    safe(did),
                    human_duration(secs),
                    local(until, ctx),
                    human_duration(secs)
                )),
            ])
        }
        Err(e) => Line::styled(format!("Duration: {e}"), ctx.theme.error),
    }
}

/// An Entra request's window as approving now would make it: fixed, so no picker, with the
/// exact end in local time.
fn entra_window(window: &RequestedWindow, ctx: Frame2<'_>) -> Line<'static> {
    let start = match window.start {
        Some(at) if at > ctx.now => format!("from {}", local_date(at, ctx)),
        _ => "from approval".to_owned(),
    };
    let end = match window.ends(ctx.now) {
        Some(end) => format!(
            " until {} local ({})",
            local_date(end, ctx),
            human_duration((end - window.starts(ctx.now).max(ctx.now)).num_seconds())
        ),
        None => match &window.expiration {
            Expiration::NoExpiration => " with no end (permanent)".to_owned(),
            _ => " (Entra did not say until when)".to_owned(),
        },
    };
    let how_long = match &window.expiration {
        Expiration::AfterDuration { duration } => format!(" · asked {}", duration.as_str()),
        _ => String::new(),
    };
    Line::from(vec![
        Span::styled(
            format!("  {start}{end}"),
            ctx.theme.accent.add_modifier(Modifier::BOLD),
        ),
        Span::styled(how_long, ctx.theme.dim),
    ])
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

fn error_line(error: Option<&DialogError>, ctx: Frame2<'_>) -> Line<'static> {
    match error {
        Some(e) => Line::from(Span::styled(format!("✗ {e}"), ctx.theme.error)),
        None => Line::raw(""),
    }
}
