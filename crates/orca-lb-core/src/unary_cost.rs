//! What a unary pick makes of one candidate.

use crate::CostInputs;

/// One candidate of a unary pick, before its cost is computed (see
/// [`PickView::unary_cost`](crate::PickView::unary_cost)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryCost {
    /// The pick passes it over: its breaker admits no call, or it is
    /// warming up and the pick's warm-up draw left it out.
    PassOver,
    /// A probe goes to it first: its breaker is HalfOpen with a probe to
    /// spare. Scored 0.
    Probe,
    /// Its cost is computed from these.
    Compute(CostInputs),
}
