//! The state as JSON, for scripts (`orca-lb state --json | jq`).

use serde_json::{Value, json};

use super::{circuit_word, health_words, state_word, std_duration};
use crate::pb;

/// `state` as a JSON value. Field names are those of `debug.proto`; enums
/// are the words the table shows (`ready`, `half-open`, `consecutive_errors`);
/// durations are seconds, in fields ending in `_seconds`; absent values are
/// `null`.
pub fn json(state: &pb::State) -> Value {
    json!({ "balancers": state.balancers.iter().map(balancer).collect::<Vec<_>>() })
}

fn balancer(b: &pb::Balancer) -> Value {
    json!({
        "name": b.name,
        "target": b.target,
        "panic": b.panic,
        "ejected": b.ejected,
        "local_zone": (!b.local_zone.is_empty()).then_some(&b.local_zone),
        "spill": b.spill,
        "endpoints": b.endpoints.iter().map(endpoint).collect::<Vec<_>>(),
    })
}

fn endpoint(e: &pb::Endpoint) -> Value {
    json!({
        "key": e.key,
        "address": e.address,
        "zone": (!e.zone.is_empty()).then_some(&e.zone),
        "state": state_word(e.state),
        "eligible": e.eligible,
        "health": health_words(e.health),
        "score": e.score.as_ref().map(score),
        "signals": e.signals.as_ref().map(signals),
        "in_flight": e.in_flight,
        "streams": e.streams,
        "recent_picks": e.recent_picks,
        "recent_failures": e.recent_failures,
        "ring_share": e.ring_share,
        "keyed_calls": e.keyed_calls,
        "passed_on": e.passed_on,
        "circuit": e.circuit.as_ref().map(circuit),
    })
}

fn score(s: &pb::Score) -> Value {
    json!({
        "total_seconds": s.total_seconds,
        "service_time_seconds": s.service_time_seconds,
        "backlog": s.backlog,
        "capacity": s.capacity,
        "completion_seconds": s.completion_seconds,
        "failure_seconds": s.failure_seconds,
        "base_seconds": s.base_seconds,
        "freshness": s.freshness,
    })
}

fn signals(s: &pb::Signals) -> Value {
    json!({
        "service_time_seconds": s.service_time_seconds,
        "backlog": s.backlog,
        "others_streams": s.others_streams,
        "capacity": s.capacity,
        "utilization": s.utilization,
        "cpu": s.cpu,
        "queue_depth": s.queue_depth,
        "report_age_seconds": s.report_age.as_ref().map(seconds),
        "reports": s.reports,
        "invalid_reports": s.invalid_reports,
        "latency_seconds": s.latency_seconds,
        "response_age_seconds": s.response_age.as_ref().map(seconds),
        "error_rate": s.error_rate,
        "responses": s.responses,
    })
}

fn circuit(c: &pb::Circuit) -> Value {
    json!({
        "state": circuit_word(c.state),
        "ejections": c.ejections,
        "last_transition": c.last_transition.as_ref().map(|t| json!({
            "to": circuit_word(t.to),
            "age_seconds": t.age.as_ref().map(seconds),
            "reason": t.reason.as_ref().map(reason),
        })),
    })
}

fn reason(r: &pb::OpenReason) -> Value {
    use pb::open_reason::Kind;
    let kind = match Kind::try_from(r.kind) {
        Ok(Kind::ConsecutiveErrors) => "consecutive_errors",
        Ok(Kind::OverloadUtilization) => "overload_utilization",
        Ok(Kind::OverloadCpu) => "overload_cpu",
        Ok(Kind::OverloadQueueDepth) => "overload_queue_depth",
        Ok(Kind::ProbeFailed) => "probe_failed",
        Ok(Kind::ConnectFailed) => "connect_failed",
        Ok(Kind::Unspecified) | Err(_) => "unknown",
    };
    json!({ "kind": kind, "value": r.value })
}

fn seconds(d: &prost_types::Duration) -> f64 {
    std_duration(d).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_null_and_enums_are_words() {
        let state = pb::State {
            balancers: vec![pb::Balancer {
                name: "b".into(),
                endpoints: vec![pb::Endpoint {
                    key: "k".into(),
                    state: pb::EndpointState::Connecting.into(),
                    signals: Some(pb::Signals {
                        cpu: Some(0.25),
                        report_age: Some(prost_types::Duration {
                            seconds: 1,
                            nanos: 500_000_000,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let v = json(&state);
        let e = &v["balancers"][0]["endpoints"][0];
        assert_eq!(e["state"], "connecting");
        assert_eq!(e["signals"]["cpu"], 0.25);
        assert_eq!(e["signals"]["utilization"], Value::Null);
        assert_eq!(e["signals"]["report_age_seconds"], 1.5);
        assert_eq!(e["circuit"], Value::Null);
    }
}
