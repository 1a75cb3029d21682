//! The average time a backend takes to serve a unary call.

use std::time::{Duration, Instant};

use crate::Ewma;

/// A time-decayed average of unary service times, in milliseconds: the
/// `service_time_ms` a backend reports.
///
/// Only calls a worker finished count; a call cut off before it answered
/// would have taken longer, so its time is busy time but not a sample here.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTimeEwma {
    ewma: Ewma,
}

impl ServiceTimeEwma {
    /// An empty average with the time constant `decay` (raised to
    /// [`Ewma::MIN_DECAY`] if below it).
    pub fn new(decay: Duration) -> Self {
        Self {
            ewma: Ewma::new(decay),
        }
    }

    /// Adds one call's service time, which ended at `now`.
    pub fn observe(&mut self, service_time: Duration, now: Instant) {
        self.ewma.observe(service_time.as_nanos() as f64 / 1e6, now);
    }

    /// The average in milliseconds; `None` before the first call.
    pub fn value_ms(&self) -> Option<f64> {
        self.ewma.value()
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

    #[test]
    fn empty_until_the_first_call() {
        assert_eq!(
            ServiceTimeEwma::new(Duration::from_secs(1)).value_ms(),
            None
        );
    }

    #[test]
    fn first_call_is_the_value_then_time_weighs_the_rest() {
        let t0 = t0();
        let mut st = ServiceTimeEwma::new(Duration::from_secs(1));
        st.observe(Duration::from_micros(1500), t0);
        assert_eq!(st.value_ms(), Some(1.5));
        // One time constant later the old value keeps 1/e of its weight.
        st.observe(Duration::from_millis(10), t0 + Duration::from_secs(1));
        let w = (-1.0_f64).exp();
        let expected = w * 1.5 + (1.0 - w) * 10.0;
        assert!((st.value_ms().unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn calls_ending_together_average_evenly_with_no_time_passing() {
        let t0 = t0();
        let mut st = ServiceTimeEwma::new(Duration::from_secs(1));
        st.observe(Duration::from_millis(4), t0);
        // No time passed: the old value keeps all of its weight.
        st.observe(Duration::from_millis(100), t0);
        assert_eq!(st.value_ms(), Some(4.0));
    }

    #[test]
    fn zero_decay_is_raised_to_the_floor() {
        let t0 = t0();
        let mut st = ServiceTimeEwma::new(Duration::ZERO);
        st.observe(Duration::from_millis(4), t0);
        st.observe(Duration::from_millis(8), t0 + Duration::from_secs(1));
        // A thousand time constants later only the new sample is left.
        assert_eq!(st.value_ms(), Some(8.0));
    }
}
