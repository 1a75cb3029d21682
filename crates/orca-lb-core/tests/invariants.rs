//! Properties of the core's building blocks, checked over generated inputs:
//! the averages stay within their samples, a pick never lands on an
//! ineligible endpoint, the circuit breaker only makes the transitions its
//! state machine allows, and report validation accepts exactly the values in
//! range and gives them back unchanged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use orca_lb_core::{
    BreakerState, CircuitBreaker, CircuitBreakerConfig, Ewma, Field, LoadReport, MAX_CHOICES,
    OpenReason, P2c, PeakEwma, RawLoadReport, RetryBudget, Score, Transition, distinct_pair,
    named_metrics,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// One fixed origin for every generated time: the tests are about
/// differences, and the core never reads a clock itself.
fn origin() -> Instant {
    #[allow(
        clippy::disallowed_methods,
        reason = "tests need one real instant as an origin"
    )]
    Instant::now()
}

/// Samples with the gaps between them, in milliseconds.
fn timed_samples() -> impl Strategy<Value = Vec<(u64, f64)>> {
    prop::collection::vec((0u64..5_000, 0.0f64..1e6), 1..60)
}

proptest! {
    /// Whatever the spacing, a time-decayed average is a convex combination
    /// of its samples: never below the smallest, never above the largest.
    #[test]
    fn an_ewma_stays_within_its_samples(
        decay_ms in 1u64..60_000,
        samples in timed_samples(),
    ) {
        let mut now = origin();
        let mut avg = Ewma::new(Duration::from_millis(decay_ms));
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (gap, x) in samples {
            now += Duration::from_millis(gap);
            avg.observe(x, now);
            lo = lo.min(x);
            hi = hi.max(x);
            let v = avg.value().expect("a value after a sample");
            prop_assert!(v.is_finite());
            // Relative slack for rounding in the blend.
            let slack = 1e-9 * hi.abs().max(1.0);
            prop_assert!(v >= lo - slack && v <= hi + slack, "{v} outside [{lo}, {hi}]");
        }
    }

    /// A peak EWMA jumps to any sample above its estimate, decays toward
    /// zero when idle, and never exceeds the largest sample.
    #[test]
    fn a_peak_ewma_takes_peaks_and_never_exceeds_them(
        decay_ms in 1u64..60_000,
        samples in timed_samples(),
        idle_ms in 0u64..600_000,
    ) {
        let mut now = origin();
        let mut est = PeakEwma::new(Duration::from_millis(decay_ms));
        let mut hi = f64::NEG_INFINITY;
        for (gap, x) in samples {
            now += Duration::from_millis(gap);
            let before = est.last_value();
            est.observe(x, now);
            hi = hi.max(x);
            let v = est.last_value().expect("a value after a sample");
            if before.is_none_or(|b| x > b) {
                prop_assert_eq!(v, x, "a peak becomes the estimate");
            }
            prop_assert!(v <= hi * (1.0 + 1e-12) + 1e-12, "{v} above the peak {hi}");
            prop_assert!(v >= 0.0);
        }
        let last = est.last_value().unwrap();
        let later = est.value_at(now + Duration::from_millis(idle_ms)).unwrap();
        prop_assert!(later <= last && later >= 0.0, "idle decay went from {last} to {later}");
    }

    /// Two distinct indices, both in range.
    #[test]
    fn distinct_pairs_are_distinct_and_in_range(len in 2usize..1_000, seed: u64) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (a, b) = distinct_pair(&mut rng, len);
        prop_assert!(a != b && a < len && b < len);
    }

    /// P2C returns an eligible candidate whenever one exists, never an
    /// ineligible one, and `None` only when none is eligible.
    #[test]
    fn a_pick_is_eligible_and_found_whenever_one_is(
        scores in prop::collection::vec(prop::option::weighted(0.3, 0.0f64..10.0), 0..64),
        tolerance in 0.0f64..1.0,
        seed: u64,
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let p2c = P2c::with_tie_tolerance(tolerance);
        let picked = p2c.pick(&mut rng, scores.len(), |i| scores[i].map(Score::new));
        let any = scores.iter().any(Option::is_some);
        match picked {
            Some(i) => prop_assert!(scores[i].is_some(), "picked ineligible {i} of {scores:?}"),
            None => prop_assert!(!any, "nothing picked from {scores:?}"),
        }
    }

    /// With no tie tolerance, the pick is never the worse of the two drawn
    /// when the pair differs: over many picks between one cheap and one dear
    /// candidate, the dear one is never chosen.
    #[test]
    fn without_tolerance_the_dearer_of_two_never_wins(
        cheap in 0.0f64..1.0,
        extra in 1e-6f64..1.0,
        seed: u64,
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let p2c = P2c::with_tie_tolerance(0.0);
        let scores = [Score::new(cheap), Score::new(cheap + extra)];
        for _ in 0..32 {
            prop_assert_eq!(p2c.pick(&mut rng, 2, |i| Some(scores[i])), Some(0));
        }
    }

    /// Best of k returns an eligible candidate whenever one exists, never an
    /// ineligible one, and `None` only when none is eligible, for any k.
    #[test]
    fn a_best_of_k_pick_is_eligible_and_found_whenever_one_is(
        scores in prop::collection::vec(prop::option::weighted(0.3, 0.0f64..10.0), 0..200),
        k in 0usize..12,
        tolerance in 0.0f64..1.0,
        seed: u64,
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let picker = P2c::with_tie_tolerance(tolerance);
        let picked = picker.pick_best_of(&mut rng, scores.len(), k, |i| scores[i].map(Score::new));
        let any = scores.iter().any(Option::is_some);
        match picked {
            Some(i) => prop_assert!(scores[i].is_some(), "picked ineligible {i} of {scores:?}"),
            None => prop_assert!(!any, "nothing picked from {scores:?}"),
        }
    }

    /// When k covers every candidate and no score is within the tolerance
    /// of the least, the least eligible one is always picked.
    #[test]
    fn best_of_k_picks_the_least_when_k_covers_the_fleet(
        mut scores in prop::collection::vec(prop::option::weighted(0.7, 1.0f64..100.0), 1..=MAX_CHOICES),
        extra_k in 0usize..4,
        seed: u64,
    ) {
        // Spread the eligible scores apart by more than the tolerance.
        let mut rank = 0.0;
        for s in scores.iter_mut().flatten() {
            *s += rank;
            rank += 1_000.0;
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let picker = P2c::with_tie_tolerance(0.05);
        let k = (scores.len() + extra_k).max(3);
        let least = scores
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        for _ in 0..8 {
            prop_assert_eq!(picker.pick_best_of(&mut rng, scores.len(), k, |i| scores[i].map(Score::new)), least);
        }
    }

    /// Best of k below the fleet's size: the pick is the least of some k
    /// candidates, so at most `len - k` eligible candidates are cheaper
    /// (no tolerance, all eligible, distinct scores).
    #[test]
    fn best_of_k_beats_all_but_len_minus_k(
        len in 9usize..300,
        k in 3usize..=MAX_CHOICES,
        seed: u64,
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let picker = P2c::new();
        // Score i is i: the rank of the pick is its index.
        let picked = picker.pick_best_of(&mut rng, len, k, |i| Some(Score::new(i as f64))).unwrap();
        prop_assert!(picked <= len - k, "picked {picked} of {len} with k {k}");
    }

    /// A retry budget's allowance never falls below its minimum, grows with
    /// the calls, and never exceeds the ratio's share beyond the minimum.
    #[test]
    fn a_retry_budget_allows_its_share_or_its_minimum(
        ratio in 0.0f64..=1.0,
        min in 0u32..100,
        calls in 0u64..10_000_000,
        more in 0u64..1_000,
    ) {
        let budget = RetryBudget::default()
.with_ratio(ratio)
.with_min_per_window(min)
.with_window(Duration::from_secs(10));
        prop_assert!(budget.validate().is_ok());
        let a = budget.allowance(calls);
        prop_assert!(a >= u64::from(min));
        prop_assert!(a <= u64::from(min).max((ratio * calls as f64) as u64));
        prop_assert!(budget.allowance(calls + more) >= a);
    }
}

// --- the circuit breaker's state machine ---

/// What can happen to a breaker.
#[derive(Debug, Clone)]
enum Event {
    Advance(u64),
    Acquire,
    Cancel,
    Success,
    Failure { may_eject: bool },
    ConnectFailure { may_eject: bool },
    Report { utilization: f64, may_eject: bool },
    Deadline,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u64..70_000).prop_map(Event::Advance),
        Just(Event::Acquire),
        Just(Event::Cancel),
        Just(Event::Success),
        any::<bool>().prop_map(|may_eject| Event::Failure { may_eject }),
        any::<bool>().prop_map(|may_eject| Event::ConnectFailure { may_eject }),
        (0.0f64..8.0, any::<bool>()).prop_map(|(utilization, may_eject)| Event::Report {
            utilization,
            may_eject
        }),
        Just(Event::Deadline),
    ]
}

fn utilization_report(utilization: f64) -> LoadReport {
    LoadReport::try_from(RawLoadReport {
        application_utilization: utilization,
        ..RawLoadReport::default()
    })
    .expect("a valid report")
}

/// The transitions the breaker's state machine allows, and why.
fn allowed(t: &Transition, event: &Event) -> bool {
    use BreakerState::*;
    match (t.from, t.to) {
        // Opening: from errors, refused connections or overload (Closed),
        // or a failed probe, refused connection or overload (HalfOpen).
        (Closed, Open) => matches!(
            (event, t.reason),
            (
                Event::Failure { may_eject: true },
                Some(OpenReason::ConsecutiveErrors(_))
            ) | (
                Event::ConnectFailure { may_eject: true },
                Some(OpenReason::ConnectFailed)
            ) | (
                Event::Report {
                    may_eject: true,
                    ..
                },
                Some(OpenReason::Overload(_))
            )
        ),
        (HalfOpen, Open) => matches!(
            (event, t.reason),
            (Event::Failure { .. }, Some(OpenReason::ProbeFailed))
                | (
                    Event::ConnectFailure { .. },
                    Some(OpenReason::ConnectFailed)
                )
                | (
                    Event::Report { .. } | Event::Success,
                    Some(OpenReason::Overload(_))
                )
        ),
        // The ejection ends only when woken at or after its deadline.
        (Open, HalfOpen) => matches!(event, Event::Deadline) && t.reason.is_none(),
        // Closing only on the last passed probe.
        (HalfOpen, Closed) => matches!(event, Event::Success) && t.reason.is_none(),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Driven by any sequence of events, the breaker makes only allowed
    /// transitions, reports each one it makes, counts every opening, and
    /// keeps its eligibility and deadline consistent with its state.
    #[test]
    fn the_breaker_makes_only_allowed_transitions(
        events in prop::collection::vec(event(), 1..200),
        consecutive_errors in 1u32..8,
        half_open_probes in 1u32..5,
        min_reports in 1u32..5,
    ) {
        let config = CircuitBreakerConfig::default()
.with_consecutive_errors(consecutive_errors)
.with_half_open_probes(half_open_probes)
.with_overload_min_reports(min_reports)
.with_overload_sample_interval(Duration::ZERO);
        prop_assert!(config.validate().is_ok());
        let mut breaker = CircuitBreaker::new(config);
        let mut now = origin();
        let mut ejections = 0;
        for event in &events {
            let before = breaker.state();
            let deadline = breaker.next_transition();
            let t = match *event {
                Event::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    None
                }
                Event::Acquire => {
                    let eligible = breaker.is_eligible();
                    prop_assert_eq!(breaker.try_acquire_probe(), eligible);
                    None
                }
                Event::Cancel => {
                    breaker.on_probe_cancelled();
                    None
                }
                Event::Success => breaker.on_success(now),
                Event::Failure { may_eject } => breaker.on_failure(now, may_eject),
                Event::ConnectFailure { may_eject } => breaker.on_connect_failure(now, may_eject),
                Event::Report { utilization, may_eject } => {
                    breaker.on_report(&utilization_report(utilization), now, may_eject)
                }
                Event::Deadline => breaker.on_deadline(now),
            };
            let after = breaker.state();
            match t {
                Some(t) => {
                    prop_assert_eq!(t.from, before);
                    prop_assert_eq!(t.to, after);
                    prop_assert!(t.from != t.to, "a transition to the same state: {t:?}");
                    prop_assert!(allowed(&t, event), "{t:?} on {event:?}");
                    prop_assert_eq!(t.reason.is_some(), t.to == BreakerState::Open);
                    if t.to == BreakerState::Open {
                        ejections += 1;
                    }
                    if t.from == BreakerState::Open {
                        prop_assert!(deadline.is_some_and(|d| now >= d), "left Open before its deadline");
                    }
                    prop_assert_eq!(breaker.last_transition(), Some((now, t)));
                }
                None => prop_assert_eq!(before, after, "a silent change on {:?}", event),
            }
            prop_assert_eq!(breaker.ejections(), ejections);
            match after {
                BreakerState::Closed => {
                    prop_assert!(breaker.is_eligible());
                    prop_assert_eq!(breaker.next_transition(), None);
                }
                BreakerState::Open => {
                    prop_assert!(!breaker.is_eligible());
                    let until = breaker.next_transition();
                    prop_assert!(until.is_some(), "Open without a deadline");
                    let max = breaker.config().max_ejection_time;
                    prop_assert!(until.unwrap() <= now + max, "an ejection beyond the maximum");
                }
                BreakerState::HalfOpen => prop_assert_eq!(breaker.next_transition(), None),
            }
        }
    }
}

// --- report validation ---

/// Any f64, with the special values and the edges of each range likely.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(1.0 + f64::EPSILON),
        Just(-f64::MIN_POSITIVE),
        -2.0f64..3.0,
        any::<f64>(),
    ]
}

/// Mostly values in `valid`, sometimes anything: a report is refused if any
/// one value is out of range, so reports in range must stay common enough
/// to test what validation lets through.
fn mostly(valid: std::ops::RangeInclusive<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![12 => valid, 1 => any_value()]
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(named_metrics::ALL.to_vec()).prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

fn value_map(valid: std::ops::RangeInclusive<f64>) -> impl Strategy<Value = HashMap<String, f64>> {
    prop::collection::hash_map(names(), mostly(valid), 0..4)
}

const FRACTION: std::ops::RangeInclusive<f64> = 0.0..=1.0;
const NON_NEGATIVE: std::ops::RangeInclusive<f64> = 0.0..=1e9;

prop_compose! {
    fn raw_report()(
        cpu in mostly(NON_NEGATIVE),
        mem in mostly(FRACTION),
        rps in any::<u64>(),
        request_cost in value_map(NON_NEGATIVE),
        utilization in value_map(FRACTION),
        rps_fractional in mostly(NON_NEGATIVE),
        eps in mostly(NON_NEGATIVE),
        named_metrics in value_map(-1e9..=1e9),
        app in mostly(NON_NEGATIVE),
    ) -> RawLoadReport {
        RawLoadReport {
            cpu_utilization: cpu,
            mem_utilization: mem,
            rps,
            request_cost,
            utilization,
            rps_fractional,
            eps,
            named_metrics,
            application_utilization: app,
        }
    }
}

/// Whether `value` is in range for `field`, written out from the field
/// rules in `RawLoadReport`'s docs rather than from `Field::check`.
fn in_range(field: Field<'_>, value: f64) -> bool {
    if !value.is_finite() {
        return false;
    }
    match field {
        Field::MemUtilization | Field::Utilization(_) => (0.0..=1.0).contains(&value),
        Field::NamedMetric(name) => !named_metrics::is_known(name) || value >= 0.0,
        _ => value >= 0.0,
    }
}

fn all_in_range(raw: &RawLoadReport) -> bool {
    in_range(Field::CpuUtilization, raw.cpu_utilization)
        && in_range(Field::MemUtilization, raw.mem_utilization)
        && in_range(Field::RpsFractional, raw.rps_fractional)
        && in_range(Field::Eps, raw.eps)
        && in_range(Field::ApplicationUtilization, raw.application_utilization)
        && raw
            .request_cost
            .iter()
            .all(|(k, &v)| in_range(Field::RequestCost(k), v))
        && raw
            .utilization
            .iter()
            .all(|(k, &v)| in_range(Field::Utilization(k), v))
        && raw
            .named_metrics
            .iter()
            .all(|(k, &v)| in_range(Field::NamedMetric(k), v))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Validation accepts a report exactly when every value is in range;
    /// an accepted report converts back unchanged, and a refused one names
    /// a value that is out of range.
    #[test]
    fn validation_accepts_exactly_the_reports_in_range(raw in raw_report()) {
        let expected = all_in_range(&raw);
        match LoadReport::try_from(raw.clone()) {
            Ok(report) => {
                prop_assert!(expected, "accepted {raw:?}");
                let back = RawLoadReport::from(report);
                // NaN never gets here, so equality is exact.
                prop_assert_eq!(back, raw);
            }
            Err(err) => {
                prop_assert!(!expected, "refused a valid report: {err}");
                let v = err.value();
                prop_assert!(
                    !(0.0..=1.0).contains(&v),
                    "refused {v}, which is in every range: {err}"
                );
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }
}
