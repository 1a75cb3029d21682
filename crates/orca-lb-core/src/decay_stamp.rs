//! Times prepared so that a pick weighs them by their age with a multiply,
//! not an `exp` per endpoint.

use crate::fast_exp::exp2_neg;

/// A time `t` (seconds since an origin) on the scale of one decay rate
/// `rate` (`log2(e) / window`): `t * rate` as its integer part and `2^` its
/// fraction, worked out once, when a pick view is published.
///
/// The weight of a value stamped `t` at a pick at `now` is
/// `exp(-(now - t) / window) = 2^(t * rate - now * rate)`. With the pick's
/// time split the same way once per pick ([`DecayClock`]), the weight of
/// each stamp is the product of the two fractions' powers times a power of
/// two built from the integer parts: no polynomial per endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecayStamp {
    /// `floor(t * rate)`.
    whole: i64,
    /// `2^(t * rate - whole)`, in `[1, 2)`.
    power: f64,
}

/// A pick's time `now` on the scale of one decay rate: `now * rate` as its
/// integer part and `2^-` its fraction (see [`DecayStamp`]), worked out once
/// per pick for all the stamps it weighs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecayClock {
    /// `floor(now * rate)`.
    whole: i64,
    /// `2^-(now * rate - whole)`, in `(1/2, 1]`.
    power: f64,
}

/// `y >= 0` as `(floor(y), y - floor(y))`, the fraction in `[0, 1)`.
#[inline]
fn split(y: f64) -> (i64, f64) {
    // Truncation is the floor of a number not below 0 (and a conversion,
    // where `floor` is a library call on the baseline x86-64). Saturating: a
    // time beyond 2^63 windows is out of any range that weighs anything.
    let whole = y as i64;
    (whole, (y - whole as f64).clamp(0.0, 1.0))
}

impl DecayStamp {
    /// The stamp of time `t` (seconds since the origin, finite and not
    /// negative) for decay rate `rate`.
    pub fn new(t: f64, rate: f64) -> Self {
        let (whole, fraction) = split(t * rate);
        // 2^f = 2 * 2^(f - 1), with f - 1 in [-1, 0).
        Self {
            whole,
            power: 2.0 * exp2_neg(fraction - 1.0),
        }
    }

    /// The stamp as words, for [`from_words`](Self::from_words).
    pub fn to_words(self) -> [u64; 2] {
        [self.whole as u64, self.power.to_bits()]
    }

    /// The stamp whose [`to_words`](Self::to_words) were `w`.
    #[inline]
    pub fn from_words(w: [u64; 2]) -> Self {
        Self {
            whole: w[0] as i64,
            power: f64::from_bits(w[1]),
        }
    }

    /// `exp(-(now - t) / window)` for this stamp's `t` at the pick time of
    /// `clock` (of the same rate): 1 when `t` is not before `now`, 0 where
    /// the weight is under `2^-1022`. Within a relative 1e-12 of
    /// [`exp2_neg`]`(-(now - t).max(0.0) * rate)` for times up to about
    /// 10^9 windows since the origin; past that the rounding of `t * rate`
    /// is the rounding of `now - t` already.
    #[inline]
    pub fn weight(self, clock: DecayClock) -> f64 {
        let exponent = self.whole.saturating_sub(clock.whole);
        if exponent > 0 {
            // `t * rate >= now * rate + 1 - fraction`: `t` is after `now`.
            return 1.0;
        }
        if exponent < -1022 {
            return 0.0;
        }
        // 2^exponent from its bits: exponent + 1023 is in [1, 1023].
        let scale = f64::from_bits(((exponent + 1023) as u64) << 52);
        (self.power * clock.power * scale).min(1.0)
    }
}

impl DecayClock {
    /// The clock of time `now` (seconds since the origin, finite and not
    /// negative) for decay rate `rate`.
    #[inline]
    pub fn new(now: f64, rate: f64) -> Self {
        let (whole, fraction) = split(now * rate);
        Self {
            whole,
            power: exp2_neg(-fraction),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn reference(now: f64, t: f64, rate: f64) -> f64 {
        exp2_neg(-(now - t).max(0.0) * rate)
    }

    #[test]
    fn weighs_as_the_direct_power() {
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..200_000 {
            // Windows from a millisecond to a minute, times from the origin
            // to a month after it, ages from before the stamp (a clock read
            // on another thread) to far beyond the window.
            let window = 10f64.powf(rng.random_range(-3.0..1.8));
            let rate = std::f64::consts::LOG2_E / window;
            let t = rng.random_range(0.0..2.6e6);
            let age = window * 10f64.powf(rng.random_range(-6.0..3.5));
            let now = if rng.random_bool(0.05) {
                (t - age).max(0.0)
            } else {
                t + age
            };
            let (want, got) = (
                reference(now, t, rate),
                DecayStamp::new(t, rate).weight(DecayClock::new(now, rate)),
            );
            // The rounding of `t * rate` (up to about 4e9 here) is within
            // a relative 1e-15, as is that of `now - t` in the direct form:
            // the weights agree to that many ulps of the exponent.
            let tolerance = 1e-15 * (t * rate).max(1.0) * 4.0 + 1e-13;
            assert!(
                (got - want).abs() <= tolerance * want + 1e-300,
                "t {t} now {now} window {window}: {got} against {want}"
            );
        }
    }

    #[test]
    fn one_before_the_stamp_zero_far_after() {
        let rate = std::f64::consts::LOG2_E / 2.0;
        for t in [0.0, 1.0, 3_600.0, 1e6] {
            let stamp = DecayStamp::new(t, rate);
            // At its own time, 1 up to the rounding of the two powers
            // (each within 1e-13).
            let now = stamp.weight(DecayClock::new(t, rate));
            assert!((1.0 - 3e-13..=1.0).contains(&now), "{now}");
            assert_eq!(
                stamp.weight(DecayClock::new((t - 0.5f64).max(0.0), rate)),
                1.0
            );
            assert_eq!(stamp.weight(DecayClock::new(t + 2_000.0 * 2.0, rate)), 0.0);
            assert_eq!(DecayStamp::from_words(stamp.to_words()), stamp);
        }
        let stamp = DecayStamp::new(10.0, rate);
        let half = stamp.weight(DecayClock::new(10.0 + 2.0 * std::f64::consts::LN_2, rate));
        assert!((half - 0.5).abs() < 1e-13, "{half}");
    }
}
