//! Limits on free text that agents and humans send in. Everything an agent writes is hostile:
//! it is bounded here on the way in and escaped again on the way to the terminal.

use super::Invalid;

/// Longest name (agent names, sponsor display names), in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest free text (justifications, contexts, metadata), in bytes.
pub const MAX_FREE_TEXT_BYTES: usize = 4096;
/// Longest short identifier-like text (model, runtime, ticket, Entra object id).
pub const MAX_SHORT_CHARS: usize = 128;

fn is_forbidden_in_name(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || is_invisible(c)
}

/// Characters that show as nothing, or break a line where none is seen: zero-width spaces and
/// joiners, the word joiner, the byte-order mark, and the line and paragraph separators. A name
/// or reason holding one can pass for another.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{2028}' | '\u{2029}' | '\u{00AD}'
    )
}

/// The form in which two spellings of one identity compare equal: surrounding space and
/// invisible characters dropped, lower case (`" Alice"` and `"alice"` are one person).
pub fn canonical_identity(s: &str) -> String {
    s.chars()
        .filter(|c| !is_invisible(*c) && !is_bidi_control(*c))
        .collect::<String>()
        .trim()
        .to_lowercase()
}

/// Unicode bidirectional controls, which can make text read differently from how it is stored.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A name: non-empty after trimming, at most 128 characters, no control or bidi characters.
pub fn name(field: &str, value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(Invalid::new(
            "invalid_name",
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(Invalid::new(
            "too_long",
            format!("{field} is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if value.chars().any(is_forbidden_in_name) {
        return Err(Invalid::new(
            "invalid_name",
            format!("{field} contains control, bidirectional-override or invisible characters"),
        ));
    }
    Ok(())
}

/// Short single-line metadata such as `model` or `runtime`: same rules as a name.
pub fn short(field: &str, value: &str) -> Result<(), Invalid> {
    if value.chars().count() > MAX_SHORT_CHARS {
        return Err(Invalid::new(
            "too_long",
            format!("{field} is longer than {MAX_SHORT_CHARS} characters"),
        ));
    }
    if value.chars().any(is_forbidden_in_name) {
        return Err(Invalid::new(
            "invalid_text",
            format!("{field} contains control, bidirectional-override or invisible characters"),
        ));
    }
    Ok(())
}

/// Free text (justifications, contexts): at most 4 KiB; newlines and tabs allowed, other
/// control characters are kept out because no reader needs them.
pub fn free_text(field: &str, value: &str) -> Result<(), Invalid> {
    if value.len() > MAX_FREE_TEXT_BYTES {
        return Err(Invalid::new(
            "too_long",
            format!("{field} is longer than {MAX_FREE_TEXT_BYTES} bytes"),
        ));
    }
    if value.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c) || is_invisible(c)
    }) {
        return Err(Invalid::new(
            "invalid_text",
            format!("{field} contains control, bidirectional-override or invisible characters"),
        ));
    }
    Ok(())
}

/// Longest preview of outside text put into an error message, in characters.
pub const MAX_PREVIEW_CHARS: usize = 300;

/// Outside text (another service's error message, an id that was refused) made safe to put
/// into an error message: control, bidi and invisible characters become `�`, and it is cut
/// at [`MAX_PREVIEW_CHARS`] with `…`.
pub fn sanitize_preview(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_PREVIEW_CHARS)
        .map(|c| {
            if c.is_control() || is_bidi_control(c) || is_invisible(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if s.chars().nth(MAX_PREVIEW_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_one_safe_bounded_line() {
        assert_eq!(
            sanitize_preview("a\u{1b}[31mb\nc\u{202E}"),
            "a\u{FFFD}[31mb\u{FFFD}c\u{FFFD}"
        );
        let long = sanitize_preview(&"x".repeat(400));
        assert_eq!(long.chars().count(), MAX_PREVIEW_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(sanitize_preview("fine"), "fine");
    }

    #[test]
    fn names() {
        assert!(name("name", "billing-reconciler").is_ok());
        assert!(name("name", "").is_err());
        assert!(name("name", "   ").is_err());
        assert!(name("name", "a\u{1b}[31m").is_err());
        assert!(name("name", "evil\u{202E}txt").is_err());
        assert!(name("name", &"x".repeat(128)).is_ok());
        assert_eq!(
            name("name", &"x".repeat(129)).map_err(|e| e.code),
            Err("too_long")
        );
    }

    #[test]
    fn free_text_allows_newlines_only() {
        assert!(free_text("justification", "line one\nline two\tok").is_ok());
        assert!(free_text("justification", "bell\u{7}").is_err());
        assert!(free_text("justification", &"y".repeat(4097)).is_err());
    }

    #[test]
    fn invisible_characters_are_refused_and_identities_compare_canonically() {
        for hidden in [
            "a\u{200B}b",
            "\u{FEFF}ab",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{2060}b",
        ] {
            assert!(name("name", hidden).is_err(), "{hidden:?}");
            assert!(short("model", hidden).is_err(), "{hidden:?}");
            assert!(free_text("reason", hidden).is_err(), "{hidden:?}");
        }
        assert!(free_text("reason", "two\nlines\tand a tab").is_ok());
        assert_eq!(canonical_identity(" Alice\u{200B} "), "alice");
        assert_eq!(canonical_identity("ALICE"), canonical_identity("alice"));
        assert_ne!(canonical_identity("alice2"), canonical_identity("alice"));
    }
}
