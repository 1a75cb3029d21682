//! The recent failure rate of an endpoint.

use std::time::Instant;

/// The fraction of recent calls that failed, forgetting with time.
///
/// Each outcome moves the rate a fixed step `alpha` toward 1 (failure) or 0
/// (success), so one failure among a burst of calls counts the same however
/// close together they came; and between outcomes the rate decays toward 0
/// with time constant `decay`, so an endpoint that failed and was then left
/// alone looks clean again after a while and is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRate {
    alpha: f64,
    decay_secs: f64,
    rate: f64,
    updated: Option<Instant>,
}

impl ErrorRate {
    /// A rate that steps by `alpha` (clamped to `(0, 1]`) per outcome and
    /// decays with time constant `decay`.
    pub fn new(alpha: f64, decay: std::time::Duration) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(1e-6, 1.0)
        } else {
            1.0
        };
        Self {
            alpha,
            decay_secs: decay.as_secs_f64().max(1e-3),
            rate: 0.0,
            updated: None,
        }
    }

    /// Records one call's outcome.
    pub fn observe(&mut self, failed: bool, now: Instant) {
        let decayed = self.value_at(now);
        let x = if failed { 1.0 } else { 0.0 };
        self.rate = decayed + self.alpha * (x - decayed);
        // A rate this small weighs nothing in a score; as an exact 0 it
        // costs nothing to read either.
        if self.rate < 1e-9 {
            self.rate = 0.0;
        }
        if self.updated.is_none_or(|u| now > u) {
            self.updated = Some(now);
        }
    }

    /// The rate at its last update, its decay time constant in seconds,
    /// and when it was last updated: what [`value_at`](Self::value_at)
    /// computes from.
    pub(crate) fn parts(&self) -> (f64, f64, Option<Instant>) {
        (self.rate, self.decay_secs, self.updated)
    }

    /// The rate as of `now`, in `[0, 1]`.
    pub fn value_at(&self, now: Instant) -> f64 {
        match self.updated {
            // A healthy endpoint's rate is exactly 0 and decays to 0: no
            // `exp` on the pick path for it.
            _ if self.rate <= 0.0 => 0.0,
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.rate * (-dt / self.decay_secs).exp()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[expect(
        clippy::disallowed_methods,
        reason = "tests need one real instant to offset from"
    )]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn steps_per_outcome_and_decays_with_time() {
        let t = t0();
        let mut e = ErrorRate::new(0.25, Duration::from_secs(5));
        assert_eq!(e.value_at(t), 0.0);
        e.observe(true, t);
        assert_eq!(e.value_at(t), 0.25);
        e.observe(true, t);
        assert_eq!(e.value_at(t), 0.4375);
        e.observe(false, t);
        assert_eq!(e.value_at(t), 0.328125);
        let later = e.value_at(t + Duration::from_secs(5));
        assert!((later - 0.328125 * (-1.0f64).exp()).abs() < 1e-12);
        // Reads do not change the state.
        assert_eq!(e.value_at(t), 0.328125);
    }

    #[test]
    fn garbage_alpha_is_clamped() {
        let t = t0();
        let mut e = ErrorRate::new(f64::NAN, Duration::ZERO);
        e.observe(true, t);
        assert_eq!(e.value_at(t), 1.0);
        let mut e = ErrorRate::new(7.0, Duration::from_secs(1));
        e.observe(true, t);
        assert_eq!(e.value_at(t), 1.0);
    }
}
