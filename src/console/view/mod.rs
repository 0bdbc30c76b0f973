//! Drawing: a pure function of the state and the time. Only the rows on screen are built, so a
//! frame costs the same with ten requests or a hundred thousand. Every agent-written string
//! passes through `safe_text` first. One file per screen; this one lays them out and draws
//! what they share (tabs, hints, status bar, prompts).

mod actions;
mod agents;
mod audit;
mod detail;
mod dialog;
mod entra;
mod grants;
mod help;
mod inbox;

use chrono::{DateTime, FixedOffset, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::keymap::{Command, Context, Keymap};
use super::safe_text::{lines as safe_lines, one_line as safe};
use super::state::{Connection, Load, Modal, Screen, State, human_duration};
use super::theme::Theme;
use crate::domain::entra::{SyncStatus, summary};
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
    let differs = state.record.as_ref().filter(|r| !r.ok);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(u16::from(differs.is_some())),
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(area);
    tabs(frame, rows[0], state, ctx);
    if let Some(report) = differs {
        // The record and the tables disagree: nothing on screen can be taken at its word.
        let text = format!(
            " ⚠ THE SERVER'S TABLES DIFFER FROM THE AUDIT RECORD: {} difference(s), checked {} — see {} Audit ",
            report.count,
            local(report.checked_at, ctx),
            Screen::ALL
                .iter()
                .position(|s| *s == Screen::Audit)
                .map_or(4, |i| i + 1),
        );
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(text, ctx.theme.error))),
            rows[1],
        );
    }
    let rows = [rows[0], rows[2], rows[3], rows[4]];
    match state.screen {
        Screen::Inbox => inbox::draw(frame, rows[1], state, ctx),
        Screen::Agents => agents::draw(frame, rows[1], state, ctx),
        Screen::Grants => grants::draw(frame, rows[1], state, ctx),
        Screen::Audit => audit::draw(frame, rows[1], state, ctx),
    }
    hints(frame, rows[2], state, ctx);
    status(frame, rows[3], state, ctx);
    for modal in &state.modals {
        match modal {
            Modal::Help => help::draw(frame, area, state, ctx),
            Modal::Detail { id, scroll } => {
                if let Some((inbox, row)) = state.entra.as_ref().zip(state.entra_row(id)) {
                    entra::draw(frame, rows[1], state, inbox, row, *scroll, ctx);
                } else if let Some(action) = state.action_request(id) {
                    actions::draw(frame, rows[1], state, action, *scroll, ctx);
                } else {
                    detail::draw(frame, rows[1], state, id, *scroll, ctx);
                }
            }
            Modal::Dialog(d) => dialog::draw(frame, area, d, &state.keymap, ctx),
            Modal::Filter(text) => input_line(frame, rows[2], "/", text, ctx),
            Modal::CommandLine(text) => input_line(frame, rows[2], ":", text, ctx),
        }
    }
}

fn kind_label(r: &Request) -> &'static str {
    match r.kind {
        RequestKind::Elevation => "elev",
        RequestKind::Delegation => "deleg",
    }
}

fn local(at: DateTime<Utc>, ctx: Frame2<'_>) -> String {
    at.with_timezone(&ctx.offset).format("%H:%M:%S").to_string()
}

/// With the date and the offset, for times that may be days away.
fn local_date(at: DateTime<Utc>, ctx: Frame2<'_>) -> String {
    at.with_timezone(&ctx.offset)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

fn tabs(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let mut spans = Vec::new();
    for (i, screen) in Screen::ALL.iter().enumerate() {
        let mut label = format!(" {} {} ", i + 1, screen.title());
        if *screen == Screen::Inbox {
            label = format!(" 1 Inbox ({}) ", state.row_count());
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
    // Where Entra's sources stand; the status bar below keeps its room for messages.
    if let Some(entra) = &state.entra {
        let failing = entra
            .sources
            .iter()
            .any(|s| matches!(s.status, SyncStatus::Retrying { .. }));
        spans.push(Span::raw("   "));
        spans.push(Span::styled(
            safe(&summary(&entra.sources, ctx.now)),
            if failing {
                ctx.theme.warn
            } else {
                ctx.theme.dim
            },
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn loading(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    load: &Load,
    what: &str,
    ctx: Frame2<'_>,
) -> bool {
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
                    "could not load {what}: {} ({} retries)",
                    safe(&e.to_string()),
                    state.keymap.first_key(Command::Refresh)
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

fn list_filter_note(state: &State) -> String {
    if state.list_filter.is_empty() {
        String::new()
    } else {
        format!("  matching /{}", safe(&state.list_filter))
    }
}

fn hints(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let context = state.context();
    let spans: Vec<Span> = if context == Context::Dialog {
        let text = state
            .keymap
            .footer(context)
            .into_iter()
            .map(|(keys, help)| format!("{keys} {help}"))
            .collect::<Vec<_>>()
            .join(" · ");
        vec![Span::styled(text, ctx.theme.dim)]
    } else {
        let mut v = Vec::new();
        // My own Entra request has no approve key.
        let hidden: &[Command] = if state.own_entra_target() {
            &[Command::Approve]
        } else {
            &[]
        };
        for (keys, help) in state.keymap.footer_without(context, hidden) {
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
        Span::raw(format!(" │ {token} │ {} ", pending_count(state))),
    ];
    if let Some(flash) = &state.flash {
        let text = safe(&flash.text);
        // A message must be read: when the bar is too narrow for it, the server's address
        // gives way first, then the rest before the message.
        let room = usize::from(area.width);
        let used = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
        let wanted = 2 + Span::raw(text.as_str()).width();
        if used(&spans) + wanted > room {
            spans[1] = Span::raw("│ ");
        }
        if used(&spans) + wanted > room {
            spans.truncate(1);
        }
        spans.push(Span::raw("│ "));
        spans.push(Span::styled(
            text,
            if flash.error {
                ctx.theme.error
            } else {
                ctx.theme.ok
            },
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The pending count of the status bar: while a load is still bringing them in, of how many;
/// and the action requests beside them.
fn pending_count(state: &State) -> String {
    let requests = match state.pending_total {
        Some(total) if state.pending_paging => {
            format!("{} of {total} pending, loading", state.requests.len())
        }
        _ => format!("{} pending", state.requests.len()),
    };
    match state.actions.rows.len() {
        0 => requests,
        1 => format!("{requests} · 1 action"),
        n => format!("{requests} · {n} actions"),
    }
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

/// `lines` in a bordered panel titled `name`, scrolled down by `scroll` lines; the title says
/// which keys scroll it and where in the text the view is. The detail views share it.
fn scrolled_panel(
    frame: &mut Frame,
    area: Rect,
    name: &str,
    lines: Vec<Line<'_>>,
    scroll: u16,
    keymap: &Keymap,
    ctx: Frame2<'_>,
) {
    let total = lines.len() as u16;
    let block = dialog_block(
        format!(
            "{name} ({}/{} scroll · {}/{} lines)",
            keymap.first_key(Command::Down),
            keymap.first_key(Command::Up),
            scroll.min(total) + 1,
            total
        ),
        ctx,
    );
    frame.render_widget(
        Paragraph::new(ratatui::text::Text::from(lines))
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
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
