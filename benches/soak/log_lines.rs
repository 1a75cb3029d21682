//! A `tracing` subscriber that counts the lines a process logs.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing_subscriber::filter::LevelFilter;

/// The first lines logged are also copied to stderr (unless asked not to),
/// so that a run shows what was logged; the rest are only counted.
pub(crate) const ECHOED_LINES: u64 = 20;

/// Lines written by the subscriber [`install`] set up.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogLines(Arc<AtomicU64>);

impl LogLines {
    /// Lines so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Sets the process's global subscriber: `tracing`'s default text format at
/// INFO and above, as an application would log, into a writer that counts
/// lines. The first `echo` lines are copied to stderr, `prefix` before each.
pub(crate) fn install(prefix: &'static str, echo: u64) -> Result<LogLines, String> {
    let lines = LogLines::default();
    let counter = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::INFO)
        .with_ansi(false)
        .with_writer(move || CountingWriter {
            lines: counter.clone(),
            prefix,
            echo,
        })
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| "a tracing subscriber was already set".to_string())?;
    Ok(lines)
}

/// Counts the newlines written through it.
struct CountingWriter {
    lines: LogLines,
    prefix: &'static str,
    echo: u64,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let before = self.lines.0.fetch_add(n, Relaxed);
        if before < self.echo {
            let mut err = io::stderr().lock();
            for line in buf.split_inclusive(|&b| b == b'\n') {
                let _ = err.write_all(self.prefix.as_bytes());
                let _ = err.write_all(line);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_newlines() {
        let lines = LogLines::default();
        let mut w = CountingWriter {
            lines: lines.clone(),
            prefix: "",
            echo: 0,
        };
        w.write_all(b"").unwrap();
        assert_eq!(lines.get(), 0);
        w.write_all(b"one\ntwo\n").unwrap();
        w.write_all(b"three\n").unwrap();
        assert_eq!(lines.get(), 3);
    }
}
