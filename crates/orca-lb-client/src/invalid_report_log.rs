//! Logging of invalid load reports: the first per endpoint, then a count.
//!
//! A backend that sends garbage sends it on every call: a log line per call
//! would flood the log (thousands of lines a second) with text the backend
//! chose. The first invalid report of an endpoint is logged in full (its
//! names cut and escaped, see [`orca_lb_core::DisplayName`]); later ones are
//! only counted, and the maintenance pass logs the count at most once per
//! [`report_log_interval`](crate::BalancerConfig::report_log_interval),
//! with the first error of the period as an example.

use std::fmt::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The most characters of an error message that are logged.
const MAX_MESSAGE_CHARS: usize = 256;

/// One endpoint's invalid-report log state.
#[derive(Debug, Default)]
pub(crate) struct InvalidReportLog {
    /// Whether the first invalid report was logged.
    logged: AtomicBool,
    /// Invalid reports since the last line.
    pending: AtomicU64,
    /// The first error since the last line, and when that line was written.
    period: Mutex<Period>,
}

#[derive(Debug, Default)]
struct Period {
    example: Option<String>,
    last_line: Option<Instant>,
}

impl InvalidReportLog {
    /// Takes in one invalid report: logs it if it is the endpoint's first,
    /// else counts it for the next summary.
    ///
    /// `logged` and `pending` are `Relaxed`: the swap makes exactly one
    /// caller log the first report, and `pending` is a counter whose
    /// read-modify-writes stay exact; the example that goes with it is
    /// behind the `period` lock, which orders it.
    pub(crate) fn on_invalid(&self, target: &str, endpoint: &str, error: &dyn fmt::Display) {
        if !self.logged.swap(true, Relaxed) {
            tracing::warn!(
                target_name = %target,
                endpoint = %endpoint,
                error = %bounded(error),
                "ignored an invalid load report; further ones are counted and summarised"
            );
            return;
        }
        if self.pending.fetch_add(1, Relaxed) == 0 {
            let mut period = self.period.lock();
            if period.example.is_none() {
                period.example = Some(bounded(error));
            }
        }
    }

    /// Logs how many invalid reports arrived since the last line, if any did
    /// and `interval` has passed since that line.
    pub(crate) fn summarise(&self, target: &str, endpoint: &str, interval: Duration, now: Instant) {
        if self.pending.load(Relaxed) == 0 {
            return;
        }
        let mut period = self.period.lock();
        let since = *period.last_line.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed < interval {
            return;
        }
        let count = self.pending.swap(0, Relaxed);
        let example = period.example.take().unwrap_or_default();
        period.last_line = Some(now);
        tracing::warn!(
            target_name = %target,
            endpoint = %endpoint,
            count,
            seconds = elapsed.as_secs(),
            example = %example,
            "ignored invalid load reports"
        );
    }
}

/// `error` as text of at most [`MAX_MESSAGE_CHARS`] characters, control
/// characters escaped.
fn bounded(error: &dyn fmt::Display) -> String {
    let mut out = String::new();
    let mut w = Bounded {
        out: &mut out,
        left: MAX_MESSAGE_CHARS,
        cut: false,
    };
    let _ = write!(w, "{error}");
    let cut = w.cut;
    if cut {
        out.push_str("...");
    }
    out
}

/// A writer that escapes control characters and stops after `left` chars.
struct Bounded<'a> {
    out: &'a mut String,
    left: usize,
    cut: bool,
}

impl Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.left == 0 {
                self.cut = true;
                // Stops formatting the rest.
                return Err(fmt::Error);
            }
            self.left -= 1;
            if c.is_control() {
                let _ = write!(self.out, "{}", c.escape_default());
            } else {
                self.out.push(c);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_and_escaped() {
        let long = format!("a\u{1b}[2J\n{}", "x".repeat(10_000));
        let text = bounded(&long);
        assert!(text.chars().count() <= MAX_MESSAGE_CHARS * 6 + 3, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        assert!(text.ends_with("..."));
        assert_eq!(bounded(&"short"), "short");
    }
}
