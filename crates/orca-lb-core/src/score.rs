//! The comparable cost of sending a call to an endpoint.

use std::cmp::Ordering;
use std::fmt;

/// What a call is expected to cost on one endpoint, in seconds: lower is
/// better.
///
/// Built only from finite, non-negative values (anything else becomes
/// [`Score::MAX`]), so scores are totally ordered.
#[derive(Clone, Copy, PartialEq, Default)]
pub struct Score(f64);

impl Score {
    /// No cost.
    pub const ZERO: Score = Score(0.0);
    /// The highest cost: worse than any finite estimate.
    pub const MAX: Score = Score(f64::MAX);

    /// A score of `seconds`. NaN, infinite or huge values become
    /// [`Score::MAX`]; negative values become zero.
    #[inline]
    pub fn new(seconds: f64) -> Score {
        if seconds.is_nan() || seconds >= f64::MAX {
            Score::MAX
        } else {
            Score(seconds.max(0.0))
        }
    }

    /// The cost in seconds.
    #[inline]
    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl fmt::Debug for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Score({:.6}s)", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_ordered_safely() {
        assert_eq!(Score::new(f64::NAN), Score::MAX);
        assert_eq!(Score::new(f64::INFINITY), Score::MAX);
        assert_eq!(Score::new(-1.0), Score::ZERO);
        assert!(Score::new(0.5) < Score::new(0.6));
        assert!(Score::new(1e300) < Score::MAX);
    }
}
