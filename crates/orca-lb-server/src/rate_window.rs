//! Sliding-window rates from monotonic counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

/// Counts completed calls, errors and busy worker time, and turns them into
/// rates over a sliding window.
///
/// The request path only adds to monotonic atomic totals. Once per sample
/// interval the sampler task calls [`advance`](RateWindow::advance), which
/// records the totals and moves the window's base to the oldest record still
/// inside the window; a rate is then `(total - base) / (now - base time)`, so
/// it is always fresh at its newer end.
#[derive(Debug)]
pub(crate) struct RateWindow {
    window: Duration,
    requests: AtomicU64,
    errors: AtomicU64,
    busy_ns: AtomicU64,
    base: RwLock<Totals>,
    history: parking_lot::Mutex<VecDeque<Totals>>,
}

/// Totals at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Totals {
    pub(crate) at: Instant,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) busy_ns: u64,
}

/// Rates over the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    /// Completed calls per second.
    pub(crate) rps: f64,
    /// Failed calls per second.
    pub(crate) eps: f64,
    /// Worker-slot busy seconds per second (divide by capacity for a fraction).
    pub(crate) busy: f64,
}

impl RateWindow {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        let base = Totals {
            at: now,
            requests: 0,
            errors: 0,
            busy_ns: 0,
        };
        Self {
            window,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            base: RwLock::new(base),
            history: parking_lot::Mutex::new(VecDeque::from([base])),
        }
    }

    /// Counts one finished call.
    pub(crate) fn record_call(&self, failed: bool) {
        self.requests.fetch_add(1, Relaxed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    /// Adds worker-slot busy time.
    pub(crate) fn record_busy(&self, busy: Duration) {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(ns, Relaxed);
    }

    fn totals(&self, at: Instant) -> Totals {
        Totals {
            at,
            requests: self.requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            busy_ns: self.busy_ns.load(Relaxed),
        }
    }

    /// Rates between the window's base and `now`.
    pub(crate) fn rates(&self, now: Instant) -> Rates {
        let base = *self.base.read();
        let cur = self.totals(now);
        let secs = now.saturating_duration_since(base.at).as_secs_f64();
        if secs <= 0.0 {
            return Rates::default();
        }
        Rates {
            rps: cur.requests.saturating_sub(base.requests) as f64 / secs,
            eps: cur.errors.saturating_sub(base.errors) as f64 / secs,
            busy: cur.busy_ns.saturating_sub(base.busy_ns) as f64 / 1e9 / secs,
        }
    }

    /// Records the totals at `now` and slides the window's base forward.
    pub(crate) fn advance(&self, now: Instant) {
        let mut history = self.history.lock();
        history.push_back(self.totals(now));
        // Keep the newest record at least `window` old as the base.
        while history.len() > 1 && now.saturating_duration_since(history[1].at) >= self.window {
            history.pop_front();
        }
        *self.base.write() = history[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_a_sliding_window() {
        let t0 = Instant::now();
        let w = RateWindow::new(Duration::from_secs(10), t0);
        for i in 0..100 {
            w.record_call(i % 10 == 0);
        }
        w.record_busy(Duration::from_secs(5));
        let r = w.rates(t0 + Duration::from_secs(10));
        assert_eq!(r.rps, 10.0);
        assert_eq!(r.eps, 1.0);
        assert_eq!(r.busy, 0.5);

        // One tick a second for 20 s with no traffic: the 100 calls leave the window.
        for s in 1..=20 {
            w.advance(t0 + Duration::from_secs(s));
        }
        let r = w.rates(t0 + Duration::from_secs(20));
        assert_eq!(r.rps, 0.0);

        // New calls count over the window (base is 10 s old).
        for _ in 0..50 {
            w.record_call(false);
        }
        let r = w.rates(t0 + Duration::from_secs(20));
        assert_eq!(r.rps, 5.0);
    }

    #[test]
    fn no_elapsed_time_gives_zero_rates() {
        let t0 = Instant::now();
        let w = RateWindow::new(Duration::from_secs(10), t0);
        w.record_call(true);
        assert_eq!(w.rates(t0), Rates::default());
    }
}
