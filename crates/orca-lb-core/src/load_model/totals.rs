//! Monotonic counts of what a backend's calls did.

use std::time::Duration;

/// Completed calls, failed calls and busy worker time since the start.
///
/// The counts only grow, and wrap around at `u64::MAX` as atomic adds do;
/// [`RateWindow`](super::RateWindow) takes differences modulo 2^64, so one
/// wrap inside a window still gives the right rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls that finished, failed ones included.
    pub requests: u64,
    /// Calls that finished with an error.
    pub errors: u64,
    /// Worker-slot busy time, in nanoseconds, summed over slots.
    pub busy_ns: u64,
}

impl Totals {
    /// Counts one finished call.
    pub fn record_call(&mut self, failed: bool) {
        self.requests = self.requests.wrapping_add(1);
        if failed {
            self.errors = self.errors.wrapping_add(1);
        }
    }

    /// Adds worker-slot busy time.
    pub fn record_busy(&mut self, busy: Duration) {
        self.busy_ns = self.busy_ns.wrapping_add(Self::to_busy_ns(busy));
    }

    /// `busy` as [`busy_ns`](Self::busy_ns) counts it: in nanoseconds,
    /// saturating at `u64::MAX` (584 years). For counters kept elsewhere,
    /// such as atomics.
    pub fn to_busy_ns(busy: Duration) -> u64 {
        u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_errors_and_busy_time() {
        let mut t = Totals::default();
        t.record_call(false);
        t.record_call(true);
        t.record_busy(Duration::from_millis(3));
        assert_eq!(
            t,
            Totals {
                requests: 2,
                errors: 1,
                busy_ns: 3_000_000
            }
        );
    }

    #[test]
    fn wraps_instead_of_overflowing() {
        let mut t = Totals {
            requests: u64::MAX,
            errors: u64::MAX,
            busy_ns: u64::MAX - 1,
        };
        t.record_call(true);
        t.record_busy(Duration::from_nanos(3));
        assert_eq!(
            t,
            Totals {
                requests: 0,
                errors: 0,
                busy_ns: 1
            }
        );
    }

    #[test]
    fn huge_busy_time_saturates() {
        assert_eq!(Totals::to_busy_ns(Duration::MAX), u64::MAX);
        assert_eq!(Totals::to_busy_ns(Duration::from_secs(1)), 1_000_000_000);
    }
}
