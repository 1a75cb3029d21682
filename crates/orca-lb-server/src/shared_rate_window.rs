//! The core's rate window, over the totals the call counters keep.

use std::time::{Duration, Instant};

use orca_lb_core::load_model::{RateWindow, Rates, Totals};
use parking_lot::Mutex;

use crate::window_base::WindowBase;

/// Turns the totals of finished calls, errors and busy slot time into rates
/// with `orca_lb_core`'s [`RateWindow`].
///
/// Once per sample interval the sampler task calls
/// [`advance`](Self::advance), which records the totals in the window and
/// publishes its base; reports call [`rates`](Self::rates), which reads the
/// published base without a lock and then the totals. Totals read after the
/// base are never older than it: `advance` reads them before it publishes,
/// and `rates` after it reads what was published (release and acquire on the
/// base's sequence), so each of the counters they sum reads at least what
/// `advance` read.
#[derive(Debug)]
pub(crate) struct SharedRateWindow {
    span: Duration,
    window: Mutex<RateWindow>,
    base: WindowBase,
}

impl SharedRateWindow {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        Self {
            span: window,
            window: Mutex::new(RateWindow::new(window, now)),
            base: WindowBase::new(now),
        }
    }

    /// Rates between the window's base and `now`, when the totals (read
    /// after the base) are `totals()`.
    pub(crate) fn rates(&self, now: Instant, totals: impl FnOnce() -> Totals) -> Rates {
        let (base_at, base) = self.base.read();
        RateWindow::rates_since(self.span, base_at, base, totals(), now)
    }

    /// Records the totals at `now` and slides the window's base forward.
    pub(crate) fn advance(&self, now: Instant, totals: impl FnOnce() -> Totals) {
        let mut window = self.window.lock();
        window.advance(totals(), now);
        self.base.publish(window.base_at(), window.base_totals());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(requests: u64, errors: u64, busy: Duration) -> Totals {
        Totals {
            requests,
            errors,
            busy_ns: Totals::to_busy_ns(busy),
        }
    }

    #[test]
    fn rates_over_the_published_base() {
        let t0 = Instant::now();
        let w = SharedRateWindow::new(Duration::from_secs(10), t0);
        let hundred = calls(100, 10, Duration::from_secs(5));
        let r = w.rates(t0 + Duration::from_secs(10), || hundred);
        assert_eq!((r.rps, r.eps, r.busy), (10.0, 1.0, 0.5));

        // One tick a second for 20 s with no traffic: the 100 calls leave the window.
        for s in 1..=20 {
            w.advance(t0 + Duration::from_secs(s), || hundred);
        }
        assert_eq!(w.rates(t0 + Duration::from_secs(20), || hundred).rps, 0.0);

        // New calls count over the window (base is 10 s old).
        let more = calls(150, 10, Duration::from_secs(5));
        assert_eq!(w.rates(t0 + Duration::from_secs(20), || more).rps, 5.0);
    }

    #[test]
    fn no_elapsed_time_gives_zero_rates() {
        let t0 = Instant::now();
        let w = SharedRateWindow::new(Duration::from_secs(10), t0);
        let one = calls(1, 1, Duration::ZERO);
        assert_eq!(w.rates(t0, || one), Rates::default());
    }
}
