//! Deterministic virtual-time simulator of orca-lb and the policies it is
//! measured against, driving the same core code as production.
//!
//! # Where it fits
//!
//! `orca-lb-core` decides where calls go; `orca-lb-client` runs it inside
//! tonic, and `orca-lb-server` publishes the load reports it feeds on. This
//! crate runs the same core in virtual time instead, against simulated
//! backends that report load the way `orca-lb-server` does, so that a
//! policy can be judged in seconds, at any scale (a thousand backends, a
//! hundred clients) and with the same numbers every time. The loopback
//! harness in `benches/` runs the same [`Scenario`] files against real
//! tonic servers and summarizes its calls with this crate's code
//! ([`CallLog`], [`Results::from_policies`], [`report`]), so both read
//! alike; the simulator is where the policy is tuned and checked
//! against queueing theory. `docs/benchmarks.md` has the scenarios, the bar
//! and the latest results.
//!
//! # Concepts
//!
//! **Virtual time.** Time is a `u64` of nanoseconds since the start
//! ([`Nanos`]). Events (an arrival, a service completion, a response, a
//! maintenance tick) wait in one queue, earliest first and in scheduling
//! order at equal times. The core is called with
//! `base + Duration::from_nanos(t)` for one base `std::time::Instant`
//! taken at the start: the core only compares instants.
//!
//! **The same code.** A simulated orca-lb client is one
//! [`EndpointPolicy`](orca_lb_core::EndpointPolicy) and one
//! [`LocalLoad`](orca_lb_core::LocalLoad) per endpoint, a
//! [`P2c`](orca_lb_core::P2c), an
//! [`EjectionBudget`](orca_lb_core::EjectionBudget) and the fleet medians,
//! composed as `orca-lb-client` composes them. The peers are the core's
//! baselines ([`Policy`] lists them). Nothing of a policy is copied here.
//! Two peers have no production counterpart and live in this crate:
//! Prequal (probes answered by the backends with their requests in flight
//! and recent latency at that load, as messages with the network delay) and
//! C3's replica ranking. Their logic is public, with time passed in
//! ([`Prequal`], the servers' [`LatencyByRif`], [`C3`]), so that the
//! loopback harness runs the same code on real servers.
//!
//! **Backends** have `c` workers and a FIFO queue, draw service times from a
//! [`ServiceTime`] distribution scaled by a speed that scripted events
//! change, and attach to every response the report `orca-lb-server` would
//! send: in-flight calls (not the reporting one), active streams, queue
//! depth, capacity, a 1 s EWMA of service time, utilization and rates over
//! a 10 s window. Those are computed by the server's own load model,
//! [`orca_lb_core::load_model`], driven in virtual time: nothing of the
//! server is copied here either.
//!
//! **Clients** send an open-loop Poisson stream of calls, split evenly or
//! by the scenario's `client_weights`; in a mixed fleet (`mixed_with`) some
//! of them run another policy. A
//! call has a deadline, at which its client counts an error. The server lets
//! go of it when the deadline reaches it, as a tonic server does: a call
//! still queued is dropped when it reaches the head, a call in service is cut
//! off and its worker freed.
//!
//! **Common random numbers.** Arrival times and each call's random numbers
//! depend only on the seed, not on the policy: every policy of a run serves
//! the same calls, so differences between policies are the policies'.
//!
//! **The limit** is a central queue: one FIFO in front of every worker of
//! every backend (a call's route is the central queue instead of a backend), fastest free worker first, with the threshold rule for
//! slower ones. No distributed balancer can beat it; results are ratios to
//! it. For identical exponential backends the pooled M/M/k formula
//! ([`ErlangC`]) is given too.
//!
//! # Examples
//!
//! ```
//! use orca_lb_sim::{Policy, Scenario, simulate};
//!
//! let scenario = Scenario::parse(r#"
//!     name = "tiny"
//!     rate = 300.0
//!     warm_up_s = 1.0
//!     measure_s = 2.0
//!
//!     [[backends]]
//!     count = 2
//!     capacity = 4
//!     service_time = { kind = "exponential", mean_ms = 20.0 }
//! "#)?;
//! let policies = Policy::parse_list("rr,orca-lb,limit", &scenario)?;
//! let results = simulate(&scenario, &policies, 1);
//!
//! let rr = results.policy("rr").unwrap();
//! assert_eq!(rr.measure.errors, 0);
//! // The same seed gives the same numbers.
//! assert_eq!(simulate(&scenario, &policies, 1).policies, results.policies);
//! # Ok::<(), String>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod call;
mod call_log;
mod central_queue;
mod clock;
mod engine;
mod erlang;
mod keys;
mod measurements;
mod policy;
pub mod report;
mod results;
mod route;
mod scenario;
mod service_time;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub use backend::LatencyByRif;
pub use call_log::CallLog;
pub use clock::{MILLISECOND, Nanos, SECOND};
pub use erlang::{ErlangC, erlang_c};
pub use keys::{KeyCache, ZipfKeys};
pub use policy::{C3, PEERS, Policy, Prequal};
pub use results::{
    BackendStats, Balance, ClientGroupStats, FiredEvent, LatencyStats, PolicyResult, Quantiles,
    Results, StreamStats,
};
pub use scenario::{
    Action, BackendGroup, Bar, BarWindow, Event, HerdingExperiment, Keys, LocalitySettings,
    OrcaConfig, OrcaOverrides, Scenario, SimSettings, Streams, Variant, Zones,
};
pub use service_time::{Draw, ServiceTime};

use engine::Run;
use measurements::{Measurements, Targets};

/// Runs every policy over the scenario with the seed, on as many threads as
/// the machine has, and gathers the results in the order given.
pub fn simulate(scenario: &Scenario, policies: &[Policy], seed: u64) -> Results {
    simulate_seeds(scenario, policies, &[seed])
}

/// Runs every policy once per seed and pools each policy's runs: latencies,
/// counts and shares over all of them, as if the measurement were that many
/// times longer (the rig's repetitions).
pub fn simulate_seeds(scenario: &Scenario, policies: &[Policy], seeds: &[u64]) -> Results {
    assert!(!seeds.is_empty(), "at least one seed");
    let jobs: Vec<(usize, u64)> = (0..policies.len())
        .flat_map(|p| seeds.iter().map(move |&s| (p, s)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Measurements, f64)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(p, seed)) = jobs.get(i) else {
                            return out;
                        };
                        let started = Instant::now();
                        let rec = Run::new(scenario, &policies[p], seed).run();
                        out.push((i, rec, started.elapsed().as_secs_f64()));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a simulation thread panicked"))
            .collect()
    });
    done.sort_by_key(|d| d.0);
    let (_, _, _, targets) = targets(scenario);
    let capacities: Vec<u32> = scenario.backend_groups().map(|g| g.capacity).collect();
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut pooled: Vec<Option<Measurements>> = (0..policies.len()).map(|_| None).collect();
    for (i, rec, secs) in done {
        let p = jobs[i].0;
        match &mut pooled[p] {
            Some(r) => r.merge(rec),
            slot => *slot = Some(rec),
        }
        match timings.iter_mut().find(|t| t.0 == policies[p].name()) {
            Some(t) => t.1 += secs,
            None => timings.push((policies[p].name().to_owned(), secs)),
        }
    }
    let results = pooled
        .into_iter()
        .zip(policies)
        .map(|(rec, p)| {
            rec.expect("every policy ran")
                .finish(p.name(), &capacities, targets)
        })
        .collect();
    Results::from_policies(scenario, seeds, results, timings)
}

impl Results {
    /// A run of `scenario` with the runs of `seeds` pooled: the scenario's
    /// numbers (rate, rho, windows, watched backends and their optimal
    /// share, the bar, Erlang C) around `policies`, in that order.
    ///
    /// [`simulate_seeds`] builds its results with this; the loopback
    /// harness builds its own from [`CallLog`]s, so that simulated and real
    /// runs render alike.
    pub fn from_policies(
        scenario: &Scenario,
        seeds: &[u64],
        policies: Vec<PolicyResult>,
        timings: Vec<(String, f64)>,
    ) -> Results {
        let (before, during, after, _) = targets(scenario);
        Results {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            seeds: seeds.to_vec(),
            backends: scenario.backend_count(),
            clients: scenario.clients,
            rate: scenario.rate,
            rho: scenario.rho(),
            measure_s: [scenario.warm_up_s, scenario.warm_up_s + scenario.measure_s],
            event_window_s: scenario
                .event_window()
                .map(|(a, b)| [clock::to_secs(a), clock::to_secs(b)]),
            watched: scenario.watched(),
            optimal_share: [before, during, after],
            bar: scenario.bar.clone(),
            erlang: erlang(scenario),
            policies,
            timings,
        }
    }
}

/// Runs one policy over the scenario with the seed.
pub fn simulate_policy(scenario: &Scenario, policy: &Policy, seed: u64) -> PolicyResult {
    let capacities: Vec<u32> = scenario.backend_groups().map(|g| g.capacity).collect();
    let (_, _, _, targets) = targets(scenario);
    Run::new(scenario, policy, seed)
        .run()
        .finish(policy.name(), &capacities, targets)
}

/// The pooled M/M/k values when every backend is the same exponential
/// server (ignoring events).
fn erlang(scenario: &Scenario) -> Option<ErlangC> {
    let first = scenario.backends.first()?;
    let same = scenario
        .backends
        .iter()
        .all(|g| g.service_time == first.service_time && g.capacity == first.capacity);
    if !same || !first.service_time.is_exponential() {
        return None;
    }
    let round_trip_ms = 2.0 * clock::to_millis(scenario.network_delay());
    ErlangC::new(
        scenario.total_capacity(),
        scenario.rate,
        first.service_time.mean_ms(),
        round_trip_ms,
    )
}

/// The watched backends' share if calls followed service rates, before,
/// during and after the events, and when the reaction and recovery clocks
/// start.
fn targets(scenario: &Scenario) -> (f64, f64, f64, Targets) {
    let watched = scenario.watched();
    let groups: Vec<&BackendGroup> = scenario.backend_groups().collect();
    // (speed, failing) per backend; one that joins later serves nothing
    // until then.
    let joining = scenario.joining();
    let mut state: Vec<(f64, bool)> = (0..groups.len())
        .map(|i| (1.0, joining.contains(&i)))
        .collect();
    let share = |state: &[(f64, bool)]| {
        let rate = |i: usize| {
            let (speed, failing) = state[i];
            if failing {
                0.0
            } else {
                f64::from(groups[i].capacity) / (groups[i].service_time.mean_ms() * speed)
            }
        };
        let total: f64 = (0..state.len()).map(rate).sum();
        let w: f64 = watched.iter().map(|&i| rate(i)).sum();
        if total > 0.0 { w / total } else { 0.0 }
    };
    let before = share(&state);
    let mut events: Vec<&Event> = scenario.events.iter().collect();
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let touches = |e: &Event| e.backends.iter().any(|b| watched.contains(b));
    let mut event = None;
    let mut recovery = None;
    let (mut during, mut after) = (before, before);
    let mut i = 0;
    while i < events.len() {
        let at = events[i].at_s;
        // Apply every event at this instant together.
        let mut hit_bad = false;
        let mut hit_recover = false;
        let mut hit_join = false;
        while i < events.len() && events[i].at_s == at {
            let e = events[i];
            for &b in &e.backends {
                state[b] = match e.action {
                    Action::Slow => (e.factor.unwrap_or(1.0), false),
                    Action::FailFast => (state[b].0, true),
                    Action::Recover | Action::Join => (1.0, false),
                };
            }
            if touches(e) {
                hit_bad |= matches!(e.action, Action::Slow | Action::FailFast);
                hit_recover |= e.action == Action::Recover;
                hit_join |= e.action == Action::Join;
            }
            i += 1;
        }
        if event.is_none() && hit_bad {
            during = share(&state);
            event = Some((clock::secs(at), during));
        } else if event.is_some() && recovery.is_none() && hit_recover {
            after = share(&state);
            recovery = Some((clock::secs(at), after));
        } else if event.is_none() && hit_join {
            // A scale-out is neither a fault nor a recovery: no reaction to
            // time, only the share the watched backends should take from
            // then on.
            during = share(&state);
            after = during;
        }
    }
    (
        before,
        during,
        after,
        Targets {
            event,
            recovery,
            before,
        },
    )
}
