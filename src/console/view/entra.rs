//! The detail of an Entra approval: who asks (name, UPN, object id), for which role, group or
//! package and scope, the window asked with its exact end if approved now, the approvers'
//! time left, the justification and ticket in full, and which keys decide it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::Line;
use ratatui::widgets::Clear;

use super::{Frame2, local_date, safe, safe_lines, scrolled_panel};
use crate::console::keymap::Command;
use crate::console::state::{EntraInbox, State, human_duration};
use crate::domain::entra::{EntraApproval, Expiration};

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    entra: &EntraInbox,
    r: &EntraApproval,
    scroll: u16,
    ctx: Frame2<'_>,
) {
    frame.render_widget(Clear, area);
    let field = |name: &str, value: String| Line::raw(format!("{name:<13}{value}"));
    let mut lines: Vec<Line> = vec![
        Line::styled(
            format!("{} request {}", r.source.label(), safe(&r.key())),
            ctx.theme.accent.add_modifier(Modifier::BOLD),
        ),
        Line::raw(""),
        field("requester", safe(r.requester.label())),
        field(
            "  UPN",
            safe(r.requester.username.as_deref().unwrap_or("—")),
        ),
        field("  object id", safe(&r.requester.id)),
    ];
    if let Some(by) = &r.created_by {
        lines.push(field("created by", safe(by)));
    }
    lines.push(field("for", safe(r.target.label())));
    lines.push(field("  id", safe(&r.target.id)));
    lines.push(field("scope", safe(r.scope.as_deref().unwrap_or("—"))));
    lines.push(field("action", safe(r.action.as_deref().unwrap_or("—"))));
    lines.push(field("status", safe(&r.status)));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "window (as requested; Entra does not let an approver change it)",
        ctx.theme.dim,
    ));
    lines.push(field(
        "  starts",
        match r.window.start {
            Some(at) => local_date(at, ctx),
            None => "at approval".to_owned(),
        },
    ));
    let asked = match &r.window.expiration {
        Expiration::AfterDuration { duration } => duration.as_str().to_owned(),
        Expiration::AfterDateTime { end } => format!("until {}", local_date(*end, ctx)),
        Expiration::NoExpiration => "no end (permanent)".to_owned(),
        Expiration::NotSpecified { raw } => {
            format!(
                "not specified{}",
                raw.as_deref()
                    .map(|r| format!(" ({})", safe(r)))
                    .unwrap_or_default()
            )
        }
    };
    lines.push(field("  asked", asked));
    lines.push(field(
        "  ends",
        match r.window.ends(ctx.now) {
            Some(end) if r.window.ends_with_approval() => {
                format!("{} if approved now", local_date(end, ctx))
            }
            Some(end) => local_date(end, ctx),
            None => "—".to_owned(),
        },
    ));
    if let Some(created) = r.created_at {
        lines.push(field("asked at", local_date(created, ctx)));
    }
    if let Some(by) = r.decide_by() {
        lines.push(field(
            "decide by",
            format!(
                "{} (in {}; approvers have 24 hours)",
                local_date(by, ctx),
                human_duration((by - ctx.now).num_seconds())
            ),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("justification", ctx.theme.dim));
    lines.extend(
        safe_lines(r.justification.as_deref().unwrap_or("—"))
            .into_iter()
            .map(Line::raw),
    );
    lines.push(Line::raw(""));
    let ticket = r
        .ticket
        .as_ref()
        .map(|t| match (t.number.as_deref(), t.system.as_deref()) {
            (Some(n), Some(s)) => format!("{} ({})", safe(n), safe(s)),
            (Some(n), None) => safe(n),
            (None, Some(s)) => safe(s),
            (None, None) => "—".to_owned(),
        });
    lines.push(field("ticket", ticket.unwrap_or_else(|| "—".to_owned())));
    lines.push(Line::raw(""));
    let keys = &state.keymap;
    let how = if entra.is_own(r) {
        "This is your own request: someone else must approve it.".to_owned()
    } else if entra.deciding.contains(&r.key()) {
        "Deciding… (waiting for Graph)".to_owned()
    } else {
        format!(
            "{} approves, {} denies (a justification is required)",
            keys.first_key(Command::Approve),
            keys.first_key(Command::Deny)
        )
    };
    lines.push(Line::styled(how, ctx.theme.warn));
    scrolled_panel(frame, area, r.source.label(), lines, scroll, keys, ctx);
}
