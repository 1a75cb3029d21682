//! What a balancer knows and decided, for debugging and display.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use orca_lb_core::{BreakerState, CostTerms, OpenReason};

use crate::shared::Shared;

/// The span of the recent pick and failure counts.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// One balancer at one instant.
#[derive(Debug, Clone)]
pub struct BalancerSnapshot {
    /// The balancer's target name.
    pub target: String,
    /// Whether the balancer ignores ejections because too few endpoints remain.
    pub panic: bool,
    /// Endpoints whose breaker is not Closed.
    pub ejected: usize,
    /// Calls sent to a second endpoint because the first attempt never
    /// reached a server (transparent re-picks), since the balancer started.
    pub repicks: u64,
    /// Every endpoint, in key order, then those discovery removed that still
    /// carry calls (`draining`), in the order they were removed.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// One endpoint at one instant.
#[derive(Debug, Clone)]
pub struct EndpointSnapshot {
    /// Its key in the endpoint set.
    pub key: String,
    /// Its address.
    pub uri: String,
    /// Its breaker's state.
    pub breaker: BreakerState,
    /// Why and when the breaker last changed state, if it ever did.
    pub last_transition: Option<(Duration, BreakerState, Option<OpenReason>)>,
    /// How many times it was ejected.
    pub ejections: u32,
    /// Whether picks may choose it now.
    pub eligible: bool,
    /// The cost of a unary call now, term by term.
    pub cost: CostTerms,
    /// Smoothed reported utilization, CPU and queue depth.
    pub utilization: Option<f64>,
    /// Smoothed reported CPU utilization.
    pub cpu: Option<f64>,
    /// Smoothed reported queue depth.
    pub queue_depth: Option<f64>,
    /// Age of the last report.
    pub report_age: Option<Duration>,
    /// Valid reports taken in.
    pub reports: u64,
    /// Reports ignored because they could not be decoded, were out of range,
    /// or (out of band) were larger than `oob_max_message_size`.
    pub invalid_reports: u64,
    /// Out-of-band reports dropped for arriving sooner than
    /// `oob_min_spacing` after the last one taken in.
    pub oob_reports_dropped: u64,
    /// This client's unary calls in flight on it.
    pub in_flight: u32,
    /// This client's open streams on it.
    pub streams: u32,
    /// Calls sent to it in the last 10 seconds.
    pub recent_picks: u64,
    /// Failed calls in the last 10 seconds.
    pub recent_failures: u64,
    /// Whether discovery removed it: calls in flight finish, no new ones.
    pub draining: bool,
    /// Responses observed, successes and failures.
    pub responses: u64,
    /// Smoothed reported service time, seconds.
    pub service_time: Option<f64>,
    /// Smoothed reported number of other clients' unary calls on it.
    pub backlog: Option<f64>,
    /// Smoothed reported number of other clients' streams on it.
    pub others_streams: Option<f64>,
    /// Reported worker slots.
    pub capacity: Option<f64>,
    /// Observed latency (peak EWMA, seconds) as of the last response.
    pub latency: Option<f64>,
    /// Age of the last observed response (of `latency` and `error_rate`).
    pub response_age: Option<Duration>,
    /// Recent failure rate, 0 to 1, now.
    pub error_rate: f64,
}

impl BalancerSnapshot {
    pub(crate) fn take(shared: &Shared, now: Instant) -> Self {
        let (list, _) = shared.list();
        let fleet = shared.fleet();
        let draining = shared.draining();
        let endpoints = list
            .iter()
            .chain(draining.iter())
            .map(|ep| {
                let core = ep.core.lock();
                let local = ep.local(now);
                let picks = ep.picks_total.load(Relaxed);
                let failures = ep.failures_total.load(Relaxed);
                let state = core.policy.state();
                let estimate = state.estimate();
                // An endpoint younger than the window has all its calls in
                // it, those before the first maintenance tick included.
                let young = now.saturating_duration_since(estimate.created) <= WINDOW;
                let (old_picks, old_failures) = match core.history.front() {
                    Some(&(_, p, f)) if !young => (p, f),
                    _ => (0, 0),
                };
                EndpointSnapshot {
                    key: ep.key.clone(),
                    uri: ep.uri.to_string(),
                    breaker: core.policy.breaker().state(),
                    last_transition: core
                        .policy
                        .breaker()
                        .last_transition()
                        .map(|(at, t)| (now.saturating_duration_since(at), t.to, t.reason)),
                    ejections: core.policy.breaker().ejections(),
                    eligible: ep.is_eligible(),
                    cost: core.policy.state().estimate().terms(
                        local,
                        &fleet,
                        &shared.config.score,
                        now,
                    ),
                    utilization: core.policy.state().utilization(),
                    cpu: core.policy.state().cpu(),
                    queue_depth: core.policy.state().queue_depth(),
                    report_age: core.policy.state().report_age(now),
                    reports: core.policy.state().reports(),
                    invalid_reports: ep.invalid_reports.load(Relaxed),
                    oob_reports_dropped: ep.oob_reports_dropped.load(Relaxed),
                    in_flight: local.in_flight,
                    streams: local.streams,
                    recent_picks: picks - old_picks,
                    recent_failures: failures - old_failures,
                    draining: ep.draining.load(Relaxed),
                    responses: state.responses(),
                    service_time: estimate.service_time,
                    backlog: estimate.backlog,
                    others_streams: estimate.streams,
                    capacity: estimate.capacity,
                    latency: estimate.latency,
                    response_age: estimate
                        .latency_at
                        .map(|t| now.saturating_duration_since(t)),
                    error_rate: estimate.errors.value_at(now),
                }
            })
            .collect();
        BalancerSnapshot {
            target: shared.config.target.clone(),
            panic: shared.is_panic(),
            ejected: shared.ejected(),
            repicks: shared.repick.total(),
            endpoints,
        }
    }
}
