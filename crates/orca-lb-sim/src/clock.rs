//! Virtual time: nanoseconds since the start of a run, and the
//! [`Instant`]s the core is called with.

use std::time::{Duration, Instant};

/// Virtual time or a span of it, in nanoseconds since the start of a run.
pub type Nanos = u64;

/// Nanoseconds in one second.
pub const SECOND: Nanos = 1_000_000_000;

/// Nanoseconds in one millisecond.
pub const MILLISECOND: Nanos = 1_000_000;

/// Turns virtual time into the [`Instant`]s the core takes as `now`.
///
/// The core compares instants and never reads the clock, so any origin
/// does: one real instant taken when the run starts, plus the virtual time.
/// Results depend only on differences, so the origin never shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose virtual time 0 is now.
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// The instant at virtual time `t`.
    pub(crate) fn at(&self, t: Nanos) -> Instant {
        self.base + Duration::from_nanos(t)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds (as written in scenario files) to virtual nanoseconds.
pub(crate) fn secs(s: f64) -> Nanos {
    (s * 1e9).round().max(0.0) as Nanos
}

/// Milliseconds to virtual nanoseconds.
pub(crate) fn millis(ms: f64) -> Nanos {
    (ms * 1e6).round().max(0.0) as Nanos
}

/// Virtual nanoseconds to seconds.
pub(crate) fn to_secs(t: Nanos) -> f64 {
    t as f64 / 1e9
}

/// Virtual nanoseconds to milliseconds.
pub(crate) fn to_millis(t: Nanos) -> f64 {
    t as f64 / 1e6
}
