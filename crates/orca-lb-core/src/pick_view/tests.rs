use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::{CircuitBreakerConfig, EndpointPolicy, Outcome, RawLoadReport, named_metrics};

#[expect(
    clippy::disallowed_methods,
    reason = "tests need one real instant to offset from"
)]
fn t0() -> Instant {
    Instant::now()
}

/// A report with each optional field present or not at random.
fn report(rng: &mut SmallRng) -> crate::LoadReport {
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
fn fed(rng: &mut SmallRng, score: &ScoreConfig, t: Instant) -> (EndpointPolicy, Instant) {
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

fn close(a: Option<Score>, b: Option<Score>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (a, b) = (a.seconds(), b.seconds());
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-15
        }
        _ => false,
    }
}

#[test]
fn scores_as_the_candidate_view_does() {
    let t = t0();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut compared = 0;
    for case in 0..3_000 {
        let score = ScoreConfig {
            slow_start: if case % 3 == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(3)
            },
            ..ScoreConfig::default()
        };
        let (policy, last) = fed(&mut rng, &score, t);
        let view = policy.view();
        // From its creation, or (as a balancer does) from an earlier origin
        // shared by all endpoints.
        let origin = if case % 2 == 0 {
            t
        } else {
            t.checked_sub(Duration::from_secs(3_600)).unwrap_or(t)
        };
        let prepared = view.prepare(&score, origin);
        assert_eq!(
            PickView::from_words(prepared.origin(), prepared.to_words()),
            prepared
        );
        if case % 2 == 0 {
            assert_eq!(policy.pick_view(&score), prepared);
        }
        assert_eq!(prepared.eligible(), view.eligible);
        for _ in 0..20 {
            // From before the last event (clock skew between threads) to
            // long after it, when every weight has underflowed.
            let now = match rng.random_range(0..4) {
                0 => last.checked_sub(Duration::from_millis(5)).unwrap_or(last),
                1 => last + Duration::from_micros(rng.random_range(0..100_000)),
                2 => last + Duration::from_millis(rng.random_range(0..20_000)),
                _ => last + Duration::from_secs(rng.random_range(0..5_000)),
            };
            let in_flight = rng.random_range(0..4);
            let local = LocalLoad {
                in_flight,
                streams: rng.random_range(0..3),
                in_flight_since: (in_flight > 0)
                    .then(|| now.checked_sub(Duration::from_millis(rng.random_range(0..300))))
                    .flatten(),
            };
            let pick = PickContext {
                stream: rng.random_bool(0.2),
                warm_up: rng.random_range(0.0..1.0),
                panic: rng.random_bool(0.1),
                fleet: FleetView {
                    service_time: rng.random_range(0.001..0.05),
                    backlog: rng.random_range(0.0..5.0),
                    streams: rng.random_range(0.0..3.0),
                },
                score: &score,
                now,
            };
            let (want, got) = (view.score(local, &pick), prepared.score(local, &pick));
            let time = PickTime::new(
                &PickSettings::new(&score),
                PickView::seconds_since(origin, now),
            );
            assert_eq!(prepared.score_at(&time, local, &pick), got);
            // The words a pick does not read, left 0, change nothing.
            let mut words = prepared.to_words();
            let read = PickView::words_read(words[0], pick.stream);
            words[read..].fill(0);
            let partial = PickView::from_words(prepared.origin(), words);
            assert_eq!(partial.score_at(&time, local, &pick), got);
            assert!(
                close(want, got),
                "case {case}: {want:?} against {got:?}\n{view:?}\n{local:?} {pick:?}"
            );
            compared += usize::from(want.is_some());
        }
    }
    assert!(compared > 30_000, "{compared}");
}

#[test]
fn a_batch_scores_as_one_by_one_bit_for_bit() {
    let t = t0();
    let mut rng = SmallRng::seed_from_u64(12);
    let score = ScoreConfig::default();
    let settings = PickSettings::new(&score);
    let origin = t.checked_sub(Duration::from_secs(3_600)).unwrap_or(t);
    let mut compared = 0;
    for _ in 0..2_000 {
        let n = rng.random_range(0..=crate::MAX_CHOICES);
        let fed: Vec<_> = (0..n).map(|_| fed(&mut rng, &score, t)).collect();
        let last = fed.iter().map(|&(_, at)| at).max().unwrap_or(t);
        let views: Vec<PickView> = fed
            .iter()
            .map(|(p, _)| p.view().prepare(&score, origin))
            .collect();
        let now = last + Duration::from_micros(rng.random_range(0..3_000_000));
        let locals: Vec<LocalLoad> = (0..n)
            .map(|_| {
                let in_flight = rng.random_range(0..4);
                LocalLoad {
                    in_flight,
                    streams: 0,
                    in_flight_since: (in_flight > 0)
                        .then(|| now.checked_sub(Duration::from_millis(rng.random_range(0..300))))
                        .flatten(),
                }
            })
            .collect();
        let pick = PickContext {
            stream: false,
            warm_up: rng.random_range(0.0..1.0),
            panic: rng.random_bool(0.1),
            fleet: FleetView {
                service_time: rng.random_range(0.001..0.05),
                backlog: rng.random_range(0.0..5.0),
                streams: 0.0,
            },
            score: &score,
            now,
        };
        let time = PickTime::new(&settings, PickView::seconds_since(origin, now));
        let mut batch = crate::CostBatch::new();
        for (i, view) in views.iter().enumerate() {
            batch.push(i, view.unary_cost(&time, locals[i], &pick));
        }
        let mut together = crate::DrawnScores::new();
        batch.scores(&time, &mut together);
        let one_by_one: Vec<(usize, u64)> = views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.score_at(&time, locals[i], &pick)
                    .map(|s| (i, s.seconds().to_bits()))
            })
            .collect();
        let together: Vec<(usize, u64)> = together
            .as_slice()
            .iter()
            .map(|&(i, s)| (i, s.seconds().to_bits()))
            .collect();
        assert_eq!(together, one_by_one);
        compared += together.len();
    }
    assert!(compared > 3_000, "{compared}");
}
