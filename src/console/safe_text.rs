//! Everything an agent writes is hostile. Before any of it reaches the terminal, control
//! characters (C0, C1, DEL: the start of every ANSI/OSC sequence) and Unicode bidi controls are
//! replaced by visible escapes, so no agent can move the cursor, recolour the screen, set the
//! window title, write to the clipboard or make text read differently from how it is stored.

use crate::domain::text::is_bidi_control;

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

fn dangerous(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// One line: every control character, newlines included, becomes a visible escape.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if dangerous(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Several lines: newlines split lines; tabs become spaces; every other control is escaped.
pub fn lines(s: &str) -> Vec<String> {
    s.split('\n')
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            for c in line.chars() {
                match c {
                    '\t' => out.push_str("    "),
                    c if dangerous(c) => push_escaped(&mut out, c),
                    c => out.push(c),
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_ansi_osc_and_bidi() {
        assert_eq!(one_line("ok\u{1b}[31mred"), "ok\\e[31mred");
        assert_eq!(one_line("\u{1b}]0;title\u{7}"), "\\e]0;title\\x07");
        assert_eq!(one_line("a\u{9b}b"), "a\\x9bb");
        assert_eq!(one_line("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(one_line("two\nlines"), "two\\nlines");
        assert_eq!(
            lines("a\nb\u{1b}c"),
            vec!["a".to_owned(), "b\\ec".to_owned()]
        );
        assert_eq!(one_line("plain — ünïcode ✓"), "plain — ünïcode ✓");
    }
}
