//! The simulator against itself (determinism), against queueing theory
//! (Erlang C) and against what the policies are known to do.

use std::path::PathBuf;

use orca_lb_sim::{ErlangC, Policy, Scenario, simulate, simulate_seeds};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// A scenario file, shortened: warm-up and measurement scaled by `time`,
/// events moved with them.
fn shortened(file: &str, time: f64) -> Scenario {
    Scenario::load(scenarios_dir().join(file))
        .unwrap()
        .scaled_in_time(time)
}

#[test]
fn every_scenario_file_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!Policy::all(&s).is_empty());
            n += 1;
        }
    }
    assert!(n >= 7, "{n} scenario files");
}

#[test]
fn same_seed_same_numbers() {
    let s = shortened("s2_degrade.toml", 0.2);
    let policies = Policy::parse_list("all", &s).unwrap();
    let a = simulate(&s, &policies, 7);
    let b = simulate(&s, &policies, 7);
    assert_eq!(a.policies, b.policies);
    // The JSON too, but for the wall-clock timings.
    let json = |mut r: orca_lb_sim::Results| {
        r.timings.clear();
        orca_lb_sim::report::json(&r)
    };
    assert_eq!(json(a.clone()), json(b));
    let c = simulate(&s, &policies, 8);
    assert_ne!(a.policies, c.policies, "another seed, other numbers");
}

#[test]
fn the_limit_matches_erlang_c() {
    // Four single-worker exponential backends pooled: M/M/4 at rho 0.8.
    let s = Scenario::parse(
        r#"
        name = "mm4"
        rate = 320.0
        warm_up_s = 20.0
        measure_s = 600.0
        [[backends]]
        count = 4
        capacity = 1
        service_time = { kind = "exponential", mean_ms = 10.0 }
        "#,
    )
    .unwrap();
    // Four runs pooled: 770,000 calls.
    let r = simulate_seeds(&s, &[Policy::Limit], &[1, 2, 3, 4]);
    let formula = ErlangC::new(4, 320.0, 10.0, 0.2).unwrap();
    assert_eq!(r.erlang, Some(formula));
    let limit = &r.policies[0].measure;
    assert_eq!(limit.errors, 0);
    // Wait = latency - service - the round trip.
    let wait = limit.all.mean_ms - 10.0 - 0.2;
    let rel = (wait - formula.mean_wait_ms).abs() / formula.mean_wait_ms;
    assert!(
        rel < 0.05,
        "mean wait {wait:.3} ms vs Erlang C {:.3} ms",
        formula.mean_wait_ms
    );
    let p99 = (limit.all.p99_ms - formula.p99_ms).abs() / formula.p99_ms;
    assert!(p99 < 0.05, "p99 {} vs {}", limit.all.p99_ms, formula.p99_ms);
}

#[test]
fn round_robin_shares_equally() {
    let s = shortened("s4_many_clients.toml", 0.2);
    let r = simulate(&s, &[Policy::Rr], 1);
    let rr = &r.policies[0];
    for b in &rr.backends {
        assert!((b.share - 0.125).abs() < 0.002, "{:?}", rr.backends);
    }
    assert!(rr.share_cv < 0.01);
}

#[test]
fn black_hole_costs_rr_an_eighth_and_orca_lb_almost_nothing() {
    let s = shortened("s3_black_hole.toml", 0.4);
    let policies = Policy::parse_list("rr,orca-lb", &s).unwrap();
    let r = simulate(&s, &policies, 1);
    let rr = r.policy("rr").unwrap().event_window.as_ref().unwrap();
    assert!(
        (0.11..0.14).contains(&rr.error_rate),
        "rr errors {}",
        rr.error_rate
    );
    let orca = r.policy("orca-lb").unwrap();
    let w = orca.event_window.as_ref().unwrap();
    assert!(w.error_rate < 0.01, "orca-lb errors {}", w.error_rate);
    assert!(
        orca.reaction_s.is_some_and(|t| t <= 1.0),
        "{:?}",
        orca.reaction_s
    );
}

#[test]
fn scripted_events_fire_at_their_times() {
    let s = shortened("s3_black_hole.toml", 0.2);
    let r = simulate(&s, &[Policy::Rr, Policy::Limit], 1);
    for p in &r.policies {
        let fired: Vec<(f64, &str)> = p
            .events
            .iter()
            .map(|e| (e.at_s, e.action.as_str()))
            .collect();
        assert_eq!(
            fired,
            [(6.0, "fail_fast"), (12.0, "recover")],
            "{}",
            p.policy
        );
        // Before the event rr sends backend 0 an eighth of the calls,
        // during it (fail-fast answers come back fast) still an eighth.
        let during = p.watched_share[7].unwrap();
        if p.policy == "limit" {
            assert_eq!(during, 0.0, "the limit never uses a failing backend");
        } else {
            assert!((during - 0.125).abs() < 0.03, "{during}");
        }
    }
}

#[test]
fn a_call_past_its_deadline_frees_its_worker() {
    // Every call needs 150 ms and has 100 ms: each fails, and, as on a tonic
    // server, its worker is let go at the deadline (plus the network delay)
    // instead of serving 150 ms. Busy time: 5 calls/s x at most 100.1 ms,
    // not 5 x 150 ms.
    let s = Scenario::parse(
        r#"
        name = "cut"
        rate = 5.0
        deadline_ms = 100.0
        warm_up_s = 10.0
        measure_s = 400.0
        [[backends]]
        count = 1
        capacity = 1
        service_time = { kind = "shifted_exponential", shift_ms = 150.0, mean_ms = 1.0 }
        "#,
    )
    .unwrap();
    let r = simulate(&s, &[Policy::Rr], 1);
    let rr = &r.policies[0];
    assert_eq!(rr.measure.error_rate, 1.0, "{:?}", rr.measure);
    let u = rr.backends[0].utilization;
    assert!(
        (0.40..0.51).contains(&u),
        "utilization {u}: calls held their worker past the cut-off"
    );
}

/// A small scale-out under streams: 4 clients, about 80 streams on 2
/// backends, 2 more join at 10 s.
fn scale_out(max_age_s: Option<f64>) -> Scenario {
    let mut s = Scenario::parse(
        r#"
        name = "tiny_scale_out"
        rate = 100.0
        clients = 4
        warm_up_s = 10.0
        measure_s = 30.0

        [[backends]]
        count = 4
        capacity = 4
        service_time = { kind = "exponential", mean_ms = 20.0 }

        [[events]]
        at_s = 10.0
        backends = [2, 3]
        action = "join"

        [streams]
        rate = 2.0
        initial = 80
        duration = { kind = "lognormal", mean_ms = 40000.0, sigma = 0.5 }
        "#,
    )
    .unwrap();
    s.streams.as_mut().unwrap().max_age_s = max_age_s;
    s.validate().unwrap();
    s
}

#[test]
fn backends_that_join_serve_nothing_before_and_streams_even_out_after() {
    let policies = Policy::parse_list("rr,orca-lb", &scale_out(None)).unwrap();
    let without = simulate_seeds(&scale_out(None), &policies, &[1, 2]);
    let with = simulate_seeds(&scale_out(Some(8.0)), &policies, &[1, 2]);
    let balance = |r: &orca_lb_sim::Results, p: &str| {
        r.policy(p)
            .unwrap()
            .streams
            .as_ref()
            .unwrap()
            .balance
            .clone()
            .unwrap()
    };
    for r in [&without, &with] {
        for p in ["rr", "orca-lb"] {
            // At the join every stream is on the first two backends: the
            // most holds about twice the mean.
            let at_join = balance(r, p).max_over_mean[0].unwrap();
            assert!(at_join > 1.8, "{p}: {at_join}");
        }
    }
    let opened = |r: &orca_lb_sim::Results| {
        r.policy("orca-lb")
            .unwrap()
            .streams
            .as_ref()
            .unwrap()
            .opened
    };
    // Streams ended at their max age are opened again.
    assert!(
        opened(&with) > opened(&without) * 2,
        "{} vs {}",
        opened(&with),
        opened(&without)
    );
    // orca-lb evens the streams out; a max age makes it faster.
    let orca = balance(&without, "orca-lb");
    let orca_aged = balance(&with, "orca-lb");
    assert!(
        orca.balanced_after_s.iter().all(Option::is_some),
        "{orca:?}"
    );
    assert!(
        orca_aged.balanced_after_quantile(1.0) < orca.balanced_after_quantile(0.0),
        "{orca_aged:?} vs {orca:?}"
    );
    // Round robin, without a max age, keeps the old backends fuller than
    // orca-lb 20 s after the join.
    let rr = balance(&without, "rr");
    assert!(rr.max_over_mean[20].unwrap() > orca.max_over_mean[20].unwrap() + 0.1);
}

#[test]
fn joining_backends_must_come_last() {
    let err = Scenario::parse(
        r#"
        name = "bad"
        rate = 10.0
        warm_up_s = 1.0
        measure_s = 1.0
        [[backends]]
        count = 3
        capacity = 1
        service_time = { kind = "exponential", mean_ms = 20.0 }
        [[events]]
        at_s = 1.0
        backends = [0]
        action = "join"
        "#,
    )
    .unwrap_err();
    assert!(
        err.contains("backends that join must be the last ones"),
        "{err}"
    );
}

#[test]
fn client_weights_give_client_zero_half_the_calls() {
    // Two backends, two clients; client 0 weighs 3, client 1 weighs 1. In a
    // mixed fleet client 0 runs `random` and client 1 round robin, so the
    // groups' call counts are the weights' split.
    let s = Scenario::parse(
        r#"
        name = "skew"
        rate = 400.0
        clients = 2
        client_weights = [3.0]
        mixed_with = "random"
        warm_up_s = 1.0
        measure_s = 20.0
        [[backends]]
        count = 2
        capacity = 4
        service_time = { kind = "exponential", mean_ms = 5.0 }
        "#,
    )
    .unwrap();
    let r = simulate(&s, &[Policy::Rr, Policy::Limit], 3);
    let rr = r.policy("rr").unwrap();
    let names: Vec<&str> = rr.client_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["random (1 clients)", "rr (1 clients)"]);
    let calls: Vec<u64> = rr.client_groups.iter().map(|g| g.stats.calls).collect();
    assert_eq!(calls[0] + calls[1], rr.measure.calls);
    let share = calls[0] as f64 / rr.measure.calls as f64;
    assert!((share - 0.75).abs() < 0.02, "client 0 share {share}");
    assert!(r.policy("limit").unwrap().client_groups.is_empty());
}

#[test]
fn bad_mixed_fleets_and_weights_are_refused() {
    let base = |extra: &str| {
        format!(
            "name = \"x\"\nrate = 10.0\nclients = 4\n{extra}\nwarm_up_s = 1.0\nmeasure_s = 1.0\n\
             [[backends]]\ncapacity = 1\nservice_time = {{ kind = \"exponential\", mean_ms = 5.0 }}\n"
        )
    };
    for (extra, says) in [
        ("mixed_with = \"nope\"", "mixed_with"),
        ("mixed_with = \"limit\"", "mixed_with"),
        (
            "mixed_with = \"rr\"\nmixed_fraction = 1.0",
            "mixed_fraction",
        ),
        (
            "mixed_with = \"rr\"\nmixed_fraction = 0.1",
            "mixed_fraction",
        ),
        (
            "client_weights = [1.0, 2.0, 3.0, 4.0, 5.0]",
            "client_weights",
        ),
        ("client_weights = [0.0]", "client_weights"),
    ] {
        let e = Scenario::parse(&base(extra)).unwrap_err();
        assert!(e.contains(says), "{extra}: {e}");
    }
    assert!(Scenario::parse(&base("mixed_with = \"c3\"")).is_ok());
}

#[test]
fn prequal_and_c3_keep_the_slow_backend_below_its_even_share() {
    // S4h: backend 0 is 4x slower; an even split would send it 12.5 % and
    // overload it. Both peers must send it less than half of that, with no
    // errors, the same numbers for the same seed.
    let s = shortened("s4h_many_clients_hetero.toml", 0.15);
    let policies = Policy::parse_list("prequal,c3", &s).unwrap();
    let r = simulate(&s, &policies, 2);
    for p in &r.policies {
        assert!(
            p.backends[0].share < 0.0625,
            "{}: {:?}",
            p.policy,
            p.backends[0]
        );
        assert_eq!(p.measure.errors, 0, "{}", p.policy);
    }
    assert_eq!(simulate(&s, &policies, 2).policies, r.policies);
}

#[test]
fn pick_compensation_scales_with_the_other_clients() {
    // The compensation counts `w * (n - 1)` calls per own pick: with one
    // client it is nothing, and the variant runs exactly as orca-lb; with
    // 32 clients it changes where calls go.
    let variant = "\n[[sim.variants]]\nname = \"comp\"\nset = { pick_compensation = 1.0 }\n";
    let text = |clients: u32| {
        format!(
            "name = \"c\"\nrate = 600.0\nclients = {clients}\nwarm_up_s = 1.0\nmeasure_s = 4.0\n\
             [[backends]]\ncount = 4\ncapacity = 4\n\
             service_time = {{ kind = \"exponential\", mean_ms = 20.0 }}\n{variant}"
        )
    };
    let run = |clients: u32| {
        let s = Scenario::parse(&text(clients)).unwrap();
        let policies = Policy::parse_list("orca-lb,orca-lb/comp", &s).unwrap();
        let r = simulate(&s, &policies, 5);
        let shares =
            |i: usize| -> Vec<f64> { r.policies[i].backends.iter().map(|b| b.share).collect() };
        (shares(0), shares(1))
    };
    let (plain, comp) = run(1);
    assert_eq!(plain, comp, "no other client, no compensation");
    let (plain, comp) = run(32);
    assert_ne!(plain, comp, "31 other clients");
}

#[test]
fn c3_parts_run_by_name_only() {
    let s = shortened("s4_many_clients.toml", 0.05);
    let names: Vec<String> = Policy::parse_list("c3/p2c,c3/no-compensation", &s)
        .unwrap()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(names, ["c3/p2c", "c3/no-compensation"]);
    assert!(!Policy::all(&s).iter().any(|p| p.name().starts_with("c3/")));
    assert!(Policy::parse_list("c3/nope", &s).is_err());
}

#[test]
fn choices_variants_run_by_name_and_two_is_the_pair_picker() {
    let s = shortened("s4_many_clients.toml", 0.05);
    let policies = Policy::parse_list("orca-lb,orca-lb/choices=2,orca-lb/choices=8", &s).unwrap();
    let names: Vec<&str> = policies.iter().map(Policy::name).collect();
    assert_eq!(names, ["orca-lb", "orca-lb/choices=2", "orca-lb/choices=8"]);
    for bad in [
        "orca-lb/choices=1",
        "orca-lb/choices=9",
        "orca-lb/choices=x",
    ] {
        let err = Policy::parse_list(bad, &s).unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
    let r = simulate(&s, &policies, 3);
    // The default is 8: orca-lb and orca-lb/choices=8 run the same calls
    // the same way; 2 (the pair) goes elsewhere.
    let latencies = |i: usize| r.policies[i].measure.clone();
    assert_eq!(latencies(0), latencies(2));
    assert_ne!(latencies(0), latencies(1));
}

#[test]
fn locality_keeps_calls_in_their_zone_and_spills_when_it_is_overloaded() {
    let s = shortened("s7_two_zones.toml", 0.5);
    let policies = Policy::parse_list("rr,orca-lb,orca-lb/locality", &s).unwrap();
    let r = simulate_seeds(&s, &policies, &[1, 2]);
    let cross = |name: &str| r.policy(name).unwrap().cross_zone.unwrap();
    // Round robin ignores zones: half the calls cross, as half the backends
    // are in the other zone.
    assert!((cross("rr") - 0.5).abs() < 0.01, "rr {}", cross("rr"));
    assert!(cross("orca-lb") > 0.4, "orca-lb {}", cross("orca-lb"));
    // Locality keeps most calls at home, but not all: while zone a is slow
    // its clients must spill, or its backends would queue past the deadline.
    let local = cross("orca-lb/locality");
    assert!((0.03..0.3).contains(&local), "orca-lb/locality {local}");
    let locality = r.policy("orca-lb/locality").unwrap();
    assert_eq!(locality.measure.errors, 0);
    // The price: the local zone is kept busy up to the spill threshold (80 %
    // load), where calls queue, so while zone a is slow the tail is above
    // that of orca-lb without locality, which takes the cheapest of all
    // backends. It stays within twice that, and far from round robin's.
    let window = locality.event_window.as_ref().unwrap();
    let orca = r.policy("orca-lb").unwrap().event_window.as_ref().unwrap();
    let rr = r.policy("rr").unwrap().event_window.as_ref().unwrap();
    assert!(
        window.all.p99_ms < 2.0 * orca.all.p99_ms && window.all.p99_ms < 0.5 * rr.all.p99_ms,
        "locality p99 {} vs orca-lb {} and rr {}",
        window.all.p99_ms,
        orca.all.p99_ms,
        rr.all.p99_ms
    );
}

#[test]
fn zones_are_checked() {
    let base = std::fs::read_to_string(scenarios_dir().join("s7_two_zones.toml")).unwrap();
    let one_short = base.replace(
        r#"backends = ["a", "a", "a", "a", "b", "b", "b", "b"]"#,
        r#"backends = ["a", "b"]"#,
    );
    assert!(
        Scenario::parse(&one_short)
            .unwrap_err()
            .contains("2 zones for 8 backends")
    );
    let no_clients = base.replace(r#"clients = ["a", "b"]"#, "clients = []");
    assert!(
        Scenario::parse(&no_clients)
            .unwrap_err()
            .contains("zones.clients")
    );
    let bad_name = base.replace(r#"clients = ["a", "b"]"#, r#"clients = [""]"#);
    assert!(
        Scenario::parse(&bad_name)
            .unwrap_err()
            .contains("invalid zone")
    );
    let limit = simulate(
        &Scenario::parse(&base).unwrap().scaled_in_time(0.1),
        &[Policy::Limit],
        1,
    );
    assert_eq!(limit.policies[0].cross_zone, None, "the limit has no zones");
}

#[test]
fn bounded_load_hashing_keeps_most_cache_hits_without_the_slow_backends_tail() {
    let s = shortened("s8_affinity.toml", 0.5);
    let policies = Policy::parse_list("orca-lb,ring_hash,orca-lb/affinity", &s).unwrap();
    let r = simulate_seeds(&s, &policies, &[1, 2]);
    let hits = |name: &str| r.policy(name).unwrap().hit_ratio.unwrap();
    let window = |name: &str| r.policy(name).unwrap().event_window.clone().unwrap();
    // Without affinity a key's calls land anywhere: about the hit ratio of
    // a cache of 1,500 of 20,000 Zipf keys. Ring hash keeps every key home,
    // and bounded loads most of them.
    assert!(hits("ring_hash") > hits("orca-lb") + 0.2, "{r:?}");
    assert!(hits("orca-lb/affinity") > hits("orca-lb") + 0.08, "{r:?}");
    assert!(hits("orca-lb/affinity") < hits("ring_hash"));
    // While backend 0 is 4x slower, ring hash keeps sending it its keys and
    // its calls queue to the deadline; bounded loads pass them on.
    let ring = window("ring_hash");
    let bounded = window("orca-lb/affinity");
    assert!(ring.errors > 0, "{ring:?}");
    assert_eq!(bounded.errors, 0);
    assert!(
        bounded.all.p99_ms < 0.25 * ring.all.p99_ms
            && bounded.all.p99_ms < 1.5 * window("orca-lb").all.p99_ms,
        "p99 {} vs ring hash {} and orca-lb {}",
        bounded.all.p99_ms,
        ring.all.p99_ms,
        window("orca-lb").all.p99_ms
    );
}

#[test]
fn keys_are_checked_and_only_keyed_scenarios_run_the_ring_policies() {
    let base = std::fs::read_to_string(scenarios_dir().join("s8_affinity.toml")).unwrap();
    let bad = base.replace("epsilon = 0.25", "epsilon = 0.0");
    assert!(Scenario::parse(&bad).is_err());
    let bad = base.replace("cache_size = 1500", "cache_size = 0");
    assert!(Scenario::parse(&bad).is_err());
    let keyed = Scenario::parse(&base).unwrap();
    let names = |s: &Scenario| -> Vec<String> {
        Policy::all(s).iter().map(|p| p.name().to_owned()).collect()
    };
    assert!(names(&keyed).contains(&"orca-lb/affinity".to_owned()));
    let plain = shortened("s2_degrade.toml", 1.0);
    assert!(!names(&plain).contains(&"ring_hash".to_owned()));
}
