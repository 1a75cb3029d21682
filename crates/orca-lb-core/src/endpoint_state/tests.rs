use std::time::{Duration, Instant};

use super::*;
use crate::{RawLoadReport, named_metrics};

#[expect(
    clippy::disallowed_methods,
    reason = "tests need one real instant to offset from"
)]
fn t0() -> Instant {
    Instant::now()
}

fn cfg() -> ScoreConfig {
    ScoreConfig {
        report_decay: Duration::from_millis(500),
        slow_start: Duration::ZERO,
        base_latency: Duration::ZERO,
        ..ScoreConfig::default()
    }
}

fn report(service_ms: f64, in_flight: f64, streams: f64, capacity: f64) -> LoadReport {
    let mut raw = RawLoadReport {
        application_utilization: 0.5,
        rps_fractional: 100.0,
        ..Default::default()
    };
    raw.named_metrics
        .insert(named_metrics::SERVICE_TIME_MS.into(), service_ms);
    raw.named_metrics
        .insert(named_metrics::IN_FLIGHT.into(), in_flight);
    raw.named_metrics
        .insert(named_metrics::ACTIVE_STREAMS.into(), streams);
    raw.named_metrics
        .insert(named_metrics::CAPACITY.into(), capacity);
    LoadReport::try_from(raw).unwrap()
}

fn fleet() -> FleetView {
    FleetView {
        service_time: 0.02,
        backlog: 0.0,
        streams: 0.0,
    }
}

#[test]
fn unknown_endpoint_costs_a_little_less_than_the_fleet_median() {
    let t = t0();
    let s = EndpointState::new(&cfg(), t);
    let terms = s
        .estimate()
        .terms(LocalLoad::default(), &fleet(), &cfg(), t);
    // Slightly better than typical, so that it gets tried.
    assert_eq!(terms.service_time, 0.02 * EXPLORATION);
    assert_eq!(terms.completion, 0.02 * EXPLORATION);
    assert_eq!(terms.total(), Score::new(0.02 * EXPLORATION));
}

#[test]
fn completion_time_counts_only_calls_beyond_free_slots() {
    let t = t0();
    let c = cfg();
    let mut s = EndpointState::new(&c, t);
    // 40 ms service, 6 unary calls at the server (8 in flight, 2 streams), 4 slots;
    // two of the 6 are ours.
    let local = LocalLoad {
        in_flight: 2,
        ..LocalLoad::default()
    };
    s.on_report(&report(40.0, 8.0, 2.0, 4.0), local, t);
    let e = s.estimate();
    assert_eq!(e.backlog, Some(4.0));
    let terms = e.terms(local, &fleet(), &c, t);
    assert_eq!(terms.freshness, 1.0);
    assert_eq!(terms.backlog, 6.0);
    // 40 ms against a median of 20: 20 ms slower, less the 2 ms dead band.
    assert!((terms.service_time - 0.038).abs() < 1e-12, "{terms:?}");
    // 7 calls for 4 slots: our call waits for 3/4 of a service time, plus
    // contention from the 6 present.
    let expected = 0.038 * (1.0 + (3.0 + c.contention * 6.0) / 4.0);
    assert!((terms.completion - expected).abs() < 1e-12, "{terms:?}");

    // A second report a second later carries most of the weight.
    s.on_report(
        &report(20.0, 6.0, 2.0, 4.0),
        local,
        t + Duration::from_secs(1),
    );
    let st = s.estimate().service_time.unwrap();
    let w = (-2.0f64).exp();
    assert!((st - (0.040 * w + 0.020 * (1.0 - w))).abs() < 1e-12, "{st}");
    let terms = s.estimate().terms(
        LocalLoad::default(),
        &fleet(),
        &c,
        t + Duration::from_secs(1),
    );
    // 2 others + 0 ours: a slot is free, only contention adds.
    let st = st - 0.002;
    assert!((terms.service_time - st).abs() < 1e-12, "{terms:?}");
    let expected = st * (1.0 + c.contention * terms.backlog / 4.0);
    assert!((terms.completion - expected).abs() < 1e-12, "{terms:?}");
}

#[test]
fn service_times_near_the_median_count_as_the_median() {
    let t = t0();
    let c = cfg();
    assert_eq!(c.service_time_tolerance, 0.1);
    // Median 20 ms: the band is 2 ms either side. A fresh report counts as
    // the median inside it, and beyond it by how far it lies outside.
    let service_time = |reported_ms: f64| {
        let mut s = EndpointState::new(&c, t);
        s.on_report(&report(reported_ms, 0.0, 0.0, 4.0), LocalLoad::default(), t);
        let terms = s.estimate().terms(LocalLoad::default(), &fleet(), &c, t);
        assert_eq!(terms.freshness, 1.0);
        terms.service_time
    };
    for (reported, expected) in [
        (20.0, 0.020),
        (21.9, 0.020),
        (18.1, 0.020),
        (22.5, 0.0205),
        (17.0, 0.019),
        (25.0, 0.023),
        (40.0, 0.038),
        (10.0, 0.012),
    ] {
        let got = service_time(reported);
        assert!((got - expected).abs() < 1e-12, "{reported} ms: {got}");
    }
    // No band at 0: the report as it is.
    let hard = ScoreConfig {
        service_time_tolerance: 0.0,
        ..c.clone()
    };
    let mut s = EndpointState::new(&hard, t);
    s.on_report(&report(21.0, 0.0, 0.0, 4.0), LocalLoad::default(), t);
    let terms = s.estimate().terms(LocalLoad::default(), &fleet(), &hard, t);
    assert!((terms.service_time - 0.021).abs() < 1e-12, "{terms:?}");
}

#[test]
fn stale_reports_relax_toward_the_fleet_median() {
    let t = t0();
    let c = cfg();
    let mut s = EndpointState::new(&c, t);
    s.on_report(
        &report(200.0, 10.0, 0.0, 1.0),
        LocalLoad::default(),
        t + Duration::from_secs(5),
    );
    let t = t + Duration::from_secs(5);
    let e = s.estimate();
    let fresh = e.cost(LocalLoad::default(), &fleet(), &c, t);
    let later = e.cost(LocalLoad::default(), &fleet(), &c, t + c.stale_after * 10);
    assert!(fresh > Score::new(1.0), "{fresh:?}");
    // Ten staleness periods later the estimate is the (explored) median's.
    assert!(
        (later.seconds() - 0.02 * EXPLORATION).abs() < 1e-3,
        "{later:?}"
    );
}

#[test]
fn a_fast_failure_does_not_look_fast() {
    let t = t0();
    let c = cfg();
    let mut good = EndpointState::new(&c, t);
    let mut bad = EndpointState::new(&c, t);
    good.on_response(Duration::from_millis(20), false, t);
    bad.on_response(Duration::from_millis(1), true, t);
    let cost = |s: &EndpointState| s.estimate().cost(LocalLoad::default(), &fleet(), &c, t);
    assert!(cost(&bad) > cost(&good));
    let terms = bad.estimate().terms(LocalLoad::default(), &fleet(), &c, t);
    assert_eq!(terms.failure, 0.25);
    assert_eq!(
        terms.service_time, 1.0,
        "a failure counts as error_penalty of latency"
    );
}

#[test]
fn warm_up_share_rises_linearly() {
    let t = t0();
    let c = ScoreConfig::default();
    let e = EndpointState::new(&c, t).estimate();
    let at = |d: Duration| e.warm_up_share(&c, t + d);
    assert_eq!(at(Duration::ZERO), MIN_WARM_UP_SHARE);
    assert!((at(c.slow_start / 2) - 0.5).abs() < 1e-12);
    assert_eq!(at(c.slow_start), 1.0);
    assert_eq!(at(c.slow_start * 2), 1.0);
    let off = ScoreConfig {
        slow_start: Duration::ZERO,
        ..c
    };
    assert_eq!(e.warm_up_share(&off, t), 1.0);
}

#[test]
fn streams_steer_by_count() {
    let t = t0();
    let c = cfg();
    let mut busy = EndpointState::new(&c, t);
    let mut quiet = EndpointState::new(&c, t);
    busy.on_report(&report(10.0, 12.0, 12.0, 4.0), LocalLoad::default(), t);
    quiet.on_report(&report(10.0, 2.0, 2.0, 4.0), LocalLoad::default(), t);
    let sc = |s: &EndpointState, local: u32| {
        s.estimate().stream_cost(
            LocalLoad {
                streams: local,
                ..LocalLoad::default()
            },
            &fleet(),
            &c,
            t,
        )
    };
    assert_eq!(sc(&busy, 0), Score::new(12.0));
    assert_eq!(sc(&quiet, 0), Score::new(2.0));
    assert!(sc(&quiet, 5) > sc(&quiet, 0));
    // The server's stream count included ours at report time.
    quiet.on_report(
        &report(10.0, 2.0, 2.0, 4.0),
        LocalLoad {
            streams: 2,
            ..LocalLoad::default()
        },
        t + Duration::from_secs(1),
    );
    assert!(quiet.estimate().streams.unwrap() < 0.5);
}

#[test]
fn old_calls_in_flight_raise_the_service_time() {
    let t = t0();
    let c = cfg();
    assert_eq!(c.in_flight_age_floor, 0.4);
    let mut s = EndpointState::new(&c, t);
    // 20 ms service, 4 slots, our 2 calls the only ones there.
    let load = LocalLoad {
        in_flight: 2,
        ..LocalLoad::default()
    };
    s.on_report(&report(20.0, 2.0, 0.0, 4.0), load, t);
    let now = t + Duration::from_secs(1);
    let e = s.estimate();
    let calls = |mean_age_ms: u64| LocalLoad {
        in_flight_since: Some(now - Duration::from_millis(mean_age_ms)),
        ..load
    };
    // 2 calls for 4 slots: contention only, 0.5 x 2 / 4 of a service time.
    let w = (-0.5f64).exp();
    let reported = 0.020 * w + 0.020 * EXPLORATION * (1.0 - w);
    let without = e.terms(load, &fleet(), &c, now);
    assert!(
        (without.service_time - reported).abs() < 1e-12,
        "{without:?}"
    );
    assert!((without.completion - reported * 1.25).abs() < 1e-12);

    // Calls 30 ms old on average: 0.4 x 30 ms = 12 ms, below the estimate.
    assert_eq!(e.terms(calls(30), &fleet(), &c, now), without);

    // 200 ms old on average: the endpoint is slower than reported; its
    // service time is taken as 0.4 x 200 ms = 80 ms.
    let old = e.terms(calls(200), &fleet(), &c, now);
    assert!((old.service_time - 0.080).abs() < 1e-12, "{old:?}");
    assert!((old.completion - 0.100).abs() < 1e-12, "{old:?}");
    assert!((old.total().seconds() - 0.100).abs() < 1e-12);
    assert!(old.total() > without.total());

    // Off at 0; and nothing in flight, no floor.
    let off = ScoreConfig {
        in_flight_age_floor: 0.0,
        ..c
    };
    assert_eq!(e.terms(calls(200), &fleet(), &off, now), without);
    let idle = LocalLoad {
        in_flight_since: Some(now - Duration::from_millis(200)),
        ..LocalLoad::default()
    };
    assert_eq!(
        e.terms(idle, &fleet(), &c, now),
        e.terms(LocalLoad::default(), &fleet(), &c, now)
    );
}

#[test]
fn backlogs_age_in_three_service_times() {
    let t = t0();
    let c = cfg();
    assert_eq!(c.backlog_stale_services, 3.0);
    let mut s = EndpointState::new(&c, t);
    // 20 ms service, 4 slots, 6 calls of others there.
    s.on_report(&report(20.0, 6.0, 0.0, 4.0), LocalLoad::default(), t);
    let e = s.estimate();
    let fleet = FleetView {
        service_time: 0.02,
        backlog: 2.0,
        streams: 0.0,
    };
    let now = t + Duration::from_millis(60);
    let terms = e.terms(LocalLoad::default(), &fleet, &c, now);
    // The service time, 60 ms on, relaxed toward 0.9 x the median.
    let f = (-0.06f64 / 2.0).exp();
    let st = 0.02 * f + 0.018 * (1.0 - f);
    assert_eq!(terms.freshness, f);
    assert!((terms.service_time - st).abs() < 1e-15, "{terms:?}");
    // The backlog, 60 ms (about three service times) on, keeps about 1/e
    // of its weight; the rest is the fleet's median of 2.
    let w = (-0.06 / (3.0 * st)).exp();
    assert!((w - 0.36679).abs() < 1e-5, "{w}");
    let backlog = 6.0 * w + 2.0 * (1.0 - w);
    assert!((terms.backlog - backlog).abs() < 1e-12, "{terms:?}");
    // 7 calls for 4 slots: 3 ahead of it beyond the free slots.
    let expected = st * (1.0 + ((backlog - 3.0) + c.contention * backlog) / 4.0);
    assert!((terms.completion - expected).abs() < 1e-12, "{terms:?}");

    // Ten service times on, the backlog is nearly the median's.
    let later = e.terms(
        LocalLoad::default(),
        &fleet,
        &c,
        t + Duration::from_millis(200),
    );
    let w = (-0.2 / (3.0 * later.service_time)).exp();
    assert!(w < 0.035, "{w}");
    assert!(
        (later.backlog - (6.0 * w + 2.0 * (1.0 - w))).abs() < 1e-12,
        "{later:?}"
    );
}

#[test]
fn a_report_contradicted_by_observed_latency_loses_its_weight() {
    let t = t0();
    let c = cfg();
    let ms = Duration::from_millis;
    // Claims 0.1 ms and 1,000 slots; its calls take 50 ms.
    let mut liar = EndpointState::new(&c, t);
    // Reports 20 ms and 4 slots; its calls take 25 ms (a little queueing
    // and network time).
    let mut honest = EndpointState::new(&c, t);
    for i in 0..20 {
        let now = t + ms(10 * i);
        liar.on_report(&report(0.1, 2.0, 0.0, 1000.0), LocalLoad::default(), now);
        liar.on_response(ms(50), false, now);
        honest.on_report(&report(20.0, 2.0, 0.0, 4.0), LocalLoad::default(), now);
        honest.on_response(ms(25), false, now);
    }
    let now = t + ms(200);
    let local = LocalLoad::default();
    let cost = |s: &EndpointState| s.estimate().terms(local, &fleet(), &c, now);
    let (liar_terms, honest_terms) = (cost(&liar), cost(&honest));
    assert!(
        liar_terms.service_time > 0.045,
        "the observed 50 ms counts: {liar_terms:?}"
    );
    assert!(
        liar_terms.total() > honest_terms.total(),
        "liar {liar_terms:?} honest {honest_terms:?}"
    );

    // The honest endpoint's report stands: the same cost as with no
    // latency observed at all.
    let mut unobserved = EndpointState::new(&c, t);
    for i in 0..20 {
        let now = t + ms(10 * i);
        unobserved.on_report(&report(20.0, 2.0, 0.0, 4.0), LocalLoad::default(), now);
    }
    assert_eq!(cost(&unobserved), honest_terms);
}
