//! How long a test backend takes per call.

use std::time::Duration;

use rand::Rng;

/// A service-time distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Always this long.
    Fixed(Duration),
    /// Exponential with this mean.
    Exponential(Duration),
    /// `shift` plus an exponential with mean `mean`.
    ShiftedExponential {
        /// The constant part.
        shift: Duration,
        /// Mean of the exponential part.
        mean: Duration,
    },
}

impl Default for ServiceTime {
    fn default() -> Self {
        ServiceTime::Fixed(Duration::ZERO)
    }
}

impl ServiceTime {
    /// Draws one service time.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            ServiceTime::Fixed(d) => d,
            ServiceTime::Exponential(mean) => exp_sample(rng, mean),
            ServiceTime::ShiftedExponential { shift, mean } => shift + exp_sample(rng, mean),
        }
    }

    /// The mean service time.
    pub fn mean(&self) -> Duration {
        match *self {
            ServiceTime::Fixed(d) | ServiceTime::Exponential(d) => d,
            ServiceTime::ShiftedExponential { shift, mean } => shift + mean,
        }
    }

    /// This distribution with every duration multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> ServiceTime {
        let s = |d: Duration| d.mul_f64(factor);
        match *self {
            ServiceTime::Fixed(d) => ServiceTime::Fixed(s(d)),
            ServiceTime::Exponential(d) => ServiceTime::Exponential(s(d)),
            ServiceTime::ShiftedExponential { shift, mean } => ServiceTime::ShiftedExponential {
                shift: s(shift),
                mean: s(mean),
            },
        }
    }
}

/// Inverse-transform sample of an exponential with mean `mean`.
fn exp_sample(rng: &mut impl Rng, mean: Duration) -> Duration {
    // 1 - u is in (0, 1], so ln never sees 0.
    let u: f64 = rng.random();
    mean.mul_f64(-(1.0 - u).ln())
}
