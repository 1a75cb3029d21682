//! Sliding-window rates, as `orca-lb-server`'s `RateWindow` computes them.

use std::collections::VecDeque;

use crate::clock::Nanos;

/// Completed calls, failed calls and busy worker time, turned into rates
/// over a sliding window.
///
/// Mirrors `crates/orca-lb-server/src/rate_window.rs`: the totals only
/// grow; every sample interval (1 s) [`advance`](Self::advance) records
/// them and moves the base to the newest record at least one window old, so
/// a rate is `(total - base) / (now - base time)`: between one window and
/// one window plus one interval long, or since the start.
#[derive(Debug, Clone)]
pub(crate) struct RateWindow {
    window: Nanos,
    now: Totals,
    base: Totals,
    history: VecDeque<Totals>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Totals {
    at: Nanos,
    requests: u64,
    errors: u64,
    busy_ns: u64,
}

/// Rates over the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    /// Completed calls per second.
    pub(crate) rps: f64,
    /// Failed calls per second.
    pub(crate) eps: f64,
    /// Busy worker-seconds per second.
    pub(crate) busy: f64,
}

impl RateWindow {
    pub(crate) fn new(window: Nanos, start: Nanos) -> Self {
        let base = Totals {
            at: start,
            requests: 0,
            errors: 0,
            busy_ns: 0,
        };
        Self {
            window,
            now: base,
            base,
            history: VecDeque::from([base]),
        }
    }

    pub(crate) fn record_call(&mut self, failed: bool) {
        self.now.requests += 1;
        if failed {
            self.now.errors += 1;
        }
    }

    pub(crate) fn record_busy(&mut self, busy: Nanos) {
        self.now.busy_ns += busy;
    }

    pub(crate) fn rates(&self, now: Nanos) -> Rates {
        let secs = now.saturating_sub(self.base.at) as f64 / 1e9;
        if secs <= 0.0 {
            return Rates::default();
        }
        Rates {
            rps: (self.now.requests - self.base.requests) as f64 / secs,
            eps: (self.now.errors - self.base.errors) as f64 / secs,
            busy: (self.now.busy_ns - self.base.busy_ns) as f64 / 1e9 / secs,
        }
    }

    pub(crate) fn advance(&mut self, now: Nanos) {
        self.history.push_back(Totals {
            at: now,
            ..self.now
        });
        while self.history.len() > 1 && now.saturating_sub(self.history[1].at) >= self.window {
            self.history.pop_front();
        }
        self.base = self.history[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SECOND;

    #[test]
    fn same_numbers_as_the_server() {
        // The server's own test, in virtual time.
        let mut w = RateWindow::new(10 * SECOND, 0);
        for i in 0..100 {
            w.record_call(i % 10 == 0);
        }
        w.record_busy(5 * SECOND);
        let r = w.rates(10 * SECOND);
        assert_eq!((r.rps, r.eps, r.busy), (10.0, 1.0, 0.5));
        for s in 1..=20 {
            w.advance(s * SECOND);
        }
        assert_eq!(w.rates(20 * SECOND).rps, 0.0);
        for _ in 0..50 {
            w.record_call(false);
        }
        assert_eq!(w.rates(20 * SECOND).rps, 5.0);
    }
}
