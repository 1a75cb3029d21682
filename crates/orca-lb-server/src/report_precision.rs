//! How precisely reports carry the layer's own estimates.

/// Significant bits kept: a relative step of 1/256, so a value is off by at
/// most 0.2 %.
const KEPT_BITS: u32 = 8;

/// Mantissa bits of an `f64` dropped to keep [`KEPT_BITS`].
const DROPPED_BITS: u32 = f64::MANTISSA_DIGITS - 1 - KEPT_BITS;

/// `v` rounded to the nearest value with [`KEPT_BITS`] significant bits.
///
/// The layer's estimates (the rates over the window, the busy fraction, the
/// service-time average) move a little with every call, far less than they
/// mean anything, so an exact report would be new on almost every call.
/// Rounded, successive calls on a steady server send the same report: the
/// layer reuses the value it encoded last, and HTTP/2 can send a value it has
/// seen as an index into its header table instead of the text (see
/// `trailer`). Every reader takes the rounded value as it would the exact
/// one; none of them can tell a difference of 0.2 %.
///
/// Zero stays zero and a positive value stays positive, as proto3 and gRPC's
/// weighted round robin tell "not reported" by zero. Counts are never
/// rounded: integers below 512 are exact anyway, and the values the
/// application sets are sent as set.
pub(crate) fn round_estimate(v: f64) -> f64 {
    if !v.is_finite() {
        return v;
    }
    // Adding half the last kept bit to the bit pattern rounds the magnitude
    // to nearest (a carry moves into the exponent, as it should), and
    // clearing the dropped bits truncates; the sign bit is left alone.
    let half = 1u64 << (DROPPED_BITS - 1);
    let dropped = (1u64 << DROPPED_BITS) - 1;
    f64::from_bits((v.to_bits() + half) & !dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_within_a_fifth_of_a_percent() {
        for v in [1e-4, 0.1, 0.2, 0.37, 1.0, 3.3, 12.5, 999.9, 48_123.4, 1e9] {
            let r = round_estimate(v);
            assert!(((r - v) / v).abs() <= 1.0 / 512.0, "{v} became {r}");
            assert_eq!(round_estimate(r), r, "{v}: rounding is idempotent");
        }
    }

    #[test]
    fn nearby_values_round_alike_and_zero_stays_zero() {
        assert_eq!(round_estimate(48_123.4), round_estimate(48_130.0));
        assert_eq!(round_estimate(0.0), 0.0);
        assert!(round_estimate(f64::MIN_POSITIVE) > 0.0);
        assert_eq!(round_estimate(-3.3), -round_estimate(3.3));
        // Small integers and halves are exact.
        for v in [1.0, 7.0, 64.0, 511.0, 0.5, 2.5] {
            assert_eq!(round_estimate(v), v);
        }
        // Rounding up into the next power of two.
        assert_eq!(round_estimate(1.999_9), 2.0);
        assert!(round_estimate(f64::NAN).is_nan());
    }
}
