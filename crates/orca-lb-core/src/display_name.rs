//! Names chosen by another party, made safe to print.

use std::fmt;

/// The most characters of a name that are printed; the rest is replaced by
/// how many bytes were left out.
pub const MAX_NAME_CHARS: usize = 64;

/// A name that came from a backend or a client (a metric name in a report),
/// displayed quoted, with control and other non-printable characters escaped
/// (so it cannot forge log lines or drive a terminal) and cut after
/// [`MAX_NAME_CHARS`] characters (so it cannot flood a log line).
///
/// ```
/// use orca_lb_core::DisplayName;
/// assert_eq!(DisplayName("gpu").to_string(), r#""gpu""#);
/// assert_eq!(DisplayName("a\u{1b}[2J").to_string(), r#""a\u{1b}[2J""#);
/// let long = "x".repeat(100);
/// assert_eq!(
///     DisplayName(&long).to_string(),
///     format!("\"{}\"...(36 more bytes)", "x".repeat(64))
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DisplayName<'a>(pub &'a str);

impl fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, rest) = match self.0.char_indices().nth(MAX_NAME_CHARS) {
            Some((at, _)) => self.0.split_at(at),
            None => (self.0, ""),
        };
        write!(f, "{shown:?}")?;
        if !rest.is_empty() {
            write!(f, "...({} more bytes)", rest.len())?;
        }
        Ok(())
    }
}
