//! What one pick knows beyond the endpoints it compares.

use std::time::Instant;

use crate::{FleetView, ScoreConfig};

/// The inputs one pick scores every candidate with (see
/// [`CandidateView::score`](crate::CandidateView::score)): read once per
/// pick, so that each candidate costs only its own endpoint's reads. The
/// balancer and the simulator build one per pick.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// Whether the call is a stream (scored by its stream cost).
    pub stream: bool,
    /// The pick's warm-up draw, uniform in `[0, 1)`; 0 once a draw found
    /// only warming endpoints, so that all of them count.
    pub warm_up: f64,
    /// Whether panic mode ignores the breakers.
    pub panic: bool,
    /// The fleet medians that stale estimates relax toward.
    pub fleet: FleetView,
    /// The balancer's score settings.
    pub score: &'a ScoreConfig,
    /// When the pick happens.
    pub now: Instant,
}
