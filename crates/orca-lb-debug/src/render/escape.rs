//! Text from a server, made safe to print on a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every character a terminal would act on shown as an escape:
/// control characters (ESC, BEL, CR, LF, DEL, the C1 range ...) and the
/// Unicode bidirectional overrides and isolates that reorder what follows,
/// as `\u{1b}`; a backslash is doubled so an escape cannot be forged. Borrows
/// when there is nothing to escape.
///
/// Names, keys and addresses in the table and report views come from the
/// servers and balancers being inspected; printed raw, a name holding
/// `\x1b]0;...\x07` or `\x1b[2J` would retitle or clear the terminal.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_reordering_characters_are_shown_escaped() {
        assert!(matches!(escape("10.0.0.1:50051"), Cow::Borrowed(_)));
        assert_eq!(escape("zoné-α"), "zoné-α");
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("t\x1b]0;pwn\x07"), "t\\u{1b}]0;pwn\\u{7}");
        assert_eq!(escape("x\ny\r\u{9b}"), "x\\u{a}y\\u{d}\\u{9b}");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("a\\u{1b}"), "a\\u{5c}u{1b}", "no forged escape");
    }
}
