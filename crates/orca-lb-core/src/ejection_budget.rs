//! How many endpoints circuit breakers may take out of a set at once.

use crate::InvalidConfig;

/// Limits ejection across an endpoint set, so that breakers reacting to a
/// fleet-wide problem cannot pile the whole load on the few endpoints left.
///
/// Two limits, as in Envoy's outlier detection:
///
/// * [`may_eject`](Self::may_eject) caps how many endpoints are out at once
///   (Envoy's `max_ejection_percent`). Its answer is the `may_eject`
///   argument of the [`CircuitBreaker`](crate::CircuitBreaker) events.
/// * [`is_panic`](Self::is_panic) says when too few endpoints are left to
///   serve, however they got there (ejected, probing, not connected). The
///   balancer then ignores its breakers and balances over every endpoint
///   (Envoy's healthy panic threshold): spreading the load over sick
///   endpoints beats crushing the last healthy one.
///
/// Both are pure functions of counts the balancer keeps.
///
/// ```
/// use orca_lb_core::EjectionBudget;
///
/// let budget = EjectionBudget::default();
/// // Half of 8 endpoints may be out: the fourth may go, not the fifth.
/// assert!(budget.may_eject(3, 8));
/// assert!(!budget.may_eject(4, 8));
/// // Fewer than 34% of 8 (rounded up: 3) eligible: panic.
/// assert!(!budget.is_panic(3, 8));
/// assert!(budget.is_panic(2, 8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EjectionBudget {
    /// The largest fraction of endpoints ejected at once, in `[0, 1]`.
    /// Default 0.5: a breaker may shed half the set, the rest must absorb
    /// its load. One endpoint may always be ejected (out of two or more),
    /// however small the fraction.
    pub max_ejected_fraction: f64,

    /// The fraction of endpoints, in `[0, 1]`, below which the set is in
    /// panic. Default 0.34: a third of the set must still be eligible, or
    /// the balancer stops trusting its breakers. At least one endpoint must
    /// be eligible, however small the fraction.
    pub min_healthy_fraction: f64,
}

// === setters of EjectionBudget ===

impl EjectionBudget {
    /// Sets [`max_ejected_fraction`](Self::max_ejected_fraction).
    #[must_use]
    pub fn with_max_ejected_fraction(mut self, max_ejected_fraction: f64) -> Self {
        self.max_ejected_fraction = max_ejected_fraction;
        self
    }

    /// Sets [`min_healthy_fraction`](Self::min_healthy_fraction).
    #[must_use]
    pub fn with_min_healthy_fraction(mut self, min_healthy_fraction: f64) -> Self {
        self.min_healthy_fraction = min_healthy_fraction;
        self
    }
}

// === impl EjectionBudget ===

impl EjectionBudget {
    /// Name used in [`InvalidConfig`] messages.
    const NAME: &'static str = "ejection budget";

    /// Checks that both fractions are numbers in `[0, 1]`.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let fractions = [
            ("max_ejected_fraction", self.max_ejected_fraction),
            ("min_healthy_fraction", self.min_healthy_fraction),
        ];
        for (field, fraction) in fractions {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(InvalidConfig::new(
                    Self::NAME,
                    field,
                    fraction,
                    "must be a number in [0, 1]",
                ));
            }
        }
        Ok(())
    }

    /// Whether one more of `total` endpoints may be ejected while `ejected`
    /// already are.
    ///
    /// True iff `total >= 2`, `ejected + 1 < total` and
    /// `ejected + 1 <= max(1, floor(max_ejected_fraction * total))`. The
    /// last endpoint is never ejected: a single endpoint that fails still
    /// serves better than none, and an ejection would only turn its errors
    /// into "no endpoint" errors.
    pub fn may_eject(&self, ejected: usize, total: usize) -> bool {
        let limit = scale(self.max_ejected_fraction, total).floor() as usize;
        total >= 2 && ejected < total - 1 && ejected < limit.max(1)
    }

    /// Whether too few of `total` endpoints are `eligible`: true iff
    /// `total > 0` and `eligible < max(1, ceil(min_healthy_fraction * total))`.
    ///
    /// In panic the balancer picks among all endpoints, ejected ones
    /// included, until enough are eligible again.
    pub fn is_panic(&self, eligible: usize, total: usize) -> bool {
        let threshold = scale(self.min_healthy_fraction, total).ceil() as usize;
        total > 0 && eligible < threshold.max(1)
    }
}

impl Default for EjectionBudget {
    fn default() -> Self {
        Self {
            max_ejected_fraction: 0.5,
            min_healthy_fraction: 0.34,
        }
    }
}

/// `fraction * total`, snapped to the nearest integer when within rounding
/// error of it, so that 0.7 of 10 is 7 (not 7.000000000000001, which `ceil`
/// would make 8) and the limits match the decimal fractions users write.
fn scale(fraction: f64, total: usize) -> f64 {
    let exact = fraction * total as f64;
    let nearest = exact.round();
    if (exact - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(EjectionBudget::default().validate(), Ok(()));
    }

    #[test]
    fn may_eject_with_the_default_half() {
        let budget = EjectionBudget::default();
        // (total, largest `ejected` that may still eject one more)
        let cases: [(usize, Option<usize>); 5] = [
            (1, None),
            (2, Some(0)),
            (3, Some(0)),
            (8, Some(3)),
            (100, Some(49)),
        ];
        for (total, last_allowed) in cases {
            for ejected in 0..=total {
                let expected = last_allowed.is_some_and(|last| ejected <= last);
                assert_eq!(
                    budget.may_eject(ejected, total),
                    expected,
                    "ejected {ejected} of {total}"
                );
            }
        }
    }

    #[test]
    fn never_ejects_the_last_endpoint() {
        let budget = EjectionBudget {
            max_ejected_fraction: 1.0,
            ..EjectionBudget::default()
        };
        assert!(!budget.may_eject(0, 1));
        assert!(budget.may_eject(0, 2));
        assert!(!budget.may_eject(1, 2));
        assert!(budget.may_eject(6, 8));
        assert!(!budget.may_eject(7, 8));
        assert!(!budget.may_eject(0, 0));
    }

    #[test]
    fn one_may_always_be_ejected_out_of_two_or_more() {
        let budget = EjectionBudget {
            max_ejected_fraction: 0.0,
            ..EjectionBudget::default()
        };
        for total in [2, 3, 8, 100] {
            assert!(budget.may_eject(0, total), "total {total}");
            assert!(!budget.may_eject(1, total), "total {total}");
        }
    }

    #[test]
    fn more_ejected_than_total_refuses() {
        let budget = EjectionBudget::default();
        assert!(!budget.may_eject(9, 8));
        assert!(!budget.may_eject(usize::MAX, 8));
    }

    #[test]
    fn is_panic_with_the_default_third() {
        let budget = EjectionBudget::default();
        // (total, fewest eligible endpoints that are not panic)
        let cases = [(1, 1), (2, 1), (3, 2), (8, 3), (100, 34)];
        for (total, threshold) in cases {
            for eligible in 0..=total {
                assert_eq!(
                    budget.is_panic(eligible, total),
                    eligible < threshold,
                    "eligible {eligible} of {total}"
                );
            }
        }
    }

    #[test]
    fn an_empty_set_is_not_in_panic() {
        let budget = EjectionBudget {
            min_healthy_fraction: 1.0,
            ..EjectionBudget::default()
        };
        assert!(!budget.is_panic(0, 0));
    }

    #[test]
    fn one_eligible_endpoint_is_required_however_small_the_fraction() {
        let budget = EjectionBudget {
            min_healthy_fraction: 0.0,
            ..EjectionBudget::default()
        };
        assert!(budget.is_panic(0, 100));
        assert!(!budget.is_panic(1, 100));
    }

    #[test]
    fn fractions_round_as_written() {
        // 0.7 * 10.0 is 7.000000000000001 in f64.
        let budget = EjectionBudget {
            max_ejected_fraction: 0.7,
            min_healthy_fraction: 0.7,
        };
        assert!(!budget.is_panic(7, 10));
        assert!(budget.is_panic(6, 10));
        assert!(budget.may_eject(6, 10));
        assert!(!budget.may_eject(7, 10));
    }

    #[test]
    fn validate_refuses_fractions_outside_zero_to_one() {
        let cases = [
            ("max_ejected_fraction", f64::NAN, "NaN"),
            ("max_ejected_fraction", -0.1, "-0.1"),
            ("min_healthy_fraction", 1.5, "1.5"),
            ("min_healthy_fraction", f64::INFINITY, "inf"),
        ];
        for (field, value, shown) in cases {
            let mut budget = EjectionBudget::default();
            match field {
                "max_ejected_fraction" => budget.max_ejected_fraction = value,
                _ => budget.min_healthy_fraction = value,
            }
            let err = budget.validate().expect_err(field);
            assert_eq!(err.field(), field);
            assert_eq!(
                err.to_string(),
                format!("invalid ejection budget: {field} ({shown}) must be a number in [0, 1]")
            );
        }
        for edge in [0.0, 1.0] {
            let budget = EjectionBudget {
                max_ejected_fraction: edge,
                min_healthy_fraction: edge,
            };
            assert_eq!(budget.validate(), Ok(()));
        }
    }
}
