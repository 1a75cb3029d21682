//! Metric handles of one balancer, registered when it is built.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::TARGET_NAME;

/// Handles for one balancer's own metrics. Label: [`TARGET_NAME`].
#[derive(Debug, Clone)]
pub(crate) struct BalancerMetrics {
    /// `orca_lb_client_call_duration_seconds`: unary calls from the pick to
    /// their status, one sample per call.
    pub(crate) call_duration: Histogram,
    /// `orca_lb_client_hand_backs_total`: calls a busy server handed back
    /// unserved and the balancer sent to another endpoint.
    pub(crate) hand_backs: Counter,
    /// `orca_lb_client_zone_spill`: the share of picks sent outside the
    /// local zone; registered with locality on only.
    pub(crate) zone_spill: Option<Gauge>,
}

impl BalancerMetrics {
    pub(crate) fn new(target: &str, locality: bool) -> Self {
        let labels = [(TARGET_NAME, target.to_string())];
        Self {
            call_duration: histogram!("orca_lb_client_call_duration_seconds", &labels),
            hand_backs: counter!("orca_lb_client_hand_backs_total", &labels),
            zone_spill: locality.then(|| gauge!("orca_lb_client_zone_spill", &labels)),
        }
    }
}
