//! Endpoints fed random histories, for tests that compare ways of scoring
//! them.

use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::SmallRng;

use crate::{
    CircuitBreakerConfig, EndpointPolicy, FleetView, LocalLoad, Outcome, PickContext,
    RawLoadReport, ScoreConfig, named_metrics,
};

#[expect(
    clippy::disallowed_methods,
    reason = "tests need one real instant to offset from"
)]
pub(crate) fn t0() -> Instant {
    Instant::now()
}

/// A unary pick at `now` with a random fleet and draws.
pub(crate) fn random_pick<'a>(
    rng: &mut SmallRng,
    score: &'a ScoreConfig,
    now: Instant,
) -> PickContext<'a> {
    PickContext {
        stream: false,
        warm_up: rng.random_range(0.0..1.0),
        panic: rng.random_bool(0.1),
        fleet: FleetView {
            service_time: rng.random_range(0.001..0.05),
            backlog: rng.random_range(0.0..5.0),
            streams: rng.random_range(0.0..3.0),
        },
        score,
        now,
    }
}

/// A report with each optional field present or not at random.
pub(crate) fn report(rng: &mut SmallRng) -> crate::LoadReport {
    let mut raw = RawLoadReport {
        application_utilization: rng.random_range(0.0..1.0),
        rps_fractional: 100.0,
        ..Default::default()
    };
    let mut put = |rng: &mut SmallRng, name: &str, v: f64| {
        if rng.random_bool(0.8) {
            raw.named_metrics.insert(name.into(), v);
        }
    };
    let service = rng.random_range(0.5..80.0);
    put(rng, named_metrics::SERVICE_TIME_MS, service);
    let in_flight = rng.random_range(0.0..12.0);
    put(rng, named_metrics::IN_FLIGHT, in_flight);
    let streams = rng.random_range(0.0..4.0);
    put(rng, named_metrics::ACTIVE_STREAMS, streams);
    let capacity = rng.random_range(1.0..8.0);
    put(rng, named_metrics::CAPACITY, capacity);
    crate::LoadReport::try_from(raw).unwrap()
}

/// An endpoint fed a random history from `t`, and the time of its last
/// event.
pub(crate) fn fed(
    rng: &mut SmallRng,
    score: &ScoreConfig,
    t: Instant,
) -> (EndpointPolicy, Instant) {
    let breaker = CircuitBreakerConfig {
        consecutive_errors: 3,
        ..CircuitBreakerConfig::default()
    };
    let mut p = EndpointPolicy::new(score, breaker, t);
    let mut now = t;
    let events = rng.random_range(0..40);
    for _ in 0..events {
        now += Duration::from_micros(rng.random_range(0..400_000));
        match rng.random_range(0..10) {
            0..4 => {
                let r = report(rng);
                let local = LocalLoad {
                    in_flight: rng.random_range(0..3),
                    streams: rng.random_range(0..2),
                    in_flight_since: None,
                };
                p.on_report(&r, local, true, now);
            }
            4..8 => {
                let latency = Duration::from_micros(rng.random_range(100..200_000));
                p.on_outcome(Outcome::Success, Some(latency), false, true, now);
            }
            8 => {
                p.on_outcome(Outcome::Failure, None, false, true, now);
            }
            _ => {
                p.on_deadline(now);
                p.admit(false);
            }
        }
    }
    (p, now)
}

/// The default score settings, but every third case without slow start.
pub(crate) fn score_config(case: usize) -> ScoreConfig {
    ScoreConfig {
        slow_start: if case.is_multiple_of(3) {
            Duration::ZERO
        } else {
            Duration::from_secs(3)
        },
        ..ScoreConfig::default()
    }
}
