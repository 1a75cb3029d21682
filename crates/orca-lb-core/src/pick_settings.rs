//! The score settings in the units a pick's arithmetic uses.

use std::f64::consts::LOG2_E;

use crate::ScoreConfig;

/// The score settings a [`PickView`](crate::PickView) is scored with, in
/// the units its arithmetic uses: seconds, and the decay rates
/// `log2(e) / window` of the windows that do not depend on the endpoint.
/// Worked out once from a [`ScoreConfig`] (a balancer keeps one), not per
/// pick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickSettings {
    /// `log2(e)` over [`ScoreConfig::stale_after`], 1/seconds: the rate at
    /// which reported values and observed latency lose their weight.
    pub(crate) stale_rate: f64,
    /// `log2(e)` over the error rate's decay time
    /// ([`ScoreConfig::error_decay`], at least 1 ms, as
    /// [`ErrorRate`](crate::ErrorRate) takes it), 1/seconds.
    pub(crate) error_rate: f64,
    /// [`ScoreConfig::stale_after`], seconds.
    pub(crate) stale_after: f64,
    /// The error rate's decay time, seconds (see `error_rate`).
    pub(crate) error_decay: f64,
    /// [`ScoreConfig::error_penalty`], seconds.
    pub(crate) error_penalty: f64,
    /// [`ScoreConfig::base_latency`], seconds.
    pub(crate) base: f64,
    /// [`ScoreConfig::slow_start`], seconds.
    pub(crate) slow_start: f64,
    /// [`ScoreConfig::backlog_stale_services`].
    pub(crate) backlog_stale_services: f64,
    /// [`ScoreConfig::contention`].
    pub(crate) contention: f64,
}

impl PickSettings {
    /// The settings of `config`.
    pub fn new(config: &ScoreConfig) -> Self {
        Self {
            stale_rate: LOG2_E / config.stale_after.as_secs_f64(),
            error_rate: LOG2_E / config.error_decay.as_secs_f64().max(1e-3),
            stale_after: config.stale_after.as_secs_f64(),
            error_decay: config.error_decay.as_secs_f64().max(1e-3),
            error_penalty: config.error_penalty.as_secs_f64(),
            base: config.base_latency.as_secs_f64(),
            slow_start: config.slow_start.as_secs_f64(),
            backlog_stale_services: config.backlog_stale_services,
            contention: config.contention,
        }
    }
}
