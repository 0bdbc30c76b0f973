//! The help screen: the keys active underneath and the commands after `:`, both generated
//! from the keymap's command list.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Clear, Paragraph};

use super::{Frame2, centered, dialog_block};
use crate::console::keymap::{Command, line_summary};
use crate::console::state::State;

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, ctx: Frame2<'_>) {
    let mut lines = vec![Line::styled(
        "Keys active here (from your keymap):",
        ctx.theme.dim,
    )];
    for (keys, help) in state.keymap.hints(state.help_context()) {
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<18}"), ctx.theme.accent),
            Span::raw(help),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Commands after ':' — {}", line_summary()),
        ctx.theme.dim,
    ));
    let rect = centered(area, 70, (lines.len() as u16 + 2).min(area.height));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines)).block(dialog_block(
            format!("Help ({} closes)", state.keymap.keys(Command::Back)),
            ctx,
        )),
        rect,
    );
}
