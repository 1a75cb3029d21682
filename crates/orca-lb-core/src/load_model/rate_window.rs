//! Sliding-window rates from monotonic totals.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Totals;

/// The least span request and error rates are counted over.
pub const MIN_RATE_SPAN: Duration = Duration::from_secs(1);

/// Turns [`Totals`] into rates over a sliding window.
///
/// Once per sample interval the driver calls [`advance`](Self::advance) with
/// the totals at that instant. The window keeps those records and takes as
/// its base the newest one at least `window` old (the first record, the
/// start with zero totals, until one is). A rate is then
/// `(totals now - base totals) / (now - base time)`: measured over between
/// one window and one window plus one interval, or since the start, and
/// always fresh at its newer end, since the current totals are passed to
/// [`rates`](Self::rates) directly.
///
/// Differences are taken modulo 2^64, so a counter that wraps once inside
/// the window still gives the right rate.
///
/// Request and error rates are counted over at least [`MIN_RATE_SPAN`] (or
/// the window, if shorter): right after the start, one call 6 ms in would
/// otherwise read as 166 calls per second. The busy fraction keeps the true
/// span, since it cannot pass the number of slots however short the span.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use orca_lb_core::load_model::{RateWindow, Totals};
///
/// let t0 = Instant::now();
/// let mut window = RateWindow::new(Duration::from_secs(10), t0);
/// let mut totals = Totals::default();
/// for _ in 0..20 {
///     totals.record_call(false);
/// }
/// // Twenty calls in the first two seconds.
/// let rates = window.rates(totals, t0 + Duration::from_secs(2));
/// assert_eq!(rates.rps, 10.0);
///
/// // Twelve seconds on, with a record every second, the base is two
/// // seconds in and the twenty calls are out of the window.
/// for s in 1..=12 {
///     window.advance(totals, t0 + Duration::from_secs(s));
/// }
/// assert_eq!(window.base_at(), t0 + Duration::from_secs(2));
/// assert_eq!(window.rates(totals, t0 + Duration::from_secs(12)).rps, 0.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RateWindow {
    window: Duration,
    /// Records, oldest first; the first is the base. Never empty.
    records: VecDeque<Record>,
}

/// Totals at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Record {
    at: Instant,
    totals: Totals,
}

/// Rates over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Completed calls per second.
    pub rps: f64,
    /// Failed calls per second.
    pub eps: f64,
    /// Worker-slot busy seconds per second (divide by the number of slots
    /// for a busy fraction).
    pub busy: f64,
}

impl RateWindow {
    /// A window over `window`, starting at `start` with zero totals.
    pub fn new(window: Duration, start: Instant) -> Self {
        Self {
            window,
            records: VecDeque::from([Record {
                at: start,
                totals: Totals::default(),
            }]),
        }
    }

    /// The span the window measures over.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// When the window's base was recorded.
    pub fn base_at(&self) -> Instant {
        self.base().at
    }

    /// The totals at the window's base.
    pub fn base_totals(&self) -> Totals {
        self.base().totals
    }

    fn base(&self) -> Record {
        self.records[0]
    }

    /// Records `totals` as of `now` and moves the base forward to the newest
    /// record at least one window old.
    ///
    /// Allocates only while the records grow to one window's worth of
    /// intervals; after that their storage is reused.
    pub fn advance(&mut self, totals: Totals, now: Instant) {
        self.records.push_back(Record { at: now, totals });
        while self.records.len() > 1
            && now.saturating_duration_since(self.records[1].at) >= self.window
        {
            self.records.pop_front();
        }
    }

    /// Rates between the window's base and `now`, when the totals are
    /// `totals`. Zero when no time has passed since the base (or `now` is
    /// before it).
    pub fn rates(&self, totals: Totals, now: Instant) -> Rates {
        let base = self.base();
        Self::rates_since(self.window, base.at, base.totals, totals, now)
    }

    /// [`rates`](Self::rates) for a window of `window` whose base, recorded
    /// at `base_at`, holds `base`: the same arithmetic, for a copy of the
    /// base kept elsewhere (one that readers can take without a lock).
    pub fn rates_since(
        window: Duration,
        base_at: Instant,
        base: Totals,
        totals: Totals,
        now: Instant,
    ) -> Rates {
        let elapsed_ns = now.saturating_duration_since(base_at).as_nanos();
        if elapsed_ns == 0 {
            return Rates::default();
        }
        let secs = elapsed_ns as f64 / 1e9;
        let rate_secs = secs.max(MIN_RATE_SPAN.min(window).as_secs_f64());
        let per_sec = |now: u64, then: u64| now.wrapping_sub(then) as f64 / rate_secs;
        Rates {
            rps: per_sec(totals.requests, base.requests),
            eps: per_sec(totals.errors, base.errors),
            busy: totals.busy_ns.wrapping_sub(base.busy_ns) as f64 / 1e9 / secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(
        clippy::disallowed_methods,
        reason = "tests need one real instant to offset from"
    )]
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn calls(totals: &mut Totals, n: u64, failed_every: u64) {
        for i in 0..n {
            totals.record_call(i % failed_every == 0);
        }
    }

    #[test]
    fn rates_right_after_the_start_count_over_at_least_a_second() {
        let t0 = t0();
        let w = RateWindow::new(secs(10), t0);
        let mut totals = Totals::default();
        totals.record_call(false);
        totals.record_busy(Duration::from_millis(3));
        let r = w.rates(totals, t0 + Duration::from_millis(6));
        assert_eq!(r.rps, 1.0);
        assert!((r.busy - 0.5).abs() < 1e-9, "{}", r.busy);
        // A window shorter than the least span counts over the window.
        let w = RateWindow::new(Duration::from_millis(500), t0);
        let r = w.rates(totals, t0 + Duration::from_millis(6));
        assert_eq!(r.rps, 2.0);
    }

    #[test]
    fn rates_since_the_start_before_the_first_advance() {
        let t0 = t0();
        let w = RateWindow::new(secs(10), t0);
        let mut totals = Totals::default();
        calls(&mut totals, 100, 10);
        totals.record_busy(secs(5));
        let r = w.rates(totals, t0 + secs(10));
        assert_eq!((r.rps, r.eps, r.busy), (10.0, 1.0, 0.5));
    }

    #[test]
    fn base_is_the_newest_record_at_least_one_window_old() {
        let t0 = t0();
        let mut w = RateWindow::new(secs(10), t0);
        let mut totals = Totals::default();
        calls(&mut totals, 100, 10);
        for s in 1..=9 {
            w.advance(totals, t0 + secs(s));
            assert_eq!(w.base_at(), t0, "no record is a window old at {s} s");
        }
        w.advance(totals, t0 + secs(10));
        assert_eq!(w.base_at(), t0, "the start is exactly one window old");
        w.advance(totals, t0 + secs(11));
        assert_eq!(w.base_at(), t0 + secs(1));
        for s in 12..=20 {
            w.advance(totals, t0 + secs(s));
        }
        assert_eq!(w.base_at(), t0 + secs(10));
        assert_eq!(w.base_totals(), totals);
        assert_eq!(w.rates(totals, t0 + secs(20)).rps, 0.0, "the calls left");

        // New calls count over the ten seconds since the base.
        for _ in 0..50 {
            totals.record_call(false);
        }
        let r = w.rates(totals, t0 + secs(20));
        assert_eq!((r.rps, r.eps), (5.0, 0.0));
        // Half a second later the base has not moved: the span grows.
        assert_eq!(
            w.rates(totals, t0 + Duration::from_millis(20_500)).rps,
            50.0 / 10.5
        );
    }

    #[test]
    fn records_do_not_pile_up() {
        let t0 = t0();
        let mut w = RateWindow::new(secs(10), t0);
        for s in 1..=1000 {
            w.advance(Totals::default(), t0 + secs(s));
        }
        // The base and the ten newer records.
        assert_eq!(w.records.len(), 11);
    }

    #[test]
    fn irregular_advances_keep_a_base_at_least_one_window_old() {
        let t0 = t0();
        let mut w = RateWindow::new(secs(10), t0);
        // A long gap: the sampler was late.
        w.advance(Totals::default(), t0 + secs(3));
        w.advance(Totals::default(), t0 + secs(25));
        assert_eq!(w.base_at(), t0 + secs(3));
        w.advance(Totals::default(), t0 + secs(26));
        assert_eq!(w.base_at(), t0 + secs(3), "the 25 s record is 1 s old");
    }

    #[test]
    fn zero_elapsed_time_gives_zero_rates() {
        let t0 = t0();
        let mut w = RateWindow::new(secs(10), t0);
        let mut totals = Totals::default();
        calls(&mut totals, 3, 1);
        assert_eq!(w.rates(totals, t0), Rates::default());
        w.advance(totals, t0 + secs(11));
        w.advance(totals, t0 + secs(12));
        let base = w.base_at();
        assert_eq!(w.rates(totals, base), Rates::default());
        // A `now` before the base, as from a clock that went backwards.
        assert_eq!(w.rates(totals, t0), Rates::default());
    }

    #[test]
    fn no_calls_give_zero_rates() {
        let t0 = t0();
        let mut w = RateWindow::new(secs(10), t0);
        w.advance(Totals::default(), t0 + secs(1));
        assert_eq!(w.rates(Totals::default(), t0 + secs(2)), Rates::default());
    }

    #[test]
    fn a_counter_wrapping_inside_the_window_still_gives_its_rate() {
        let t0 = t0();
        let mut w = RateWindow::new(secs(10), t0);
        let before = Totals {
            requests: u64::MAX - 4,
            errors: u64::MAX,
            busy_ns: u64::MAX - 999_999_999,
        };
        w.advance(before, t0 + secs(1));
        w.advance(before, t0 + secs(11));
        assert_eq!(w.base_totals(), before);
        let mut after = before;
        calls(&mut after, 20, 2);
        after.record_busy(secs(4));
        assert!(after.requests < before.requests, "the counter wrapped");
        let r = w.rates(after, t0 + secs(11));
        assert_eq!((r.rps, r.eps, r.busy), (2.0, 1.0, 0.4));
    }
}
