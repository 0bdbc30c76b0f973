//! Colours. Colour is never the only signal (risk flags are also words, marks are also a
//! glyph); `NO_COLOR` gives a theme of bold, reverse and underline only; the colour-blind theme
//! avoids red/green pairs (blue, orange, yellow).

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub base: Style,
    pub dim: Style,
    pub accent: Style,
    pub selected: Style,
    pub critical: Style,
    pub high: Style,
    pub ok: Style,
    pub warn: Style,
    pub error: Style,
    pub production_frame: Style,
}

impl Theme {
    pub fn by_name(name: &str, no_color: bool) -> Option<Self> {
        if no_color {
            return Some(Self::mono());
        }
        match name {
            "default" | "" => Some(Self::default_theme()),
            "colour-blind" | "color-blind" => Some(Self::colour_blind()),
            "mono" => Some(Self::mono()),
            _ => None,
        }
    }

    pub fn default_theme() -> Self {
        Self {
            base: Style::default(),
            dim: Style::default().fg(Color::DarkGray),
            accent: Style::default().fg(Color::Cyan),
            selected: Style::default().add_modifier(Modifier::REVERSED),
            critical: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            high: Style::default().fg(Color::Yellow),
            ok: Style::default().fg(Color::Green),
            warn: Style::default().fg(Color::Yellow),
            error: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            production_frame: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }

    pub fn colour_blind() -> Self {
        Self {
            critical: Style::default()
                .fg(Color::Rgb(230, 159, 0))
                .add_modifier(Modifier::BOLD),
            high: Style::default().fg(Color::Rgb(240, 228, 66)),
            ok: Style::default().fg(Color::Rgb(86, 180, 233)),
            warn: Style::default().fg(Color::Rgb(240, 228, 66)),
            error: Style::default()
                .fg(Color::Rgb(230, 159, 0))
                .add_modifier(Modifier::BOLD),
            accent: Style::default().fg(Color::Rgb(0, 114, 178)),
            ..Self::default_theme()
        }
    }

    pub fn mono() -> Self {
        Self {
            base: Style::default(),
            dim: Style::default().add_modifier(Modifier::DIM),
            accent: Style::default().add_modifier(Modifier::BOLD),
            selected: Style::default().add_modifier(Modifier::REVERSED),
            critical: Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            high: Style::default().add_modifier(Modifier::BOLD),
            ok: Style::default(),
            warn: Style::default().add_modifier(Modifier::BOLD),
            error: Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            production_frame: Style::default().add_modifier(Modifier::BOLD),
        }
    }
}
