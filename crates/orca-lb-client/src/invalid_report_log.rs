//! Logging of invalid load reports: the first per endpoint, then a count.
//!
//! A backend that sends garbage sends it on every call: a log line per call
//! would flood the log (thousands of lines a second) with text the backend
//! chose. The first invalid report of an endpoint is logged in full (its
//! names cut and escaped, see [`orca_lb_core::DisplayName`]); later ones are
//! only counted, and the maintenance pass logs the count at most once per
//! [`report_log_interval`](crate::BalancerConfig::report_log_interval),
//! with the first error of the period as an example.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use orca_lb_core::escaped::{MAX_MESSAGE_CHARS, bounded_string};
use parking_lot::Mutex;

/// One endpoint's invalid-report log state.
#[derive(Debug, Default)]
pub(crate) struct InvalidReportLog {
    /// Whether the first invalid report was logged.
    logged: AtomicBool,
    /// What the next summary says.
    period: Mutex<Period>,
}

/// The invalid reports since the last line. The count and its example are
/// kept under one lock, so a summary never goes out with a count and no
/// example, nor leaves an example behind for a later period. The lock is
/// per endpoint and taken only for invalid reports, never for a valid one.
#[derive(Debug, Default)]
struct Period {
    pending: u64,
    example: Option<String>,
    last_line: Option<Instant>,
}

impl InvalidReportLog {
    /// Takes in one invalid report: logs it if it is the endpoint's first,
    /// else counts it for the next summary.
    ///
    /// `logged` is `Relaxed`: the swap makes exactly one caller log the
    /// first report, and it guards no other memory.
    pub(crate) fn on_invalid(&self, target: &str, endpoint: &str, error: &dyn fmt::Display) {
        if !self.logged.swap(true, Relaxed) {
            tracing::warn!(
                target_name = %target,
                endpoint = %endpoint,
                error = %bounded_string(error, MAX_MESSAGE_CHARS),
                "ignored an invalid load report; further ones are counted and summarised"
            );
            return;
        }
        let mut period = self.period.lock();
        period.pending += 1;
        if period.example.is_none() {
            period.example = Some(bounded_string(error, MAX_MESSAGE_CHARS));
        }
    }

    /// Logs how many invalid reports arrived since the last line, if any did
    /// and `interval` has passed since that line.
    pub(crate) fn summarise(&self, target: &str, endpoint: &str, interval: Duration, now: Instant) {
        let mut period = self.period.lock();
        if period.pending == 0 {
            return;
        }
        let since = *period.last_line.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed < interval {
            return;
        }
        let count = std::mem::take(&mut period.pending);
        let example = period.example.take().unwrap_or_default();
        period.last_line = Some(now);
        drop(period);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_summary_has_its_count_and_an_example() {
        let log = InvalidReportLog::default();
        let t0 = Instant::now();
        let interval = Duration::from_secs(60);
        log.on_invalid("svc", "a", &"first, logged in full");
        for i in 0..5 {
            log.on_invalid("svc", "a", &format!("error {i}"));
        }
        {
            let p = log.period.lock();
            assert_eq!(p.pending, 5);
            assert_eq!(p.example.as_deref(), Some("error 0"));
        }
        // The first summary starts the period; a minute later it is written.
        log.summarise("svc", "a", interval, t0);
        log.summarise("svc", "a", interval, t0 + interval);
        {
            let p = log.period.lock();
            assert_eq!(p.pending, 0);
            assert_eq!(p.example, None, "no example left behind");
        }
        log.on_invalid("svc", "a", &"error in the next period");
        let p = log.period.lock();
        assert_eq!(
            (p.pending, p.example.as_deref()),
            (1, Some("error in the next period"))
        );
    }

    #[test]
    fn examples_are_cut_and_escaped() {
        let log = InvalidReportLog::default();
        log.on_invalid("svc", "a", &"first");
        let long = format!("a\u{1b}[2J\n{}", "x".repeat(10_000));
        log.on_invalid("svc", "a", &long);
        let p = log.period.lock();
        let text = p.example.as_deref().unwrap();
        assert!(text.chars().count() <= MAX_MESSAGE_CHARS * 10 + 3, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        assert!(text.ends_with("..."));
    }
}
