use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::{RawLoadReport, named_metrics};

const EPSILON: f64 = 1e-9;

/// An arbitrary origin: only differences between instants matter here.
#[expect(
    clippy::disallowed_methods,
    reason = "tests need some Instant to start from"
)]
fn origin() -> Instant {
    Instant::now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The default breaker, with the utilization threshold these tests were
/// written against (1.5), to keep their report values meaningful. Each
/// report these tests send stands for a new server sample, even when its
/// values repeat (sample interval zero); the tests of repeated samples use
/// the default interval.
fn breaker() -> CircuitBreaker {
    CircuitBreaker::new(CircuitBreakerConfig {
        overload_utilization: 1.5,
        overload_sample_interval: Duration::ZERO,
        ..CircuitBreakerConfig::default()
    })
}

fn report(raw: RawLoadReport) -> LoadReport {
    LoadReport::try_from(raw).expect("test reports are valid")
}

/// A report of `application_utilization` alone.
fn utilization(value: f64) -> LoadReport {
    report(RawLoadReport {
        application_utilization: value,
        ..RawLoadReport::default()
    })
}

/// A report of low application utilization and the given CPU.
fn cpu(value: f64) -> LoadReport {
    report(RawLoadReport {
        application_utilization: 0.5,
        cpu_utilization: value,
        ..RawLoadReport::default()
    })
}

/// A report of low utilization and the given queue depth.
fn queue(depth: f64) -> LoadReport {
    let mut raw = RawLoadReport {
        application_utilization: 0.5,
        cpu_utilization: 0.5,
        ..RawLoadReport::default()
    };
    raw.named_metrics
        .insert(named_metrics::QUEUE_DEPTH.to_owned(), depth);
    report(raw)
}

fn opened(from: BreakerState, reason: OpenReason) -> Option<Transition> {
    Some(Transition {
        from,
        to: BreakerState::Open,
        reason: Some(reason),
    })
}

fn half_opened() -> Option<Transition> {
    Some(Transition {
        from: BreakerState::Open,
        to: BreakerState::HalfOpen,
        reason: None,
    })
}

fn closed() -> Option<Transition> {
    Some(Transition {
        from: BreakerState::HalfOpen,
        to: BreakerState::Closed,
        reason: None,
    })
}

/// Fails `n` calls at `now`, asserting that none opens the breaker.
#[track_caller]
fn fail_without_opening(b: &mut CircuitBreaker, n: u32, now: Instant) {
    for _ in 0..n {
        assert_eq!(b.on_failure(now, true), None);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

/// Opens a Closed breaker with consecutive errors at `now`.
#[track_caller]
fn open_with_errors(b: &mut CircuitBreaker, now: Instant) {
    let n = b.config().consecutive_errors;
    fail_without_opening(b, n - 1, now);
    let t = b.on_failure(now, true);
    assert_eq!(
        t,
        opened(BreakerState::Closed, OpenReason::ConsecutiveErrors(n))
    );
}

/// Wakes an Open breaker at its deadline, returning that deadline.
#[track_caller]
fn wake(b: &mut CircuitBreaker) -> Instant {
    let deadline = b.next_transition().expect("the breaker is open");
    assert_eq!(b.on_deadline(deadline), half_opened());
    deadline
}

/// Sends every probe of a HalfOpen breaker and lets them succeed at `now`.
#[track_caller]
fn pass_probes(b: &mut CircuitBreaker, now: Instant) -> Option<Transition> {
    let probes = b.config().half_open_probes;
    for _ in 0..probes {
        assert!(b.try_acquire_probe());
    }
    for _ in 1..probes {
        assert_eq!(b.on_success(now), None);
    }
    b.on_success(now)
}

#[track_caller]
fn assert_overload(t: Option<Transition>, from: BreakerState, expected: OverloadSignal) {
    let t = t.expect("the breaker opens");
    assert_eq!((t.from, t.to), (from, BreakerState::Open));
    let Some(OpenReason::Overload(signal)) = t.reason else {
        panic!("expected an overload, got {:?}", t.reason);
    };
    let (got, want) = match (signal, expected) {
        (OverloadSignal::Utilization(a), OverloadSignal::Utilization(b))
        | (OverloadSignal::Cpu(a), OverloadSignal::Cpu(b))
        | (OverloadSignal::QueueDepth(a), OverloadSignal::QueueDepth(b)) => (a, b),
        _ => panic!("expected {expected:?}, got {signal:?}"),
    };
    assert!(
        (got - want).abs() < EPSILON,
        "expected {expected:?}, got {signal:?}"
    );
}

// === consecutive errors ===

#[test]
fn a_new_breaker_is_closed() {
    let b = breaker();
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.is_eligible());
    assert_eq!(b.next_transition(), None);
    assert_eq!(b.last_transition(), None);
    assert_eq!(b.ejections(), 0);
    assert_eq!(b.consecutive_errors(), 0);
}

#[test]
fn the_nth_consecutive_error_opens() {
    let t0 = origin();
    let mut b = breaker();
    fail_without_opening(&mut b, 4, t0);
    assert_eq!(b.consecutive_errors(), 4);
    assert!(b.is_eligible());

    let t1 = t0 + ms(10);
    let t = b.on_failure(t1, true);
    assert_eq!(
        t,
        opened(BreakerState::Closed, OpenReason::ConsecutiveErrors(5))
    );
    assert_eq!(b.state(), BreakerState::Open);
    assert!(!b.is_eligible());
    assert_eq!(b.last_transition(), Some((t1, t.unwrap())));
    assert_eq!(b.next_transition(), Some(t1 + secs(1)));
    assert_eq!(b.ejections(), 1);
    assert_eq!(b.consecutive_errors(), 0);
}

#[test]
fn a_success_resets_the_count() {
    let t0 = origin();
    let mut b = breaker();
    fail_without_opening(&mut b, 4, t0);
    assert_eq!(b.on_success(t0), None);
    assert_eq!(b.consecutive_errors(), 0);
    fail_without_opening(&mut b, 4, t0);
    assert_eq!(b.consecutive_errors(), 4);
    assert!(b.on_failure(t0, true).is_some());
}

#[test]
fn a_refused_ejection_stays_closed_and_keeps_counting() {
    let t0 = origin();
    let mut b = breaker();
    fail_without_opening(&mut b, 4, t0);
    for n in 5..=7 {
        assert_eq!(b.on_failure(t0, false), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_errors(), n);
    }
    // Once the budget allows, the next error opens, reporting the full run.
    let t = b.on_failure(t0, true);
    assert_eq!(
        t,
        opened(BreakerState::Closed, OpenReason::ConsecutiveErrors(8))
    );
    assert_eq!(b.ejections(), 1);
}

#[test]
fn outcomes_while_open_are_ignored() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let until = b.next_transition();
    assert_eq!(b.on_success(t0 + ms(1)), None);
    assert_eq!(b.on_failure(t0 + ms(2), true), None);
    assert_eq!(b.on_connect_failure(t0 + ms(3), true), None);
    assert_eq!(b.on_report(&utilization(9.0), t0 + ms(4), true), None);
    assert!(!b.try_acquire_probe());
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.next_transition(), until);
    assert_eq!(b.ejections(), 1);
}

// === deadlines and ejection times ===

#[test]
fn the_deadline_moves_open_to_half_open_not_before() {
    let t0 = origin();
    let mut b = breaker();
    assert_eq!(b.on_deadline(t0), None);
    open_with_errors(&mut b, t0);
    assert_eq!(b.on_deadline(t0 + ms(999)), None);
    assert_eq!(b.state(), BreakerState::Open);
    // A late wake-up works as well as a punctual one.
    assert_eq!(b.on_deadline(t0 + secs(5)), half_opened());
    assert_eq!(
        b.last_transition(),
        Some((t0 + secs(5), half_opened().unwrap()))
    );
    assert_eq!(b.next_transition(), None);
    // A second wake-up does nothing.
    assert_eq!(b.on_deadline(t0 + secs(6)), None);
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn ejection_time_doubles_up_to_the_cap() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let mut opened_at = t0;
    let mut deadlines = Vec::new();
    for _ in 0..7 {
        let deadline = b.next_transition().unwrap();
        deadlines.push(deadline - opened_at);
        assert_eq!(wake(&mut b), deadline);
        assert!(b.try_acquire_probe());
        opened_at = deadline + ms(50);
        assert_eq!(
            b.on_failure(opened_at, false),
            opened(BreakerState::HalfOpen, OpenReason::ProbeFailed)
        );
    }
    let expected: Vec<Duration> = [1, 2, 4, 8, 16, 30, 30].map(secs).into();
    assert_eq!(deadlines, expected);
    assert_eq!(b.ejections(), 8);
}

#[test]
fn ejection_time_formula() {
    let config = CircuitBreakerConfig::default();
    assert_eq!(config.ejection_time(0), secs(1));
    assert_eq!(config.ejection_time(1), secs(1));
    assert_eq!(config.ejection_time(5), secs(16));
    assert_eq!(config.ejection_time(6), secs(30));
    assert_eq!(config.ejection_time(33), secs(30));
    assert_eq!(config.ejection_time(u32::MAX), secs(30));

    let long = CircuitBreakerConfig {
        base_ejection_time: ms(1500),
        max_ejection_time: Duration::MAX,
        ..CircuitBreakerConfig::default()
    };
    assert_eq!(long.ejection_time(3), ms(6000));
    assert_eq!(
        long.ejection_time(u32::MAX),
        CircuitBreakerConfig::EJECTION_TIME_LIMIT
    );
}

#[test]
fn the_streak_resets_after_staying_closed_for_max_ejection_time() {
    let t0 = origin();
    let mut b = breaker();
    // Two ejections in a row: 1 s, then 2 s.
    open_with_errors(&mut b, t0);
    wake(&mut b);
    assert!(b.try_acquire_probe());
    b.on_failure(t0 + secs(1), true);
    let t = wake(&mut b);
    assert_eq!(t, t0 + secs(3));
    assert_eq!(pass_probes(&mut b, t), closed());

    // Closed for just under 30 s: the next ejection is the third in a row.
    let t1 = t + secs(30) - ms(1);
    open_with_errors(&mut b, t1);
    assert_eq!(b.next_transition(), Some(t1 + secs(4)));
    let t = wake(&mut b);
    assert_eq!(pass_probes(&mut b, t), closed());

    // Closed for 30 s: a new incident, back to the base time.
    let t2 = t + secs(30);
    open_with_errors(&mut b, t2);
    assert_eq!(b.next_transition(), Some(t2 + secs(1)));
}

// === half-open probes ===

#[test]
fn half_open_admits_exactly_the_probe_budget_and_closes_after_all_pass() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    for _ in 0..3 {
        assert!(b.is_eligible());
        assert!(b.try_acquire_probe());
    }
    assert!(!b.is_eligible());
    assert!(!b.try_acquire_probe());

    assert_eq!(b.on_success(t + ms(10)), None);
    assert_eq!(b.on_success(t + ms(20)), None);
    // Passed probes do not free slots: the budget is per half-open period.
    assert!(!b.try_acquire_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.on_success(t + ms(30)), closed());
    assert_eq!(b.last_transition(), Some((t + ms(30), closed().unwrap())));
    assert!(b.is_eligible());
    assert_eq!(b.next_transition(), None);
    assert_eq!(b.ejections(), 1);
}

#[test]
fn a_failed_probe_reopens_for_longer() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    assert!(b.try_acquire_probe());
    assert!(b.try_acquire_probe());
    assert_eq!(b.on_success(t + ms(10)), None);
    let t1 = t + ms(20);
    assert_eq!(
        b.on_failure(t1, true),
        opened(BreakerState::HalfOpen, OpenReason::ProbeFailed)
    );
    assert_eq!(b.next_transition(), Some(t1 + secs(2)));
    assert_eq!(b.ejections(), 2);
    // The other probe's late outcome belongs to the last period: ignored.
    assert_eq!(b.on_success(t1 + ms(1)), None);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn outcomes_without_a_probe_in_flight_are_ignored() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    // Calls sent before the breaker opened finish now.
    assert_eq!(b.on_failure(t, true), None);
    assert_eq!(b.on_success(t), None);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    // The budget is untouched.
    assert_eq!(pass_probes(&mut b, t + ms(5)), closed());
}

#[test]
fn a_cancelled_probe_frees_its_slot() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    for _ in 0..3 {
        assert!(b.try_acquire_probe());
    }
    b.on_probe_cancelled();
    assert!(b.is_eligible());
    assert!(b.try_acquire_probe());
    assert!(!b.try_acquire_probe());
    for _ in 0..2 {
        assert_eq!(b.on_success(t), None);
    }
    assert_eq!(b.on_success(t), closed());
    // Outside HalfOpen, or with nothing in flight, it does nothing.
    b.on_probe_cancelled();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn cancelling_every_probe_does_not_get_stuck() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    for _ in 0..3 {
        assert!(b.try_acquire_probe());
    }
    for _ in 0..5 {
        b.on_probe_cancelled();
    }
    assert_eq!(pass_probes(&mut b, t), closed());
}

#[test]
fn a_half_open_failure_reopens_whatever_the_budget_says() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    assert!(b.try_acquire_probe());
    assert_eq!(
        b.on_failure(t, false),
        opened(BreakerState::HalfOpen, OpenReason::ProbeFailed)
    );
}

#[test]
fn try_acquire_probe_is_free_when_closed() {
    let t0 = origin();
    let mut b = breaker();
    for _ in 0..100 {
        assert!(b.try_acquire_probe());
    }
    // Nothing is counted: one error is still one error.
    fail_without_opening(&mut b, 1, t0);
    assert_eq!(b.consecutive_errors(), 1);
}

// === connection failures ===

#[test]
fn a_connect_failure_opens_at_once() {
    let t0 = origin();
    let mut b = breaker();
    assert_eq!(
        b.on_connect_failure(t0, true),
        opened(BreakerState::Closed, OpenReason::ConnectFailed)
    );
    assert_eq!(b.next_transition(), Some(t0 + secs(1)));
}

#[test]
fn a_refused_connect_failure_counts_as_an_error() {
    let t0 = origin();
    let mut b = breaker();
    fail_without_opening(&mut b, 3, t0);
    assert_eq!(b.on_connect_failure(t0, false), None);
    assert_eq!(b.consecutive_errors(), 4);
    assert_eq!(
        b.on_failure(t0, true),
        opened(BreakerState::Closed, OpenReason::ConsecutiveErrors(5))
    );
}

#[test]
fn a_connect_failure_reopens_half_open_even_without_a_probe() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    assert_eq!(
        b.on_connect_failure(t, false),
        opened(BreakerState::HalfOpen, OpenReason::ConnectFailed)
    );
    assert_eq!(b.next_transition(), Some(t + secs(2)));
}

// === overload ===

#[test]
fn one_spike_does_not_open() {
    let t0 = origin();
    let mut b = breaker();
    let mut t = t0;
    for _ in 0..50 {
        assert_eq!(b.on_report(&utilization(0.2), t, true), None);
        t += ms(100);
    }
    // 5.0 against a 1 s average of 0.2, 100 ms later:
    // e^-0.1 * 0.2 + (1 - e^-0.1) * 5.0 = 0.657, below 1.5.
    assert_eq!(b.on_report(&utilization(5.0), t, true), None);
    for _ in 0..50 {
        t += ms(100);
        assert_eq!(b.on_report(&utilization(0.2), t, true), None);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn sustained_overload_opens_with_the_utilization() {
    let t0 = origin();
    let mut b = breaker();
    let mut t = t0;
    for _ in 0..20 {
        assert_eq!(b.on_report(&utilization(0.2), t, true), None);
        t += ms(100);
    }
    // After n reports of 5.0, 100 ms apart: 5 - 4.8 * e^(-0.1 n), which
    // is 0.66, 1.07, 1.44 and then 1.78, above 1.5.
    for _ in 0..3 {
        assert_eq!(b.on_report(&utilization(5.0), t, true), None);
        t += ms(100);
    }
    let transition = b.on_report(&utilization(5.0), t, true);
    let expected = 5.0 - 4.8 * (-0.4_f64).exp();
    assert_overload(
        transition,
        BreakerState::Closed,
        OverloadSignal::Utilization(expected),
    );
    assert_eq!(b.next_transition(), Some(t + secs(1)));
    assert_eq!(b.ejections(), 1);
}

#[test]
fn overload_waits_for_min_reports() {
    let t0 = origin();
    let mut b = breaker();
    assert_eq!(b.on_report(&utilization(5.0), t0, true), None);
    assert_eq!(b.on_report(&utilization(5.0), t0 + ms(1), true), None);
    let t = b.on_report(&utilization(5.0), t0 + ms(2), true);
    assert_overload(t, BreakerState::Closed, OverloadSignal::Utilization(5.0));
}

#[test]
fn one_server_sample_counts_once() {
    let t0 = origin();
    let mut b = CircuitBreaker::new(CircuitBreakerConfig {
        overload_utilization: 1.5,
        ..CircuitBreakerConfig::default()
    });
    // Many responses within a second carry the same once-a-second sample.
    for i in 0..50 {
        assert_eq!(b.on_report(&utilization(5.0), t0 + ms(i * 10), true), None);
    }
    // The next second's sample, with the same value, is a second sample.
    assert_eq!(b.on_report(&utilization(5.0), t0 + ms(1000), true), None);
    assert_eq!(b.on_report(&utilization(5.0), t0 + ms(1500), true), None);
    // A third: now three samples agree.
    let t = b.on_report(&utilization(5.0), t0 + ms(2000), true);
    assert_overload(t, BreakerState::Closed, OverloadSignal::Utilization(5.0));
}

#[test]
fn different_values_are_different_samples() {
    let t0 = origin();
    let mut b = CircuitBreaker::new(CircuitBreakerConfig {
        overload_utilization: 1.5,
        ..CircuitBreakerConfig::default()
    });
    assert_eq!(b.on_report(&utilization(5.0), t0, true), None);
    assert_eq!(b.on_report(&utilization(5.1), t0 + ms(10), true), None);
    let t = b.on_report(&utilization(5.2), t0 + ms(20), true);
    assert!(t.is_some_and(|t| t.to == BreakerState::Open), "{t:?}");
}

#[test]
fn cpu_overload_opens_with_the_cpu() {
    let t0 = origin();
    let mut b = breaker();
    assert_eq!(b.on_report(&cpu(1.0), t0, true), None);
    assert_eq!(b.on_report(&cpu(1.0), t0 + ms(100), true), None);
    let t = b.on_report(&cpu(1.0), t0 + ms(200), true);
    assert_overload(t, BreakerState::Closed, OverloadSignal::Cpu(1.0));
}

#[test]
fn utilization_is_checked_before_cpu() {
    let t0 = origin();
    let mut b = breaker();
    // No application utilization: CPU is the effective utilization too.
    let both = report(RawLoadReport {
        cpu_utilization: 2.0,
        ..RawLoadReport::default()
    });
    b.on_report(&both, t0, true);
    b.on_report(&both, t0, true);
    let t = b.on_report(&both, t0, true);
    assert_overload(t, BreakerState::Closed, OverloadSignal::Utilization(2.0));
}

#[test]
fn unreported_cpu_does_not_count() {
    let t0 = origin();
    let config = CircuitBreakerConfig {
        overload_utilization: f64::INFINITY,
        // Each report a new sample, as in `breaker()`.
        overload_sample_interval: Duration::ZERO,
        ..CircuitBreakerConfig::default()
    };
    let mut b = CircuitBreaker::new(config);
    // cpu_utilization 0 means "not reported": two real CPU samples are not
    // three, however many reports come without one.
    b.on_report(&cpu(1.0), t0, true);
    for _ in 0..10 {
        assert_eq!(b.on_report(&utilization(0.5), t0, true), None);
    }
    assert_eq!(b.on_report(&cpu(1.0), t0, true), None);
    let t = b.on_report(&cpu(1.0), t0, true);
    assert_overload(t, BreakerState::Closed, OverloadSignal::Cpu(1.0));
}

#[test]
fn queue_depth_is_ignored_without_a_threshold() {
    let t0 = origin();
    let mut b = breaker();
    for i in 0..100 {
        assert_eq!(b.on_report(&queue(1000.0), t0 + ms(10 * i), true), None);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn queue_depth_opens_above_its_threshold() {
    let t0 = origin();
    let mut b = CircuitBreaker::new(CircuitBreakerConfig {
        overload_queue_depth: Some(10.0),
        // Each report a new sample, as in `breaker()`.
        overload_sample_interval: Duration::ZERO,
        ..CircuitBreakerConfig::default()
    });
    // At the threshold is not above it.
    for _ in 0..10 {
        assert_eq!(b.on_report(&queue(10.0), t0, true), None);
    }
    // One second later the average keeps e^-1 of the old 10.
    let t = b.on_report(&queue(40.0), t0 + secs(1), true);
    let expected = 40.0 - 30.0 * (-1.0_f64).exp();
    assert_overload(
        t,
        BreakerState::Closed,
        OverloadSignal::QueueDepth(expected),
    );
}

#[test]
fn a_refused_overload_ejection_stays_closed() {
    let t0 = origin();
    let mut b = breaker();
    for i in 0..10 {
        assert_eq!(b.on_report(&utilization(5.0), t0 + ms(i), false), None);
    }
    // The average is still there when the budget allows.
    let t = b.on_report(&utilization(5.0), t0 + ms(10), true);
    assert_overload(t, BreakerState::Closed, OverloadSignal::Utilization(5.0));
}

#[test]
fn overload_does_not_outlive_a_transition() {
    let t0 = origin();
    let mut b = breaker();
    for i in 0..3 {
        b.on_report(&utilization(5.0), t0 + ms(i), true);
    }
    assert_eq!(b.state(), BreakerState::Open);
    let t = wake(&mut b);
    assert_eq!(pass_probes(&mut b, t), closed());

    // An average still holding the 5.0 samples of a second ago would be
    // 5/e + (1 - 1/e) = 2.5 here, above 1.5; a fresh one is 1.0.
    for i in 1..=10 {
        assert_eq!(b.on_report(&utilization(1.0), t + ms(i), true), None);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn an_overloaded_probe_report_keeps_half_open_from_closing() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    for _ in 0..3 {
        assert!(b.try_acquire_probe());
    }
    // One report: too few to open on its own, enough to deny closing.
    assert_eq!(b.on_report(&utilization(3.0), t + ms(5), false), None);
    assert_eq!(b.on_success(t + ms(5)), None);
    assert_eq!(b.on_success(t + ms(6)), None);
    let t1 = t + ms(7);
    let transition = b.on_success(t1);
    assert_overload(
        transition,
        BreakerState::HalfOpen,
        OverloadSignal::Utilization(3.0),
    );
    assert_eq!(b.next_transition(), Some(t1 + secs(2)));
}

#[test]
fn sustained_overload_reopens_half_open_whatever_the_budget_says() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    assert_eq!(b.on_report(&cpu(1.0), t, false), None);
    assert_eq!(b.on_report(&cpu(1.0), t, false), None);
    let transition = b.on_report(&cpu(1.0), t, false);
    assert_overload(transition, BreakerState::HalfOpen, OverloadSignal::Cpu(1.0));
}

#[test]
fn a_healthy_probe_report_lets_half_open_close() {
    let t0 = origin();
    let mut b = breaker();
    open_with_errors(&mut b, t0);
    let t = wake(&mut b);
    assert_eq!(b.on_report(&utilization(1.2), t, true), None);
    assert_eq!(pass_probes(&mut b, t), closed());
}

// === config ===

#[test]
fn the_default_config_is_valid() {
    let config = CircuitBreakerConfig::default();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.consecutive_errors, 5);
    assert_eq!(config.base_ejection_time, secs(1));
    assert_eq!(config.max_ejection_time, secs(30));
    assert_eq!(config.half_open_probes, 3);
    assert_eq!(config.overload_utilization, 3.0);
    assert_eq!(config.overload_cpu, 0.98);
    assert_eq!(config.overload_queue_depth, None);
    assert_eq!(config.overload_decay, secs(1));
    assert_eq!(config.overload_min_reports, 3);
}

#[test]
fn validate_names_the_bad_field() {
    let d = CircuitBreakerConfig::default;
    let cases = [
        (
            CircuitBreakerConfig {
                consecutive_errors: 0,
                ..d()
            },
            "consecutive_errors",
            "consecutive_errors (0) must be at least 1",
        ),
        (
            CircuitBreakerConfig {
                base_ejection_time: Duration::ZERO,
                ..d()
            },
            "base_ejection_time",
            "base_ejection_time (0ns) must be above zero",
        ),
        (
            CircuitBreakerConfig {
                base_ejection_time: secs(2),
                max_ejection_time: secs(1),
                ..d()
            },
            "max_ejection_time",
            "max_ejection_time (1s) is below base_ejection_time (2s)",
        ),
        (
            CircuitBreakerConfig {
                max_ejection_time: secs(86_401),
                ..d()
            },
            "max_ejection_time",
            "max_ejection_time (86401s) is above the limit (86400s)",
        ),
        (
            CircuitBreakerConfig {
                half_open_probes: 0,
                ..d()
            },
            "half_open_probes",
            "half_open_probes (0) must be at least 1",
        ),
        (
            CircuitBreakerConfig {
                overload_utilization: f64::NAN,
                ..d()
            },
            "overload_utilization",
            "overload_utilization (NaN) must be a number above zero",
        ),
        (
            CircuitBreakerConfig {
                overload_cpu: -1.0,
                ..d()
            },
            "overload_cpu",
            "overload_cpu (-1.0) must be a number above zero",
        ),
        (
            CircuitBreakerConfig {
                overload_cpu: 0.0,
                ..d()
            },
            "overload_cpu",
            "overload_cpu (0.0) must be a number above zero",
        ),
        (
            CircuitBreakerConfig {
                overload_queue_depth: Some(f64::NAN),
                ..d()
            },
            "overload_queue_depth",
            "overload_queue_depth (NaN) must be a number above zero",
        ),
        (
            CircuitBreakerConfig {
                overload_queue_depth: Some(-3.0),
                ..d()
            },
            "overload_queue_depth",
            "overload_queue_depth (-3.0) must be a number above zero",
        ),
    ];
    for (config, field, message) in cases {
        let err = config.validate().expect_err(field);
        assert_eq!(err.field(), field);
        assert_eq!(
            err.to_string(),
            format!("invalid circuit breaker config: {message}")
        );
    }
}

#[test]
fn validate_accepts_edge_values() {
    let config = CircuitBreakerConfig {
        consecutive_errors: 1,
        base_ejection_time: Duration::from_nanos(1),
        max_ejection_time: Duration::from_nanos(1),
        half_open_probes: 1,
        overload_utilization: f64::INFINITY,
        overload_cpu: f64::INFINITY,
        overload_queue_depth: Some(f64::MIN_POSITIVE),
        overload_decay: Duration::ZERO,
        overload_min_reports: 0,
        overload_sample_interval: Duration::ZERO,
    };
    assert_eq!(config.validate(), Ok(()));
    let max = CircuitBreakerConfig {
        max_ejection_time: CircuitBreakerConfig::EJECTION_TIME_LIMIT,
        ..CircuitBreakerConfig::default()
    };
    assert_eq!(max.validate(), Ok(()));
}

#[test]
fn invalid_config_is_a_std_error_without_source() {
    let err = CircuitBreakerConfig {
        half_open_probes: 0,
        ..CircuitBreakerConfig::default()
    }
    .validate()
    .unwrap_err();
    let err: &dyn std::error::Error = &err;
    assert!(err.source().is_none());
}

#[test]
#[should_panic(expected = "invalid circuit breaker config: half_open_probes")]
#[cfg(debug_assertions)]
fn an_invalid_config_is_a_bug() {
    CircuitBreaker::new(CircuitBreakerConfig {
        half_open_probes: 0,
        ..CircuitBreakerConfig::default()
    });
}

#[test]
fn states_display_in_lowercase() {
    assert_eq!(BreakerState::Closed.to_string(), "closed");
    assert_eq!(BreakerState::Open.to_string(), "open");
    assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
}

// === invariants ===

/// Checks what must hold in every state.
#[track_caller]
fn assert_invariants(b: &CircuitBreaker) {
    let probes = b.config().half_open_probes;
    match b.phase {
        Phase::Closed { .. } => {
            assert!(b.is_eligible());
            assert_eq!(b.next_transition(), None);
        }
        Phase::Open { until } => {
            assert!(!b.is_eligible());
            assert_eq!(b.next_transition(), Some(until));
            assert_eq!(b.consecutive_errors(), 0);
            let (at, t) = b.last_transition().expect("opened at some point");
            assert_eq!(t.to, BreakerState::Open);
            assert!(t.reason.is_some());
            let time = until - at;
            let config = b.config();
            assert!(config.base_ejection_time <= time && time <= config.max_ejection_time);
            assert_eq!(time, config.ejection_time(b.streak));
        }
        Phase::HalfOpen { in_flight, passed } => {
            assert_eq!(b.next_transition(), None);
            assert_eq!(b.consecutive_errors(), 0);
            assert!(in_flight + passed <= probes);
            assert!(passed < probes);
            assert_eq!(b.is_eligible(), in_flight + passed < probes);
        }
    }
    assert!(b.streak <= b.ejections());
}

#[test]
fn random_events_keep_the_invariants() {
    for seed in 0..200 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let config = CircuitBreakerConfig {
            consecutive_errors: rng.random_range(1..=4),
            half_open_probes: rng.random_range(1..=3),
            base_ejection_time: ms(rng.random_range(1..=1000)),
            max_ejection_time: secs(rng.random_range(1..=8)),
            overload_queue_depth: rng.random_bool(0.5).then_some(5.0),
            overload_min_reports: rng.random_range(0..=3),
            ..CircuitBreakerConfig::default()
        };
        let mut b = CircuitBreaker::new(config);
        let mut now = origin();
        for step in 0..500 {
            now += ms(rng.random_range(0..300));
            let before = (b.state(), b.ejections());
            let may_eject = rng.random_bool(0.7);
            let transition = match rng.random_range(0..9) {
                0 | 1 => b.on_success(now),
                2 | 3 => b.on_failure(now, may_eject),
                4 => b.on_connect_failure(now, may_eject),
                5 => {
                    let mut raw = RawLoadReport {
                        cpu_utilization: rng.random_range(0.0..1.2),
                        application_utilization: rng.random_range(0.0..3.0),
                        ..RawLoadReport::default()
                    };
                    if rng.random_bool(0.5) {
                        raw.named_metrics.insert(
                            named_metrics::QUEUE_DEPTH.to_owned(),
                            rng.random_range(0.0..10.0),
                        );
                    }
                    b.on_report(&report(raw), now, may_eject)
                }
                6 => {
                    let eligible = b.is_eligible();
                    assert_eq!(b.try_acquire_probe(), eligible, "seed {seed} step {step}");
                    None
                }
                7 => {
                    b.on_probe_cancelled();
                    None
                }
                _ => {
                    if let Some(deadline) = b.next_transition() {
                        now = now.max(deadline);
                    }
                    b.on_deadline(now)
                }
            };
            match transition {
                Some(t) => {
                    assert_eq!(t.from, before.0, "seed {seed} step {step}");
                    assert_ne!(t.from, t.to, "seed {seed} step {step}");
                    assert_eq!(t.to, b.state(), "seed {seed} step {step}");
                    assert_eq!(b.last_transition(), Some((now, t)));
                    assert_eq!(t.reason.is_some(), t.to == BreakerState::Open);
                    let opened = u32::from(t.to == BreakerState::Open);
                    assert_eq!(b.ejections(), before.1 + opened);
                }
                None => assert_eq!((b.state(), b.ejections()), before),
            }
            assert_invariants(&b);
        }
    }
}
