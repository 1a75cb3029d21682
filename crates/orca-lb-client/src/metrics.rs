//! The client's metrics, recorded through the `metrics` facade: their
//! descriptions, and the handles a balancer and each endpoint register once
//! and record into. Names, labels and HELP texts are listed in
//! `docs/observability.md`.
//!
//! Label names are the names of the `tracing` fields that carry the same
//! values, so that a series and the log lines about it are found by the same
//! name: [`TARGET_NAME`], [`ENDPOINT`].

mod balancer_metrics;
mod breaker_state_gauges;
mod descriptions;
mod endpoint_metrics;

pub(crate) use balancer_metrics::BalancerMetrics;
pub(crate) use descriptions::describe;
pub(crate) use endpoint_metrics::EndpointMetrics;

/// The label naming the balancer (its `BalancerConfig::target`), as its log
/// lines name it (`target` itself is taken by `tracing`).
pub(crate) const TARGET_NAME: &str = "target_name";

/// The label naming an endpoint by its key, as log lines name it.
pub(crate) const ENDPOINT: &str = "endpoint";

/// The label of `orca_lb_client_breaker_state` naming the state a series
/// stands for (`closed`, `open` or `half_open`), and of
/// `orca_lb_client_health_changes_total` naming the health state entered.
pub(crate) const STATE: &str = "state";
