//! Logging refused metrics without a line per refusal.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::RecordError;
use orca_lb_core::escaped::{Escaped, MAX_NAME_CHARS};

/// How often repeated refusals of one kind are summarised.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Where a refused metric came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Set server-wide through the `LoadRecorder`.
    LoadRecorder,
    /// Recorded for one call through its `CallRecorder`.
    CallRecorder,
    /// Recorded earlier, and left out of a report that was full when sent.
    Report,
    /// A reading of the [`SystemSampler`](crate::SystemSampler) (CPU or
    /// memory) out of range; the last good reading is kept.
    SystemSampler,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::LoadRecorder => "load_recorder",
            Source::CallRecorder => "call_recorder",
            Source::Report => "report",
            Source::SystemSampler => "system_sampler",
        }
    }
}

/// Logs the first refusal of each kind (source and reason) at once, and
/// after that one summary line per kind and [`SUMMARY_INTERVAL`] with the
/// count and the last name, when there were more. Names are cut and escaped.
///
/// Taken only on refusals; a handful of kinds, so a short list.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    kinds: Mutex<Vec<Kind>>,
}

#[derive(Debug)]
struct Kind {
    source: Source,
    reason: &'static str,
    /// Refusals since the last line.
    pending: u64,
    /// The start of the last name refused, and its full length in bytes.
    last_name: Box<str>,
    last_len: usize,
    last_line: Instant,
}

impl RefusalLog {
    /// Logs a refusal if it is the first of its kind, or a summary if one
    /// is due.
    pub(crate) fn refused(&self, source: Source, name: &str, error: &RecordError, now: Instant) {
        let reason = error.reason();
        let mut kinds = self.kinds.lock();
        match kinds
            .iter_mut()
            .find(|k| k.source == source && k.reason == reason)
        {
            None => {
                tracing::error!(
                    source = source.as_str(),
                    metric = %Escaped::name(name),
                    error = %Escaped::message(&error.to_string()),
                    "refused a load metric; more of this kind are summarised every {SUMMARY_INTERVAL:?}"
                );
                kinds.push(Kind {
                    source,
                    reason,
                    pending: 0,
                    last_name: kept(name).into(),
                    last_len: name.len(),
                    last_line: now,
                });
            }
            Some(kind) => {
                kind.pending += 1;
                if *kind.last_name != *kept(name) {
                    kind.last_name = kept(name).into();
                }
                kind.last_len = name.len();
                kind.summarise_if_due(now);
            }
        }
    }

    /// Writes the summaries that are due; called periodically so the last
    /// count goes out even when refusals stop.
    pub(crate) fn flush(&self, now: Instant) {
        for kind in self.kinds.lock().iter_mut() {
            kind.summarise_if_due(now);
        }
    }
}

/// The part of a name worth keeping for a later summary line, which shows
/// [`MAX_NAME_CHARS`] characters.
fn kept(name: &str) -> &str {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}

impl Kind {
    fn summarise_if_due(&mut self, now: Instant) {
        if self.pending == 0 || now.saturating_duration_since(self.last_line) < SUMMARY_INTERVAL {
            return;
        }
        tracing::error!(
            source = self.source.as_str(),
            reason = self.reason,
            count = self.pending,
            since = ?now.saturating_duration_since(self.last_line),
            last_metric = %Escaped::name(&self.last_name),
            last_metric_bytes = self.last_len,
            "refused more load metrics"
        );
        self.pending = 0;
        self.last_line = now;
    }
}
