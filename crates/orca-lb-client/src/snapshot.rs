//! What a balancer knows and decided, for debugging and display.

use std::time::{Duration, Instant};

use orca_lb_core::{BreakerState, CostTerms, OpenReason, Zone};

use crate::HealthState;
use crate::shared::Shared;

/// The span of the recent pick and failure counts.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// One balancer at one instant.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Calls a busy server handed back unserved and the balancer sent to
    /// another endpoint (see
    /// [`BalancerConfig::hand_backs`](crate::BalancerConfig::hand_backs)),
    /// since the balancer started.
    pub hand_backs: u64,
    /// The client's own zone, with locality on (see
    /// [`BalancerConfig::locality`](crate::BalancerConfig::locality)).
    pub local_zone: Option<Zone>,
    /// The share of picks sent outside the local zone now, 0 to 1 (0 with
    /// locality off).
    pub spill: f64,
    /// Every endpoint, in key order, then those discovery removed that still
    /// carry calls (`draining`), in the order they were removed.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// One endpoint at one instant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointSnapshot {
    /// Its key in the endpoint set.
    pub key: String,
    /// Its address.
    pub uri: String,
    /// The zone discovery placed it in, if any.
    pub zone: Option<Zone>,
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
    /// What its health stream last said; `None` with health checking off
    /// (see [`HealthCheck`](crate::HealthCheck)). Only a pickable state
    /// ([`HealthState::is_pickable`]) lets picks choose it.
    pub health: Option<HealthState>,
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
    /// Its share of the affinity ring, 0 to 1: the share of keys whose
    /// first choice it is (0 with affinity off, and while draining).
    pub ring_share: f64,
    /// Calls sent here by their affinity key, since it was added.
    pub keyed_calls: u64,
    /// Keyed calls whose first choice was here and that went to another
    /// endpoint because this one was at or over the load bound, since it
    /// was added.
    pub passed_on: u64,
}

impl BalancerSnapshot {
    pub(crate) fn take(shared: &Shared, now: Instant) -> Self {
        let (list, _) = shared.set.list();
        let fleet = shared.fleet();
        let draining = shared.set.draining();
        let mut endpoints: Vec<EndpointSnapshot> = list
            .iter()
            .chain(draining.iter())
            .map(|ep| ep.snapshot(&fleet, &shared.config.score, now))
            .collect();
        if let Some(ring) = list.ring() {
            for (i, e) in endpoints.iter_mut().take(list.len()).enumerate() {
                e.ring_share = ring.share(i);
            }
        }
        BalancerSnapshot {
            target: shared.config.target.clone(),
            panic: shared.set.is_panic(),
            ejected: shared.set.ejected(),
            repicks: shared.repick.total(),
            hand_backs: shared.hand_backs(),
            local_zone: shared
                .config
                .locality
                .as_ref()
                .map(|l| l.local_zone.clone()),
            spill: shared.spill(),
            endpoints,
        }
    }
}
