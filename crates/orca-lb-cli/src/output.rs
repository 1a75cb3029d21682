//! Writing to standard output.

use std::io::{IsTerminal, Write};

use crate::error::CliError;

/// Moves the cursor home and clears the screen (ANSI).
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Writes `text` to standard output and flushes it.
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `text` as the next frame of a live view: over the previous one on
/// a terminal; after a blank line otherwise (piped to a file or a pager).
pub(crate) fn redraw(text: &str, first: bool) -> Result<(), CliError> {
    if std::io::stdout().is_terminal() {
        emit(&format!("{CLEAR}{text}"))
    } else if first {
        emit(text)
    } else {
        emit(&format!("\n{text}"))
    }
}
