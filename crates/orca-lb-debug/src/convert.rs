//! Balancer snapshots as `orca_lb.debug.v1` messages.

use std::time::Duration;

use orca_lb_client::{BalancerSnapshot, EndpointSnapshot, HealthState};
use orca_lb_core::{BreakerState, OpenReason, OverloadSignal};

use crate::pb;

/// The message for the balancer registered as `name`.
pub fn balancer(name: &str, snapshot: &BalancerSnapshot) -> pb::Balancer {
    pb::Balancer {
        name: name.to_string(),
        target: snapshot.target.clone(),
        panic: snapshot.panic,
        ejected: u32::try_from(snapshot.ejected).unwrap_or(u32::MAX),
        endpoints: snapshot.endpoints.iter().map(endpoint).collect(),
        local_zone: snapshot
            .local_zone
            .as_ref()
            .map_or_else(String::new, |z| z.to_string()),
        spill: snapshot.spill,
    }
}

/// The message for one endpoint.
pub fn endpoint(e: &EndpointSnapshot) -> pb::Endpoint {
    pb::Endpoint {
        key: e.key.clone(),
        address: e.uri.clone(),
        zone: e.zone.as_ref().map_or_else(String::new, |z| z.to_string()),
        state: endpoint_state(e).into(),
        eligible: e.eligible,
        health: e
            .health
            .map_or(pb::EndpointHealth::Unspecified, health)
            .into(),
        score: Some(pb::Score {
            total_seconds: e.cost.total().seconds(),
            service_time_seconds: e.cost.service_time,
            backlog: e.cost.backlog,
            capacity: e.cost.capacity,
            completion_seconds: e.cost.completion,
            failure_seconds: e.cost.failure,
            base_seconds: e.cost.base,
            freshness: e.cost.freshness,
        }),
        signals: Some(pb::Signals {
            service_time_seconds: e.service_time,
            backlog: e.backlog,
            others_streams: e.others_streams,
            capacity: e.capacity,
            utilization: e.utilization,
            cpu: e.cpu,
            queue_depth: e.queue_depth,
            report_age: e.report_age.map(duration),
            reports: e.reports,
            invalid_reports: e.invalid_reports,
            latency_seconds: e.latency,
            response_age: e.response_age.map(duration),
            error_rate: e.error_rate,
            responses: e.responses,
        }),
        in_flight: e.in_flight,
        streams: e.streams,
        recent_picks: e.recent_picks,
        recent_failures: e.recent_failures,
        ring_share: e.ring_share,
        keyed_calls: e.keyed_calls,
        passed_on: e.passed_on,
        circuit: Some(pb::Circuit {
            state: circuit_state(e.breaker).into(),
            ejections: e.ejections,
            last_transition: e.last_transition.map(|(age, to, reason)| pb::Transition {
                to: circuit_state(to).into(),
                age: Some(duration(age)),
                reason: reason.map(open_reason),
            }),
        }),
    }
}

/// The one word a display shows for an endpoint, from the first that
/// applies:
///
/// 1. `Draining`: discovery removed it; calls in flight finish.
/// 2. `Ejected`: its circuit is open.
/// 3. `HalfOpen`: its circuit lets probe calls through.
/// 4. `Connecting`: circuit closed, and nothing heard from it yet: no report
///    taken in and no call answered. Whether its connection works is not
///    known (tonic channels connect lazily and do not expose their state).
/// 5. `Ready`: otherwise.
pub fn endpoint_state(e: &EndpointSnapshot) -> pb::EndpointState {
    if e.draining {
        return pb::EndpointState::Draining;
    }
    match e.breaker {
        BreakerState::Open => pb::EndpointState::Ejected,
        BreakerState::HalfOpen => pb::EndpointState::HalfOpen,
        BreakerState::Closed if e.reports == 0 && e.responses == 0 => pb::EndpointState::Connecting,
        BreakerState::Closed => pb::EndpointState::Ready,
    }
}

/// The message for an endpoint's health state.
pub fn health(h: HealthState) -> pb::EndpointHealth {
    match h {
        HealthState::Unknown => pb::EndpointHealth::Unknown,
        HealthState::Serving => pb::EndpointHealth::Serving,
        HealthState::NotServing => pb::EndpointHealth::NotServing,
        HealthState::Unimplemented => pb::EndpointHealth::Unimplemented,
    }
}

/// The message for a breaker state.
pub fn circuit_state(s: BreakerState) -> pb::CircuitState {
    match s {
        BreakerState::Closed => pb::CircuitState::Closed,
        BreakerState::Open => pb::CircuitState::Open,
        BreakerState::HalfOpen => pb::CircuitState::HalfOpen,
    }
}

/// The message for why a breaker opened.
pub fn open_reason(reason: OpenReason) -> pb::OpenReason {
    use pb::open_reason::Kind;
    let (kind, value) = match reason {
        OpenReason::ConsecutiveErrors(n) => (Kind::ConsecutiveErrors, Some(f64::from(n))),
        OpenReason::Overload(OverloadSignal::Utilization(v)) => {
            (Kind::OverloadUtilization, Some(v))
        }
        OpenReason::Overload(OverloadSignal::Cpu(v)) => (Kind::OverloadCpu, Some(v)),
        OpenReason::Overload(OverloadSignal::QueueDepth(v)) => (Kind::OverloadQueueDepth, Some(v)),
        OpenReason::ProbeFailed => (Kind::ProbeFailed, None),
        OpenReason::ConnectFailed => (Kind::ConnectFailed, None),
    };
    pb::OpenReason {
        kind: kind.into(),
        value,
    }
}

/// A protobuf duration; saturates past `i64::MAX` seconds.
fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    })
}
