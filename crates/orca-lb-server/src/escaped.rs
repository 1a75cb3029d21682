//! Names as they appear in logs: short and printable.

use std::fmt;

/// How many characters of a name a log line shows.
pub(crate) const LOGGED_NAME_CHARS: usize = 64;

/// Displays a metric name for a log line: at most [`LOGGED_NAME_CHARS`]
/// characters, control and other non-printable characters escaped, and the
/// full length said when it was cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(LOGGED_NAME_CHARS) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_names_and_escapes_control_characters() {
        assert_eq!(Escaped("db_reads").to_string(), "db_reads");
        assert_eq!(
            Escaped("a\u{1b}[2Jb\n").to_string(),
            "a\\u{1b}[2Jb\\n",
            "no terminal escape survives"
        );
        let long = "x".repeat(10_000);
        let shown = Escaped(&long).to_string();
        assert_eq!(shown, format!("{}... (10000 bytes)", "x".repeat(64)));
    }
}
