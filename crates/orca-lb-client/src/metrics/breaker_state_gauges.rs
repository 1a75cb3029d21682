//! The circuit state of one endpoint as one series per state.

use metrics::{Gauge, gauge};
use orca_lb_core::BreakerState;

use super::{ENDPOINT, STATE, TARGET_NAME};

/// `orca_lb_client_breaker_state` of one endpoint: a series per state
/// (label [`STATE`]: `closed`, `open`, `half_open`), 1 on the current state
/// and 0 on the others, so that `sum by (state)` counts endpoints per state.
#[derive(Debug, Clone)]
pub(crate) struct BreakerStateGauges {
    closed: Gauge,
    open: Gauge,
    half_open: Gauge,
}

impl BreakerStateGauges {
    /// Registers the three series, set to Closed: an endpoint's breaker
    /// starts closed.
    pub(crate) fn new(target: &str, endpoint: &str) -> Self {
        let series = |state: &'static str| {
            let labels = [
                (TARGET_NAME, target.to_string()),
                (ENDPOINT, endpoint.to_string()),
                (STATE, state.to_string()),
            ];
            gauge!("orca_lb_client_breaker_state", &labels)
        };
        let gauges = Self {
            closed: series("closed"),
            open: series("open"),
            half_open: series("half_open"),
        };
        gauges.set(BreakerState::Closed);
        gauges
    }

    /// Sets 1 on `state`'s series and 0 on the others.
    pub(crate) fn set(&self, state: BreakerState) {
        let flag = |s: BreakerState| if s == state { 1.0 } else { 0.0 };
        self.closed.set(flag(BreakerState::Closed));
        self.open.set(flag(BreakerState::Open));
        self.half_open.set(flag(BreakerState::HalfOpen));
    }
}
