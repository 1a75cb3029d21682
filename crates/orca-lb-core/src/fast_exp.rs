//! `exp(x)` for the weights of a score, without a library call.

use std::f64::consts::{LN_2, LOG2_E};

/// Adding and subtracting it rounds an `f64` below 2^51 to the nearest
/// integer.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// `ln(2)^n / n!` for `n` in `0..12`: the Taylor coefficients of `2^f`.
const C: [f64; 12] = [
    1.0,
    LN_2,
    0.240_226_506_959_100_72,
    0.055_504_108_664_821_58,
    0.009_618_129_107_628_477,
    0.001_333_355_814_642_844_3,
    0.000_154_035_303_933_816_1,
    1.525_273_380_405_984_1e-5,
    1.321_548_679_014_431e-6,
    1.017_808_600_923_97e-7,
    7.054_911_620_801_123e-9,
    4.445_538_271_870_811_6e-10,
];

/// At or below this power of two, the result (under `2.3e-308`) counts as 0.
const UNDERFLOW2: f64 = -1022.0;

/// `exp(x)` for `x <= 0` (the weight `exp(-age / window)` of a value of
/// age `age`), within a relative 1e-12 of [`f64::exp`] down to
/// `x = -708`, and 0 where `exp` is under `2.3e-308` (`x <= -708.4`). NaN
/// gives NaN. It is [`exp2_neg`]`(x * log2(e))`.
///
/// ```
/// use orca_lb_core::exp_neg;
///
/// assert_eq!(exp_neg(0.0), 1.0);
/// assert!((exp_neg(-1.0) / (-1.0f64).exp() - 1.0).abs() < 1e-13);
/// assert_eq!(exp_neg(-1e6), 0.0);
/// ```
#[inline]
pub fn exp_neg(x: f64) -> f64 {
    exp2_neg(x * LOG2_E)
}

/// `2^y` for `y <= 0`, within a relative 1e-13 of [`f64::exp2`] down to
/// `y = -1022`, and 0 at or below (where it is under `2.3e-308`). NaN gives
/// NaN. A weight `exp(-age / window)` is `exp2_neg(-age * (log2(e) /
/// window))`, with the factor computed once.
///
/// The score computes a few of these per candidate, and a pick scores up
/// to [`MAX_CHOICES`](crate::MAX_CHOICES) candidates: this is inlined
/// arithmetic (`y = k + f` with `k` an integer and `|f| <= 1/2`, a
/// degree-11 polynomial in `f` for `2^f = exp(f ln 2)`, `2^k` built from
/// its bits), where the library's `exp` is a call that, for ages far beyond the
/// window, takes its underflow path and sets `errno`.
///
/// ```
/// use orca_lb_core::exp2_neg;
///
/// assert_eq!(exp2_neg(-3.0), 0.125);
/// assert_eq!(exp2_neg(-2000.0), 0.0);
/// ```
#[inline]
pub fn exp2_neg(y: f64) -> f64 {
    if y.is_nan() {
        return y;
    }
    // Positive arguments are not expected; the library handles them.
    if y > 0.0 {
        return y.exp2();
    }
    exp2_neg_unbranched(y)
}

/// [`exp2_neg`] for `y <= 0` without a branch, so that a loop over many
/// arguments runs without waiting on any (and may be vectorized): the same
/// value for every `y <= 0`, 0 at or below -1022. NaN gives 0, and a
/// positive `y` gives `2^y` only up to 1/2 (its integer part is not
/// taken): callers pass neither.
#[inline]
pub(crate) fn exp2_neg_unbranched(y: f64) -> f64 {
    // Far below, the weight is 0; the arithmetic runs on the clamped
    // value and the select picks 0.
    let clamped = y.max(UNDERFLOW2);
    // k = round(y), in [-1022, 0]; f = y - k is exact. `clamped + ROUND`
    // holds k in the low bits of its mantissa.
    let shifted = clamped + ROUND;
    let k = shifted - ROUND;
    let f = clamped - k;
    // 2^f = exp(f ln 2) by its Taylor series to (f ln 2)^11, with the
    // powers of ln 2 in the coefficients (|f ln 2| <= 0.347: truncation
    // under 7e-15), grouped (Estrin) to shorten the chain of dependent
    // steps.
    let f2 = f * f;
    let f4 = f2 * f2;
    let p01 = 1.0 + f * C[1];
    let p23 = C[2] + f * C[3];
    let p45 = C[4] + f * C[5];
    let p67 = C[6] + f * C[7];
    let p89 = C[8] + f * C[9];
    let p1011 = C[10] + f * C[11];
    let p03 = p01 + f2 * p23;
    let p47 = p45 + f2 * p67;
    let p811 = p89 + f2 * p1011;
    let p = p03 + f4 * (p47 + f4 * p811);
    // 2^k from its exponent bits: k + 1023 is in [1, 1023], and k is the
    // difference of the mantissas of `shifted` and ROUND (integers under
    // 2^51 apart), so no conversion from a float is needed.
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let power = p * f64::from_bits(k_bits.wrapping_add(1023) << 52);
    if y > UNDERFLOW2 { power } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel_err(got: f64, want: f64) -> f64 {
        ((got - want) / want).abs()
    }

    #[test]
    fn within_1e12_of_the_library_exp() {
        let mut worst: (f64, f64) = (0.0, 0.0);
        // A dense grid near 0 (the weights that matter) and a coarser one
        // out to the underflow cutoff.
        let near = (0..200_000).map(|i| -f64::from(i) * 1e-4);
        let far = (0..700_000).map(|i| -f64::from(i) * 1.011e-3);
        for x in near.chain(far) {
            let e = rel_err(exp_neg(x), x.exp());
            if e > worst.1 {
                worst = (x, e);
            }
        }
        assert!(worst.1 < 1e-12, "worst relative error {worst:?}");
        // Within 1e-13 over the ages that weigh anything.
        for i in 0..400_000 {
            let x = -f64::from(i) * 1e-4;
            assert!(rel_err(exp_neg(x), x.exp()) < 1e-13, "{x}");
        }
    }

    #[test]
    fn within_1e13_of_the_library_exp2() {
        let mut worst: (f64, f64) = (0.0, 0.0);
        let grid = (0..1_022_000).map(|i| -f64::from(i) * 1e-3);
        // The edges of each reduction step.
        let edges = (0..1_022).flat_map(|k| {
            let c = -f64::from(k);
            [c + 0.5, c - 0.5, c + 0.5 - 1e-12, c - 0.5 + 1e-12]
        });
        for y in grid.chain(edges) {
            if y > UNDERFLOW2 && y <= 0.0 {
                let e = rel_err(exp2_neg(y), y.exp2());
                if e > worst.1 {
                    worst = (y, e);
                }
            }
        }
        assert!(worst.1 < 1e-13, "worst relative error {worst:?}");
    }

    #[test]
    fn exact_at_zero_zero_far_below_and_nan_through() {
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-0.0), 1.0);
        assert_eq!(exp2_neg(-1.0), 0.5);
        assert_eq!(exp2_neg(UNDERFLOW2), 0.0);
        assert!(UNDERFLOW2.exp2() < 2.3e-308);
        assert_eq!(exp_neg(-708.4), 0.0);
        assert!((-708.4f64).exp() < 2.3e-308);
        assert_eq!(exp_neg(-1e300), 0.0);
        assert_eq!(exp_neg(f64::NEG_INFINITY), 0.0);
        assert!(exp_neg(f64::NAN).is_nan());
        assert_eq!(exp2_neg(0.5), 0.5f64.exp2());
    }

    #[test]
    fn the_unbranched_form_is_the_same_at_and_below_zero() {
        let grid = (0..1_100_000).map(|i| -f64::from(i) * 1e-3);
        let edges = (0..1_023).flat_map(|k| {
            let c = -f64::from(k);
            [c + 0.5, c - 0.5, c + 0.5 - 1e-12, c - 0.5 + 1e-12]
        });
        let ends = [0.0, -0.0, -1022.0, -1e300, f64::NEG_INFINITY];
        for y in grid.chain(edges).filter(|&y| y <= 0.0).chain(ends) {
            assert_eq!(
                exp2_neg_unbranched(y).to_bits(),
                exp2_neg(y).to_bits(),
                "{y}"
            );
        }
        assert_eq!(exp2_neg_unbranched(f64::NAN), 0.0);
    }

    #[test]
    fn never_above_one_and_decreasing() {
        let mut prev = exp_neg(0.0);
        for i in 1..100_000 {
            let y = exp_neg(-f64::from(i) * 1e-5);
            assert!(y <= prev && y <= 1.0, "{i}: {y} after {prev}");
            prev = y;
        }
    }
}
