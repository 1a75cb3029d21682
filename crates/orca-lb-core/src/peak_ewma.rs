//! A peak-sensitive EWMA, after Finagle's.

use std::time::{Duration, Instant};

use crate::Ewma;

/// A peak-sensitive, time-decayed moving average of a cost such as latency.
///
/// The algorithm is Finagle's "Peak EWMA" load metric
/// (`com.twitter.finagle.loadbalancer.PeakEwma`), which tower's
/// `balance::p2c` with `load::PeakEwma` and linkerd's balancer also use:
///
/// * A sample above the estimate replaces it at once, so a backend that
///   slows down is avoided from its first slow response.
/// * A sample at or below the estimate is blended in like [`Ewma`], with
///   `w = exp(-dt / decay)`, so a backend that recovers earns traffic back
///   gradually.
/// * A read at `now` ([`value_at`](Self::value_at)) discounts the estimate
///   by `exp(-age / decay)`, decaying it toward zero while nothing is
///   observed. A backend that was slow and then got no traffic looks cheaper
///   over time until it is tried again, rather than being shunned forever
///   on stale data.
///
/// Unlike Finagle and tower, reads take `&self` and do not store the
/// decayed value: the estimate changes only in [`observe`](Self::observe),
/// so how often a balancer reads it does not change what it reads later.
/// For the same reason the peak test compares a sample with the estimate
/// left by the last observation, not with the idle-discounted read: the
/// idle discount is a reason to probe a backend, not evidence that it got
/// faster, and mixing the two would make the new estimate fall as the sample
/// rises (a sample just above the discounted read would be kept as is, one
/// just below it blended up toward the old peak). As a consequence, a sample
/// that arrives after a long silence replaces the idle discount: the read
/// right after it can be higher than the read right before it.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use orca_lb_core::PeakEwma;
///
/// let t0 = Instant::now();
/// let mut rtt = PeakEwma::with_value(Duration::from_secs(10), 20.0, t0);
///
/// // A slow response is taken as is.
/// rtt.observe(200.0, t0 + Duration::from_secs(1));
/// assert_eq!(rtt.value_at(t0 + Duration::from_secs(1)), Some(200.0));
///
/// // Without traffic the estimate decays toward zero.
/// let later = rtt.value_at(t0 + Duration::from_secs(60)).unwrap();
/// assert!(later < 1.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PeakEwma {
    ewma: Ewma,
}

// === impl PeakEwma ===

impl PeakEwma {
    /// An empty estimate with the given decay period (raised to
    /// [`Ewma::MIN_DECAY`] if below it).
    pub fn new(decay: Duration) -> Self {
        Self {
            ewma: Ewma::new(decay),
        }
    }

    /// An estimate that starts at `value`, as if it had been observed at
    /// `now`, e.g. a default RTT for a backend not yet called. `value` must
    /// be finite.
    pub fn with_value(decay: Duration, value: f64, now: Instant) -> Self {
        Self {
            ewma: Ewma::with_value(decay, value, now),
        }
    }

    /// Adds a sample taken at `now`.
    ///
    /// The first sample, and any sample above [`last_value`](Self::last_value),
    /// becomes the estimate. A sample at or below it is blended in with
    /// `w = exp(-dt / decay)`, `dt` being the time since the last update.
    /// The peak test ignores the idle decay that
    /// [`value_at`](Self::value_at) applies (see the type's docs for why). A
    /// `now` earlier than the last update counts as `dt = 0` and does not
    /// move the last update back.
    ///
    /// `value` must be finite.
    pub fn observe(&mut self, value: f64, now: Instant) {
        debug_assert!(value.is_finite(), "EWMA sample must be finite: {value}");
        match (self.ewma.value(), self.ewma.last_update()) {
            (Some(estimate), Some(at)) if value > estimate => self.ewma.set(value, at.max(now)),
            _ => self.ewma.observe(value, now),
        }
    }

    /// The estimate at `now`: the last one, decayed toward zero by
    /// `exp(-(now - last_update) / decay)`. `None` before the first sample.
    ///
    /// Does not change the estimate. A `now` earlier than the last update
    /// reads the last estimate undecayed.
    pub fn value_at(&self, now: Instant) -> Option<f64> {
        let estimate = self.ewma.value()?;
        let at = self.ewma.last_update()?;
        Some(estimate * self.ewma.weight(at, now))
    }

    /// The estimate as the last observation left it, before any decay for
    /// the time since. `None` before the first sample.
    pub fn last_value(&self) -> Option<f64> {
        self.ewma.value()
    }

    /// When the estimate was last updated, or `None` before the first sample.
    pub fn last_update(&self) -> Option<Instant> {
        self.ewma.last_update()
    }

    /// How long before `now` the estimate was last updated (zero if `now` is
    /// earlier), or `None` before the first sample.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.ewma.age(now)
    }

    /// The decay period: the time over which an old estimate loses all but
    /// `1/e` of its weight, and over which an unobserved estimate falls to
    /// `1/e` of itself.
    pub fn decay(&self) -> Duration {
        self.ewma.decay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// e^-1, e^-2 and e^-50 as f64.
    const E_NEG1: f64 = 0.367_879_441_171_442_33;
    const E_NEG2: f64 = 0.135_335_283_236_612_7;
    const E_NEG50: f64 = 1.928_749_847_963_917_8e-22;
    const EPSILON: f64 = 1e-12;

    const DECAY: Duration = Duration::from_secs(10);

    /// An arbitrary origin: only differences between instants matter here.
    #[expect(
        clippy::disallowed_methods,
        reason = "tests need some Instant to start from"
    )]
    fn origin() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[track_caller]
    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("the estimate has a value");
        assert!(
            (actual - expected).abs() < EPSILON,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn empty_until_the_first_sample() {
        let t0 = origin();
        let peak = PeakEwma::new(DECAY);
        assert_eq!(peak.value_at(t0), None);
        assert_eq!(peak.last_value(), None);
        assert_eq!(peak.last_update(), None);
        assert_eq!(peak.age(t0), None);
        assert_eq!(peak.decay(), DECAY);
    }

    #[test]
    fn first_sample_sets_the_value() {
        let t0 = origin();
        let mut peak = PeakEwma::new(DECAY);
        peak.observe(42.0, t0);
        assert_eq!(peak.value_at(t0), Some(42.0));
        assert_eq!(peak.last_update(), Some(t0));
    }

    #[test]
    fn with_value_seeds_the_estimate() {
        let t0 = origin();
        let peak = PeakEwma::with_value(DECAY, 100.0, t0);
        assert_eq!(peak.value_at(t0), Some(100.0));
        assert_eq!(peak.last_value(), Some(100.0));
        assert_eq!(peak.last_update(), Some(t0));
    }

    #[test]
    fn higher_sample_is_taken_as_is() {
        let t0 = origin();
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t0);
        peak.observe(500.0, t0 + secs(10));
        assert_eq!(peak.value_at(t0 + secs(10)), Some(500.0));
        assert_eq!(peak.last_update(), Some(t0 + secs(10)));
    }

    #[test]
    fn higher_sample_at_the_same_instant_is_taken_as_is() {
        let t0 = origin();
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t0);
        peak.observe(500.0, t0);
        assert_eq!(peak.value_at(t0), Some(500.0));
    }

    #[test]
    fn lower_sample_is_blended_in() {
        let t0 = origin();
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t0);
        peak.observe(20.0, t0 + secs(10));
        let expected = E_NEG1 * 100.0 + (1.0 - E_NEG1) * 20.0;
        assert_close(peak.last_value(), expected);
        assert_close(peak.value_at(t0 + secs(10)), expected);
        // Another 20 s later: w = e^-2.
        peak.observe(20.0, t0 + secs(30));
        assert_close(peak.last_value(), E_NEG2 * expected + (1.0 - E_NEG2) * 20.0);
    }

    #[test]
    fn equal_sample_keeps_the_estimate() {
        let t0 = origin();
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t0);
        peak.observe(100.0, t0 + secs(10));
        assert_close(peak.last_value(), 100.0);
    }

    #[test]
    fn lower_sample_at_the_same_instant_has_no_weight() {
        let t0 = origin();
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t0);
        peak.observe(0.0, t0);
        assert_eq!(peak.value_at(t0), Some(100.0));
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let t0 = origin();
        let t1 = t0 + secs(10);
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t1);

        peak.observe(0.0, t0);
        assert_eq!(peak.last_value(), Some(100.0));
        assert_eq!(peak.last_update(), Some(t1));

        // A peak still counts, but does not move the last update back.
        peak.observe(300.0, t0);
        assert_eq!(peak.last_value(), Some(300.0));
        assert_eq!(peak.last_update(), Some(t1));

        // Reading before the last update gives the estimate undecayed.
        assert_eq!(peak.value_at(t0), Some(300.0));
        assert_eq!(peak.age(t0), Some(Duration::ZERO));
    }

    #[test]
    fn value_at_decays_toward_zero() {
        let t0 = origin();
        let peak = PeakEwma::with_value(DECAY, 100.0, t0);
        assert_close(peak.value_at(t0 + secs(10)), 100.0 * E_NEG1);
        assert_close(peak.value_at(t0 + secs(20)), 100.0 * E_NEG2);
        assert_close(peak.value_at(t0 + secs(500)), 100.0 * E_NEG50);
        assert_eq!(peak.age(t0 + secs(500)), Some(secs(500)));
    }

    #[test]
    fn unobserved_expensive_backend_is_eventually_cheapest() {
        let t0 = origin();
        let slow = PeakEwma::with_value(DECAY, 1_000.0, t0);
        let mut fast = PeakEwma::with_value(DECAY, 5.0, t0);
        for s in 1..=100 {
            fast.observe(5.0, t0 + secs(s));
        }
        let now = t0 + secs(100);
        assert!(slow.value_at(now) < fast.value_at(now));
    }

    #[test]
    fn value_at_does_not_mutate() {
        let t0 = origin();
        let mut read = PeakEwma::with_value(DECAY, 100.0, t0);
        let mut unread = read.clone();

        for s in [1, 5, 10, 100] {
            assert_close(read.value_at(t0 + secs(10)), 100.0 * E_NEG1);
            let _ = read.value_at(t0 + secs(s));
        }
        assert_eq!(read, unread);

        // What was read does not change what a later sample does.
        read.observe(20.0, t0 + secs(10));
        unread.observe(20.0, t0 + secs(10));
        assert_eq!(read, unread);
        assert_close(read.last_value(), E_NEG1 * 100.0 + (1.0 - E_NEG1) * 20.0);
    }

    #[test]
    fn fresh_sample_replaces_the_idle_discount() {
        let t0 = origin();
        let t1 = t0 + secs(10);
        let mut peak = PeakEwma::with_value(DECAY, 100.0, t0);
        let before = peak.value_at(t1).unwrap();
        assert!((before - 100.0 * E_NEG1).abs() < EPSILON);

        // 40 is above the discounted read (36.8) but below the estimate
        // (100), so it is blended, not taken as a peak.
        peak.observe(40.0, t1);
        assert_close(peak.value_at(t1), E_NEG1 * 100.0 + (1.0 - E_NEG1) * 40.0);
        assert!(peak.value_at(t1).unwrap() > before);
    }

    #[test]
    fn estimate_rises_with_the_sample() {
        let t0 = origin();
        let t1 = t0 + secs(10);
        let seed = PeakEwma::with_value(DECAY, 100.0, t0);
        let mut previous = f64::NEG_INFINITY;
        for tenth in 0..=1_500 {
            let sample = f64::from(tenth) / 10.0;
            let mut peak = seed.clone();
            peak.observe(sample, t1);
            let estimate = peak.last_value().unwrap();
            assert!(
                estimate >= previous,
                "sample {sample} gave {estimate}, below {previous} for a lower sample"
            );
            assert!(estimate >= sample);
            previous = estimate;
        }
    }

    #[test]
    fn decay_below_the_minimum_is_raised() {
        let t0 = origin();
        assert_eq!(PeakEwma::new(Duration::ZERO).decay(), Ewma::MIN_DECAY);
        let peak = PeakEwma::with_value(Duration::ZERO, 100.0, t0);
        assert_eq!(peak.decay(), Ewma::MIN_DECAY);
        assert_eq!(peak.value_at(t0), Some(100.0));
        assert_close(peak.value_at(t0 + Ewma::MIN_DECAY), 100.0 * E_NEG1);
    }

    #[test]
    #[should_panic(expected = "must be finite")]
    #[cfg(debug_assertions)]
    fn non_finite_sample_is_a_bug() {
        let mut peak = PeakEwma::new(DECAY);
        peak.observe(f64::INFINITY, origin());
    }
}
