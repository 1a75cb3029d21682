//! Logging of malformed values: the first in full, then a count.
//!
//! A discovery pointed at a fleet that writes another format (or a prefix
//! shared with something else) finds every value malformed, and a relist of
//! a thousand keys would be a thousand warnings. The first malformed value a
//! discovery meets is logged at WARN with its key and the reason; later ones
//! at DEBUG, and counted: a WARN summary with the count and the first of
//! them as an example follows at most once per [`SUMMARY_INTERVAL`]. Keys
//! and reasons hold text from whoever wrote to etcd, so they are escaped and
//! cut ([`Escaped`]).

use std::time::Duration;

use orca_lb_core::escaped::Escaped;
use tokio::time::Instant;

/// How often later malformed values are summarised.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// A value skipped as malformed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MalformedValue {
    /// The key, as text (invalid UTF-8 replaced).
    pub(crate) key: String,
    /// The revision that wrote the value.
    pub(crate) revision: i64,
    /// Why it was refused.
    pub(crate) why: String,
}

/// One discovery's malformed-value log state.
#[derive(Debug, Default)]
pub(crate) struct MalformedLog {
    /// Whether the first malformed value was logged.
    logged_first: bool,
    /// Malformed values since the last WARN line.
    pending: u64,
    /// The first of them.
    example: Option<MalformedValue>,
    /// When the last WARN line was written.
    last_line: Option<Instant>,
}

impl MalformedLog {
    /// Takes in one malformed value: logs it in full if it is the first,
    /// else at DEBUG, counted for the next summary.
    pub(crate) fn skipped(&mut self, prefix: &str, value: &MalformedValue, now: Instant) {
        if !self.logged_first {
            self.logged_first = true;
            self.last_line = Some(now);
            tracing::warn!(
                prefix = %Escaped::message(prefix),
                key = %Escaped::message(&value.key),
                revision = value.revision,
                why = %Escaped::message(&value.why),
                "skipping a malformed endpoint value; later ones are counted and summarised every {SUMMARY_INTERVAL:?}"
            );
            return;
        }
        tracing::debug!(
            prefix = %Escaped::message(prefix),
            key = %Escaped::message(&value.key),
            revision = value.revision,
            why = %Escaped::message(&value.why),
            "skipping a malformed endpoint value"
        );
        self.pending += 1;
        if self.example.is_none() {
            self.example = Some(value.clone());
        }
    }

    /// When the next summary is due, if there is anything to summarise.
    pub(crate) fn summary_due(&self) -> Option<Instant> {
        (self.pending > 0).then(|| self.last_line.unwrap_or_else(Instant::now) + SUMMARY_INTERVAL)
    }

    /// Writes the summary if one is due at `now`.
    pub(crate) fn flush(&mut self, prefix: &str, now: Instant) {
        match self.summary_due() {
            Some(due) if due <= now => {}
            _ => return,
        }
        let count = std::mem::take(&mut self.pending);
        let example = self.example.take();
        let since = self.last_line.map_or(Duration::ZERO, |at| now - at);
        self.last_line = Some(now);
        let (key, why) = example
            .as_ref()
            .map_or(("", ""), |e| (e.key.as_str(), e.why.as_str()));
        tracing::warn!(
            prefix = %Escaped::message(prefix),
            count,
            seconds = since.as_secs(),
            example_key = %Escaped::message(key),
            example_why = %Escaped::message(why),
            "skipped malformed endpoint values"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(key: &str) -> MalformedValue {
        MalformedValue {
            key: key.to_string(),
            revision: 1,
            why: "bad".to_string(),
        }
    }

    #[test]
    fn the_first_is_logged_then_later_ones_are_summarised_once_due() {
        let start = Instant::now();
        let mut log = MalformedLog::default();
        log.skipped("/p/", &value("/p/a"), start);
        assert_eq!(log.summary_due(), None, "the first is logged at once");
        log.skipped("/p/", &value("/p/b"), start);
        log.skipped("/p/", &value("/p/c"), start);
        assert_eq!(log.summary_due(), Some(start + SUMMARY_INTERVAL));
        log.flush("/p/", start + SUMMARY_INTERVAL / 2);
        assert_eq!(log.pending, 2, "not due yet");
        assert_eq!(log.example.as_ref().map(|e| e.key.as_str()), Some("/p/b"));
        log.flush("/p/", start + SUMMARY_INTERVAL);
        assert_eq!((log.pending, log.example.is_none()), (0, true));
        assert_eq!(log.summary_due(), None);
        let later = start + SUMMARY_INTERVAL;
        log.skipped("/p/", &value("/p/d"), later);
        assert_eq!(log.summary_due(), Some(later + SUMMARY_INTERVAL));
    }
}
