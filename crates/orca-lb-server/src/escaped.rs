//! Names as they appear in logs: short and printable.

use std::fmt;

/// How many characters of a name a log line shows.
pub(crate) const LOGGED_NAME_CHARS: usize = 64;

/// How many characters of an error message (which may hold a name) a log
/// line shows.
pub(crate) const LOGGED_MESSAGE_CHARS: usize = 256;

/// Displays text for a log line: at most so many characters, control and
/// other non-printable characters escaped, and the full length said when it
/// was cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a> {
    text: &'a str,
    max_chars: usize,
}

impl<'a> Escaped<'a> {
    /// A metric name: [`LOGGED_NAME_CHARS`] at most.
    pub(crate) fn name(text: &'a str) -> Self {
        Self {
            text,
            max_chars: LOGGED_NAME_CHARS,
        }
    }

    /// An error message: [`LOGGED_MESSAGE_CHARS`] at most.
    pub(crate) fn message(text: &'a str) -> Self {
        Self {
            text,
            max_chars: LOGGED_MESSAGE_CHARS,
        }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.text.chars();
        for c in chars.by_ref().take(self.max_chars) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            write!(f, "... ({} bytes)", self.text.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_names_and_escapes_control_characters() {
        assert_eq!(Escaped::name("db_reads").to_string(), "db_reads");
        assert_eq!(
            Escaped::name("a\u{1b}[2Jb\n").to_string(),
            "a\\u{1b}[2Jb\\n",
            "no terminal escape survives"
        );
        let long = "x".repeat(10_000);
        let shown = Escaped::name(&long).to_string();
        assert_eq!(shown, format!("{}... (10000 bytes)", "x".repeat(64)));
        let shown = Escaped::message(&long).to_string();
        assert_eq!(shown, format!("{}... (10000 bytes)", "x".repeat(256)));
    }
}
