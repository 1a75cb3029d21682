//! Metric handles of one balancer, registered when it is built.

use metrics::{Histogram, histogram};

use super::TARGET_NAME;

/// Handles for one balancer's own metrics. Label: [`TARGET_NAME`].
#[derive(Debug, Clone)]
pub(crate) struct BalancerMetrics {
    /// `orca_lb_client_call_duration_seconds`: unary calls from the pick to
    /// their status, one sample per call.
    pub(crate) call_duration: Histogram,
}

impl BalancerMetrics {
    pub(crate) fn new(target: &str) -> Self {
        let labels = [(TARGET_NAME, target.to_string())];
        Self {
            call_duration: histogram!("orca_lb_client_call_duration_seconds", &labels),
        }
    }
}
