//! Text chosen by another party, made safe to print.
//!
//! Metric names in reports, error messages and endpoint names come from
//! backends and clients that orca-lb does not control. Printed raw into a log
//! line or onto a terminal, `\x1b[2J` clears the screen, `\n` forges a log
//! line and `U+202E` reverses what follows; printed whole, a 16 KiB name
//! floods the log. Everything orca-lb prints from another party goes through
//! the one rule here.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// The most characters of a name that a log line shows.
pub const MAX_NAME_CHARS: usize = 64;

/// The most characters of an error message (which may hold a name) that a
/// log line shows.
pub const MAX_MESSAGE_CHARS: usize = 256;

/// Whether `c` is shown as an escape: control characters (ESC, BEL, CR, LF,
/// DEL, the C1 range ...), the Unicode bidirectional marks, overrides and
/// isolates that reorder what follows, and the backslash itself, so that an
/// escape cannot be forged.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character that [`needs_escape`] shown as `\u{..}`, whole.
/// Borrows when there is nothing to escape. For displays that show a value in
/// full (a table of endpoints); log lines cut with [`Escaped`].
///
/// ```
/// use orca_lb_core::escaped::escape;
///
/// assert_eq!(escape("10.0.0.1:50051"), "10.0.0.1:50051");
/// assert_eq!(escape("t\x1b]0;pwn\x07"), r"t\u{1b}]0;pwn\u{7}");
/// ```
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        let _ = write_char(&mut out, c, false);
    }
    Cow::Owned(out)
}

fn write_char(out: &mut impl fmt::Write, c: char, quoted: bool) -> fmt::Result {
    if needs_escape(c) || (quoted && c == '"') {
        write!(out, "\\u{{{:x}}}", c as u32)
    } else {
        out.write_char(c)
    }
}

/// Displays text for a log line: escaped as [`escape`] does, and cut after
/// so many characters, with how many bytes were left out.
///
/// ```
/// use orca_lb_core::escaped::Escaped;
///
/// assert_eq!(Escaped::name("db_reads").to_string(), "db_reads");
/// assert_eq!(Escaped::name("a\u{1b}[2J\n").to_string(), r"a\u{1b}[2J\u{a}");
/// let long = "x".repeat(100);
/// assert_eq!(
///     Escaped::name(&long).to_string(),
///     format!("{}...(36 more bytes)", "x".repeat(64)),
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a> {
    text: &'a str,
    max_chars: usize,
    quoted: bool,
}

impl<'a> Escaped<'a> {
    /// At most `max_chars` characters of `text`.
    pub fn new(text: &'a str, max_chars: usize) -> Self {
        Self {
            text,
            max_chars,
            quoted: false,
        }
    }

    /// A name: [`MAX_NAME_CHARS`] at most.
    pub fn name(text: &'a str) -> Self {
        Self::new(text, MAX_NAME_CHARS)
    }

    /// An error message: [`MAX_MESSAGE_CHARS`] at most.
    pub fn message(text: &'a str) -> Self {
        Self::new(text, MAX_MESSAGE_CHARS)
    }

    /// In double quotes, a quote inside escaped too, so that where the text
    /// ends is never in doubt.
    pub fn quoted(self) -> Self {
        Self {
            quoted: true,
            ..self
        }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, rest) = match self.text.char_indices().nth(self.max_chars) {
            Some((at, _)) => self.text.split_at(at),
            None => (self.text, ""),
        };
        if self.quoted {
            f.write_char('"')?;
        }
        for c in shown.chars() {
            write_char(f, c, self.quoted)?;
        }
        if self.quoted {
            f.write_char('"')?;
        }
        if !rest.is_empty() {
            write!(f, "...({} more bytes)", rest.len())?;
        }
        Ok(())
    }
}

/// `value` formatted, escaped as [`escape`] does and cut after `max_chars`
/// characters, with `...` marking a cut. Formatting stops at the cut, so a
/// value that would print megabytes costs no more than its first characters.
/// For values that are not yet text (an error from another party).
///
/// ```
/// use orca_lb_core::escaped::bounded_string;
///
/// let error = format!("bad\n{}", "x".repeat(1_000));
/// assert_eq!(bounded_string(&error, 5), r"bad\u{a}x...");
/// assert_eq!(bounded_string(&"ok", 5), "ok");
/// ```
pub fn bounded_string(value: &dyn fmt::Display, max_chars: usize) -> String {
    struct Cut<'a> {
        out: &'a mut String,
        left: usize,
        cut: bool,
    }
    impl fmt::Write for Cut<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if self.left == 0 {
                    self.cut = true;
                    // Stops formatting the rest.
                    return Err(fmt::Error);
                }
                self.left -= 1;
                write_char(self.out, c, false)?;
            }
            Ok(())
        }
    }
    let mut out = String::new();
    let mut w = Cut {
        out: &mut out,
        left: max_chars,
        cut: false,
    };
    let _ = write!(w, "{value}");
    if w.cut {
        out.push_str("...");
    }
    out
}

/// A name from a backend or a client (a metric name in a report), displayed
/// as [`Escaped::name`] does, in quotes.
///
/// ```
/// use orca_lb_core::DisplayName;
///
/// assert_eq!(DisplayName("gpu").to_string(), r#""gpu""#);
/// assert_eq!(DisplayName("a\u{1b}[2J").to_string(), r#""a\u{1b}[2J""#);
/// assert_eq!(DisplayName(r#"a" b="c"#).to_string(), r#""a\u{22} b=\u{22}c""#);
/// let long = "x".repeat(100);
/// assert_eq!(
///     DisplayName(&long).to_string(),
///     format!("\"{}\"...(36 more bytes)", "x".repeat(64)),
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DisplayName<'a>(pub &'a str);

impl fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped::name(self.0).quoted().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_reordering_characters_are_shown_escaped() {
        assert!(matches!(escape("10.0.0.1:50051"), Cow::Borrowed(_)));
        assert_eq!(escape("zoné-α"), "zoné-α");
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\ny\r\u{9b}"), "x\\u{a}y\\u{d}\\u{9b}");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("a\\u{1b}"), "a\\u{5c}u{1b}", "no forged escape");
    }

    #[test]
    fn cuts_by_characters_and_counts_the_bytes_left_out() {
        let long = "é".repeat(300);
        assert_eq!(
            Escaped::message(&long).to_string(),
            format!("{}...(88 more bytes)", "é".repeat(256))
        );
        assert_eq!(Escaped::new("abc", 3).to_string(), "abc");
        assert_eq!(Escaped::new("abcd", 3).to_string(), "abc...(1 more bytes)");
        assert_eq!(Escaped::new("", 3).quoted().to_string(), r#""""#);
    }

    #[test]
    fn a_cut_escaped_name_stays_bounded() {
        // Every character escaped: 64 escapes of at most 10 bytes each.
        let hostile = "\u{1b}".repeat(100_000);
        let shown = Escaped::name(&hostile).to_string();
        assert!(shown.len() <= 64 * 10 + 32, "{} bytes", shown.len());
        assert!(!shown.contains('\u{1b}'));
    }
}
