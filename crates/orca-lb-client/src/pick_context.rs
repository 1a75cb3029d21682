//! What one pick knows beyond the endpoints it compares.

use std::time::Instant;

use orca_lb_core::{FleetView, ScoreConfig};

/// The inputs one pick scores every candidate with: read once per pick, so
/// that each candidate costs only its own endpoint's reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PickContext<'a> {
    /// Whether the call is a stream (scored by its stream cost).
    pub(crate) stream: bool,
    /// The pick's warm-up draw, uniform in `[0, 1)`; 0 once a draw found
    /// only warming endpoints, so that all of them count.
    pub(crate) warm_up: f64,
    /// Whether panic mode ignores the breakers.
    pub(crate) panic: bool,
    /// The fleet medians that stale estimates relax toward.
    pub(crate) fleet: FleetView,
    /// The balancer's score settings.
    pub(crate) score: &'a ScoreConfig,
    /// When the pick happens.
    pub(crate) now: Instant,
}
