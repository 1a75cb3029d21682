//! A time-decayed exponentially weighted moving average.

use std::time::{Duration, Instant};

/// An exponentially weighted moving average of samples that arrive at
/// irregular times.
///
/// A fixed-weight EWMA (`avg = a * avg + (1 - a) * x`) forgets faster when
/// samples come often and slower when they come rarely. This one weighs the
/// old average by how much time has passed instead, as Finagle's and
/// linkerd's EWMAs do: a sample arriving `dt` after the previous one gives
///
/// ```text
/// w     = exp(-dt / decay)
/// value = w * value + (1 - w) * sample
/// ```
///
/// so after one `decay` period the old average keeps `1/e` (about 37%) of
/// its weight, whatever the number of samples in between.
///
/// The time of each sample is an argument; the average never reads a clock.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use orca_lb_core::Ewma;
///
/// let t0 = Instant::now();
/// let mut rtt = Ewma::new(Duration::from_secs(10));
/// rtt.observe(100.0, t0);
/// rtt.observe(0.0, t0 + Duration::from_secs(10));
///
/// let expected = 100.0 * (-1.0_f64).exp();
/// assert!((rtt.value().unwrap() - expected).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Ewma {
    decay: Duration,
    state: Option<State>,
}

/// The current average and the time it was last updated.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    value: f64,
    at: Instant,
}

// === impl Ewma ===

impl Ewma {
    /// The shortest decay period an average accepts; shorter ones are raised
    /// to it.
    ///
    /// Avoids a division by zero in `exp(-dt / decay)`. One millisecond is
    /// already shorter than any RPC worth balancing, so the floor changes no
    /// useful setting.
    pub const MIN_DECAY: Duration = Duration::from_millis(1);

    /// An empty average with the given decay period (raised to
    /// [`MIN_DECAY`](Self::MIN_DECAY) if below it).
    ///
    /// The first sample passed to [`observe`](Self::observe) becomes the
    /// value as is.
    pub fn new(decay: Duration) -> Self {
        Self {
            decay: decay.max(Self::MIN_DECAY),
            state: None,
        }
    }

    /// An average that starts at `value`, as if it had been observed at `now`.
    ///
    /// Useful to seed an estimate (a default RTT, say) before the first
    /// real sample. `value` must be finite.
    pub fn with_value(decay: Duration, value: f64, now: Instant) -> Self {
        let mut ewma = Self::new(decay);
        ewma.set(value, now);
        ewma
    }

    /// Adds a sample taken at `now`.
    ///
    /// The first sample sets the value. Each later one is blended in with
    /// `w = exp(-dt / decay)`, `dt` being the time since the last update.
    /// A `now` earlier than the last update counts as `dt = 0`: the sample
    /// then has no weight and the last update time stays where it was, so
    /// time read from several sources that disagree slightly never panics
    /// and never moves the average backwards in time.
    ///
    /// `value` must be finite; validate untrusted input before it gets here
    /// (see [`LoadReport`](crate::LoadReport)).
    pub fn observe(&mut self, value: f64, now: Instant) {
        debug_assert!(value.is_finite(), "EWMA sample must be finite: {value}");
        let Some(state) = self.state else {
            self.set(value, now);
            return;
        };
        let w = self.weight(state.at, now);
        self.state = Some(State {
            value: w * state.value + (1.0 - w) * value,
            at: state.at.max(now),
        });
    }

    /// The current average, or `None` before the first sample.
    ///
    /// The value changes only when a sample is observed; it does not decay on
    /// its own as time passes (compare [`PeakEwma::value_at`](crate::PeakEwma::value_at)).
    pub fn value(&self) -> Option<f64> {
        self.state.map(|s| s.value)
    }

    /// When the average was last updated, or `None` before the first sample.
    pub fn last_update(&self) -> Option<Instant> {
        self.state.map(|s| s.at)
    }

    /// How long before `now` the average was last updated (zero if `now` is
    /// earlier), or `None` before the first sample.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.last_update()
            .map(|at| now.saturating_duration_since(at))
    }

    /// The decay period: the time over which an old value loses all but
    /// `1/e` of its weight.
    pub fn decay(&self) -> Duration {
        self.decay
    }

    /// Replaces the value and the update time, whatever they were.
    pub(crate) fn set(&mut self, value: f64, now: Instant) {
        debug_assert!(value.is_finite(), "EWMA value must be finite: {value}");
        self.state = Some(State { value, at: now });
    }

    /// The weight `exp(-dt / decay)` that a value set at `since` keeps at
    /// `now`: 1 when no time has passed (or `now` is earlier), tending to 0.
    pub(crate) fn weight(&self, since: Instant, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(since);
        (-dt.as_secs_f64() / self.decay.as_secs_f64()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// e^-1, e^-2 and e^-0.5 as f64.
    const E_NEG1: f64 = 0.367_879_441_171_442_33;
    const E_NEG2: f64 = 0.135_335_283_236_612_7;
    const E_NEG_HALF: f64 = 0.606_530_659_712_633_4;
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
        let actual = actual.expect("the average has a value");
        assert!(
            (actual - expected).abs() < EPSILON,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn empty_until_the_first_sample() {
        let t0 = origin();
        let ewma = Ewma::new(DECAY);
        assert_eq!(ewma.value(), None);
        assert_eq!(ewma.last_update(), None);
        assert_eq!(ewma.age(t0), None);
        assert_eq!(ewma.decay(), DECAY);
    }

    #[test]
    fn first_sample_sets_the_value() {
        let t0 = origin();
        let mut ewma = Ewma::new(DECAY);
        ewma.observe(42.0, t0);
        assert_eq!(ewma.value(), Some(42.0));
        assert_eq!(ewma.last_update(), Some(t0));
    }

    #[test]
    fn with_value_seeds_the_average() {
        let t0 = origin();
        let mut ewma = Ewma::with_value(DECAY, 100.0, t0);
        assert_eq!(ewma.value(), Some(100.0));
        assert_eq!(ewma.last_update(), Some(t0));

        // The seed is blended like any earlier sample, not replaced.
        ewma.observe(0.0, t0 + secs(10));
        assert_close(ewma.value(), 100.0 * E_NEG1);
    }

    #[test]
    fn one_decay_period_keeps_one_over_e() {
        let t0 = origin();
        let mut ewma = Ewma::new(DECAY);
        ewma.observe(100.0, t0);
        ewma.observe(0.0, t0 + secs(10));
        assert_close(ewma.value(), 100.0 * E_NEG1);
        assert_eq!(ewma.last_update(), Some(t0 + secs(10)));
    }

    #[test]
    fn blends_by_elapsed_time() {
        let t0 = origin();
        let mut ewma = Ewma::new(DECAY);
        ewma.observe(100.0, t0);
        // 5 s: w = e^-0.5.
        ewma.observe(20.0, t0 + secs(5));
        let after_5s = E_NEG_HALF * 100.0 + (1.0 - E_NEG_HALF) * 20.0;
        assert_close(ewma.value(), after_5s);
        // 20 s later: w = e^-2.
        ewma.observe(60.0, t0 + secs(25));
        assert_close(ewma.value(), E_NEG2 * after_5s + (1.0 - E_NEG2) * 60.0);
    }

    #[test]
    fn weight_depends_on_time_not_on_sample_count() {
        let t0 = origin();
        let mut once = Ewma::with_value(DECAY, 100.0, t0);
        let mut twice = once.clone();
        once.observe(0.0, t0 + secs(10));
        twice.observe(0.0, t0 + secs(5));
        twice.observe(0.0, t0 + secs(10));
        assert_close(once.value(), 100.0 * E_NEG1);
        assert_close(twice.value(), 100.0 * E_NEG1);
    }

    #[test]
    fn same_instant_sample_has_no_weight() {
        let t0 = origin();
        let mut ewma = Ewma::with_value(DECAY, 100.0, t0);
        ewma.observe(0.0, t0);
        assert_eq!(ewma.value(), Some(100.0));
        assert_eq!(ewma.last_update(), Some(t0));
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let t0 = origin();
        let t1 = t0 + secs(10);
        let mut ewma = Ewma::with_value(DECAY, 100.0, t1);
        ewma.observe(0.0, t0);
        assert_eq!(ewma.value(), Some(100.0));
        // The update time does not move back, so the next sample is weighed
        // from t1, not from t0.
        assert_eq!(ewma.last_update(), Some(t1));
        ewma.observe(0.0, t1 + secs(10));
        assert_close(ewma.value(), 100.0 * E_NEG1);
    }

    #[test]
    fn age_saturates() {
        let t0 = origin();
        let ewma = Ewma::with_value(DECAY, 1.0, t0 + secs(5));
        assert_eq!(ewma.age(t0 + secs(7)), Some(secs(2)));
        assert_eq!(ewma.age(t0), Some(Duration::ZERO));
    }

    #[test]
    fn long_silence_forgets_the_past() {
        let t0 = origin();
        let mut ewma = Ewma::with_value(DECAY, 1e6, t0);
        // 50 periods: w = e^-50, about 1.9e-22.
        ewma.observe(3.0, t0 + secs(500));
        assert_close(ewma.value(), 3.0);
    }

    #[test]
    fn negative_samples_are_averaged() {
        let t0 = origin();
        let mut ewma = Ewma::with_value(DECAY, -10.0, t0);
        ewma.observe(10.0, t0 + secs(10));
        assert_close(ewma.value(), -10.0 * E_NEG1 + 10.0 * (1.0 - E_NEG1));
    }

    #[test]
    fn decay_below_the_minimum_is_raised() {
        assert_eq!(Ewma::new(Duration::ZERO).decay(), Ewma::MIN_DECAY);
        assert_eq!(Ewma::new(Duration::from_nanos(1)).decay(), Ewma::MIN_DECAY);
        assert_eq!(Ewma::new(Ewma::MIN_DECAY).decay(), Ewma::MIN_DECAY);
        let t0 = origin();
        assert_eq!(
            Ewma::with_value(Duration::ZERO, 1.0, t0).decay(),
            Ewma::MIN_DECAY
        );
    }

    #[test]
    fn zero_decay_does_not_divide_by_zero() {
        let t0 = origin();
        let mut ewma = Ewma::with_value(Duration::ZERO, 100.0, t0);
        // dt = 0: 0/MIN_DECAY, not 0/0, so the value stays put.
        ewma.observe(0.0, t0);
        assert_eq!(ewma.value(), Some(100.0));
        // One MIN_DECAY later: w = e^-1.
        ewma.observe(0.0, t0 + Ewma::MIN_DECAY);
        assert_close(ewma.value(), 100.0 * E_NEG1);
    }

    #[test]
    #[should_panic(expected = "must be finite")]
    #[cfg(debug_assertions)]
    fn non_finite_sample_is_a_bug() {
        let mut ewma = Ewma::new(DECAY);
        ewma.observe(f64::NAN, origin());
    }
}
