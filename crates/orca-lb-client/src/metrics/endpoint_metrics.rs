//! Metric handles of one endpoint, registered once when it is added.

use metrics::{Counter, Gauge, counter, gauge};

use super::breaker_state_gauges::BreakerStateGauges;
use super::{ENDPOINT, STATE, TARGET_NAME};
use crate::HealthState;

/// Handles for one endpoint's metrics. Labels: [`TARGET_NAME`] (the
/// balancer) and [`ENDPOINT`] (its key).
#[derive(Debug, Clone)]
pub(crate) struct EndpointMetrics {
    pub(crate) picks: Counter,
    pub(crate) failures: Counter,
    pub(crate) ejections: Counter,
    pub(crate) invalid_reports: Counter,
    pub(crate) reports: Counter,
    pub(crate) oob_reports_dropped: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) score: Gauge,
    pub(crate) breaker_state: BreakerStateGauges,
    /// Health state changes, one counter per state entered (label
    /// [`STATE`]); registered with health checking on only.
    health_changes: Option<[Counter; 4]>,
    /// Keyed calls whose first choice was this endpoint and that went
    /// elsewhere because of the load bound; registered with affinity on only.
    pub(crate) passed_on: Option<Counter>,
}

impl EndpointMetrics {
    pub(crate) fn new(target: &str, endpoint: &str, health_checked: bool, affinity: bool) -> Self {
        let labels = [
            (TARGET_NAME, target.to_string()),
            (ENDPOINT, endpoint.to_string()),
        ];
        Self {
            picks: counter!("orca_lb_client_picks_total", &labels),
            failures: counter!("orca_lb_client_failures_total", &labels),
            ejections: counter!("orca_lb_client_ejections_total", &labels),
            invalid_reports: counter!("orca_lb_client_invalid_reports_total", &labels),
            reports: counter!("orca_lb_client_reports_total", &labels),
            oob_reports_dropped: counter!("orca_lb_client_oob_reports_dropped_total", &labels),
            in_flight: gauge!("orca_lb_client_in_flight", &labels),
            score: gauge!("orca_lb_client_score_seconds", &labels),
            breaker_state: BreakerStateGauges::new(target, endpoint),
            passed_on: affinity
                .then(|| counter!("orca_lb_client_affinity_passed_on_total", &labels)),
            health_changes: health_checked.then(|| {
                HealthState::ALL.map(|state| {
                    counter!(
                        "orca_lb_client_health_changes_total",
                        TARGET_NAME => target.to_string(),
                        ENDPOINT => endpoint.to_string(),
                        STATE => state.label()
                    )
                })
            }),
        }
    }

    /// Counts a change of the endpoint's health to `state`.
    pub(crate) fn on_health_change(&self, state: HealthState) {
        let index = HealthState::ALL.iter().position(|s| *s == state);
        if let (Some(counters), Some(i)) = (&self.health_changes, index) {
            counters[i].increment(1);
        }
    }
}
