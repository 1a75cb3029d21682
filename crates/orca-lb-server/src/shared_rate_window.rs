//! The core's rate window, fed from atomic counters the request path adds to.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use orca_lb_core::load_model::{RateWindow, Rates, Totals};
use parking_lot::RwLock;

/// Counts completed calls, errors and busy worker time in atomics, and turns
/// them into rates with `orca_lb_core`'s [`RateWindow`].
///
/// The request path only adds to the atomic totals. Once per sample interval
/// the sampler task calls [`advance`](Self::advance), which records the
/// totals in the window; reports read [`rates`](Self::rates). Both take the
/// window's lock, never the request path.
#[derive(Debug)]
pub(crate) struct SharedRateWindow {
    // The three counters are independent statistics: `Relaxed` suffices for
    // every add and load. A report may count a call before its busy time;
    // the next one catches up. What must not happen, totals older than the
    // window's base, cannot: `rates` and `advance` load them while holding
    // the window's lock, which orders each load after those of the last
    // `advance`.
    requests: AtomicU64,
    errors: AtomicU64,
    busy_ns: AtomicU64,
    window: RwLock<RateWindow>,
}

impl SharedRateWindow {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            window: RwLock::new(RateWindow::new(window, now)),
        }
    }

    /// Counts one finished call.
    pub(crate) fn record_call(&self, failed: bool) {
        // Relaxed: an independent counter (see the struct).
        self.requests.fetch_add(1, Relaxed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    /// Adds worker-slot busy time.
    pub(crate) fn record_busy(&self, busy: Duration) {
        // Relaxed: an independent counter (see the struct).
        self.busy_ns.fetch_add(Totals::to_busy_ns(busy), Relaxed);
    }

    /// The totals now. Call with the window's lock held (see the struct).
    fn totals(&self) -> Totals {
        // Relaxed: the window's lock orders these loads (see the struct).
        Totals {
            requests: self.requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            busy_ns: self.busy_ns.load(Relaxed),
        }
    }

    /// Rates between the window's base and `now`.
    pub(crate) fn rates(&self, now: Instant) -> Rates {
        let window = self.window.read();
        window.rates(self.totals(), now)
    }

    /// Records the totals at `now` and slides the window's base forward.
    pub(crate) fn advance(&self, now: Instant) {
        let mut window = self.window.write();
        let totals = self.totals();
        window.advance(totals, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_request_path_reach_the_window() {
        let t0 = Instant::now();
        let w = SharedRateWindow::new(Duration::from_secs(10), t0);
        for i in 0..100 {
            w.record_call(i % 10 == 0);
        }
        w.record_busy(Duration::from_secs(5));
        let r = w.rates(t0 + Duration::from_secs(10));
        assert_eq!((r.rps, r.eps, r.busy), (10.0, 1.0, 0.5));

        // One tick a second for 20 s with no traffic: the 100 calls leave the window.
        for s in 1..=20 {
            w.advance(t0 + Duration::from_secs(s));
        }
        assert_eq!(w.rates(t0 + Duration::from_secs(20)).rps, 0.0);

        // New calls count over the window (base is 10 s old).
        for _ in 0..50 {
            w.record_call(false);
        }
        assert_eq!(w.rates(t0 + Duration::from_secs(20)).rps, 5.0);
    }

    #[test]
    fn no_elapsed_time_gives_zero_rates() {
        let t0 = Instant::now();
        let w = SharedRateWindow::new(Duration::from_secs(10), t0);
        w.record_call(true);
        assert_eq!(w.rates(t0), Rates::default());
    }
}
