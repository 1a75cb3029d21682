//! `orca-lb-harness`: orca-lb and its peers on real tonic servers over
//! loopback, scenario by scenario, measured as the simulator measures.
//!
//! Each run starts a fresh fleet of backends (`orca_lb_testkit::Backend`: the
//! reporting layer, worker slots, a sleep-based service time) and offers it
//! an open-loop Poisson load on an absolute schedule through one policy,
//! with the scenario's deadline propagated and no retries; with
//! `client_weights`, each client sends its weight's share of the calls.
//! Policies take turns, repetition after repetition.
//!
//! The policies: `rr` (gRPC's `round_robin`), `tonic` (its
//! `balance_list`), `p2c_lr` and `p2c_peakewma` (tower's P2C), `wrr_orca`
//! (gRPC's `weighted_round_robin` on per-call reports), `orca-lb`, the
//! peers from the literature `prequal` (Prequal's probes and hot-cold pick;
//! the backends answer its probes with a layer of the harness, `probe`)
//! and `c3` (C3's replica ranking on the per-call reports), and for keyed
//! scenarios `ring_hash` and `orca-lb/affinity`. `prequal` and `c3` follow
//! the simulator's models of them, parameter for parameter. The calls are summarized by the
//! simulator's own code (`orca_lb_sim::CallLog`), the limit comes from the
//! simulator on the same scenario, and the tables, JSON and plots are the
//! simulator's. The simulator also runs every policy on the scenario as
//! written and with the service times the rig actually gave (`limit/rig`),
//! for the comparison the plan asks for. Once a second the harness records
//! what each backend reported next to what it measured (`harness.json`).
//! `docs/benchmarks.md` ("Loopback harness") has the results.
//!
//! ```text
//! cargo run --release -p orca-lb-benches --bin orca-lb-harness -- \
//!     --scenario scenarios/s1_heterogeneous.toml --time-scale 0.25 --repeat 3 \
//!     --out target/harness/s1
//! ```

mod attribution;
mod keys;
mod machine;
mod policy;
mod probe;
mod rig;
mod run;
mod schedule;
mod summary;
mod watched_body;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use orca_lb_core::baseline::WrrConfig;
use orca_lb_sim::{CallLog, PolicyResult, Results, Scenario, ServiceTime, report, simulate_seeds};
use serde::Serialize;
use tracing_subscriber::layer::SubscriberExt;

use crate::attribution::PickCapture;
use crate::machine::Machine;
use crate::policy::{Policy, Settings};
use crate::rig::Rig;
use crate::run::RunStats;
use crate::summary::Agreement;

/// Runs orca-lb and its peers against real tonic servers on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The scenario file (scenarios/*.toml), as the simulator reads it.
    #[arg(long)]
    scenario: PathBuf,
    /// Comma-separated policies: rr, tonic, p2c_lr, p2c_peakewma, wrr_orca,
    /// orca-lb, prequal, c3, and for scenarios with `[keys]` ring_hash and
    /// orca-lb/affinity; or all. Default: all (with --smoke: rr,orca-lb).
    #[arg(long)]
    policies: Option<String>,
    /// Multiplies the warm-up, the measurement and the event times (0.25: a
    /// run of a quarter the length). wrr_orca's blackout period is scaled
    /// with them, so that the warm-up still outlasts it; the policies'
    /// other time constants stay as they are. Default 1 (with --smoke 0.04).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Sets the servers' stream max age, seconds (`streams.max_age_s`),
    /// overriding the scenario's; the simulator runs with it too.
    #[arg(long)]
    stream_max_age_s: Option<f64>,
    /// Repetitions; each runs every policy once, in a rotated order, with
    /// the seed of the repetition. Their calls are pooled.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// The first repetition's seed (the next ones count up).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seeds the simulator pools for the limit and the comparison.
    #[arg(long, default_value_t = 10)]
    sim_repeat: u32,
    /// Worker threads of the servers' runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Where to write results.json, table.md, the SVG plots, harness.json
    /// and harness.md, and the simulator's runs under sim/ (the scenario's
    /// service times) and sim_rig/ (the rig's).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A few seconds of the scenario with two policies, for CI: fails unless
    /// every policy completed calls and the table was produced.
    #[arg(long)]
    smoke: bool,
}

/// `--smoke`'s time scale: 3 s of a 75 s scenario.
const SMOKE_TIME_SCALE: f64 = 0.04;

/// Everything about a run that the simulator's `Results` have no place for.
#[derive(Debug, Serialize)]
struct HarnessReport {
    command: String,
    machine_before: Machine,
    machine_after: Machine,
    scenario: String,
    time_scale: f64,
    seeds: Vec<u64>,
    wrr_blackout_s: f64,
    /// How much longer than the scenario's a typical backend's service
    /// time was; `limit/rig` is the limit with it added.
    service_shift_ms: f64,
    client_cores_limit: f64,
    client_cores_max: f64,
    runs: Vec<RunStats>,
    /// The harness against the simulator at the scenario's service times.
    agreement: Vec<Agreement>,
    /// The same, at the service times the rig gave.
    agreement_rig: Vec<Agreement>,
    simulator: Results,
    simulator_rig: Results,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Only orca-lb's `picked` event is enabled: see `attribution`.
    let subscriber = tracing_subscriber::registry().with(PickCapture);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("orca-lb-harness: a tracing subscriber was already set");
        return ExitCode::FAILURE;
    }
    match run_all(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orca-lb-harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_all(args: &Args) -> Result<(), String> {
    let time_scale = args
        .time_scale
        .unwrap_or(if args.smoke { SMOKE_TIME_SCALE } else { 1.0 });
    if !(time_scale > 0.0 && time_scale.is_finite()) {
        return Err(format!("--time-scale must be positive, got {time_scale}"));
    }
    if args.repeat == 0 || args.sim_repeat == 0 {
        return Err("--repeat and --sim-repeat must be at least 1".into());
    }
    let default_policies = if args.smoke { "rr,orca-lb" } else { "all" };
    let mut scenario = Scenario::load(&args.scenario)?.scaled_in_time(time_scale);
    let policies = Policy::parse_list(
        args.policies.as_deref().unwrap_or(default_policies),
        scenario.keys.is_some(),
    )
    .map_err(|e| format!("{}: {e}", scenario.name))?;
    if let Some(age) = args.stream_max_age_s {
        let streams = scenario
            .streams
            .as_mut()
            .ok_or("--stream-max-age-s: the scenario has no streams")?;
        streams.max_age_s = Some(age);
        scenario.validate()?;
    }
    if !scenario.joining().is_empty()
        && let Some(p) = policies.iter().find(|p| !p.follows_joins())
    {
        return Err(format!(
            "{}: backends join during the run, and {} does not follow joins in the harness (rr, p2c_lr, orca-lb, prequal and c3 do)",
            scenario.name,
            p.name()
        ));
    }
    if scenario.mixed_with.is_some() {
        return Err(format!(
            "{}: mixed fleets (mixed_with) are not run by the harness yet (the simulator runs them)",
            scenario.name
        ));
    }
    let wrr = WrrConfig::default()
        .with_blackout_period(WrrConfig::default().blackout_period.mul_f64(time_scale));
    let settings = Settings {
        wrr,
        epsilon: scenario.keys.as_ref().map(|k| k.epsilon),
        clients: scenario.clients,
    };
    let weights = (!scenario.client_weights.is_empty()).then(|| scenario.client_rate_weights());
    let rig = Rig::new(args.server_threads, args.client_threads).map_err(|e| e.to_string())?;
    let machine_before = Machine::read();
    let seeds: Vec<u64> = (0..u64::from(args.repeat)).map(|r| args.seed + r).collect();
    let mut logs: Vec<Option<CallLog>> = policies.iter().map(|_| None).collect();
    let mut timings: Vec<(String, f64)> = policies
        .iter()
        .map(|p| (p.name().to_owned(), 0.0))
        .collect();
    let mut runs: Vec<RunStats> = Vec::new();
    let started = Instant::now();
    for (r, &seed) in seeds.iter().enumerate() {
        let mut planned = schedule::poisson(
            scenario.rate,
            scenario.clients,
            weights.as_deref(),
            scenario.end(),
            seed,
        );
        if let Some(k) = &scenario.keys {
            keys::assign(&mut planned, k, seed);
        }
        let schedule = Arc::new(planned);
        let streams = scenario.streams.as_ref().map_or_else(Vec::new, |s| {
            schedule::streams(s, scenario.clients, scenario.end(), seed)
        });
        for k in 0..policies.len() {
            // Interleaved: each repetition starts one policy later.
            let i = (k + r) % policies.len();
            let policy = policies[i];
            let out = run::run(
                &rig, &scenario, policy, &schedule, &streams, seed, r as u32, &settings,
            )
            .map_err(|e| format!("{} (repetition {}): {e}", policy.name(), r + 1))?;
            let probes = out
                .stats
                .probes_per_call
                .map_or_else(String::new, |p| format!(", {p:.2} probes per call"));
            eprintln!(
                "{} repetition {}/{}: {} calls measured, {} unattributed, client {:.3} cores{probes}, {:.1} s",
                policy.name(),
                r + 1,
                seeds.len(),
                out.stats.measured_calls,
                out.stats.unattributed,
                out.stats.cores.client,
                out.stats.wall_s,
            );
            timings[i].1 += out.stats.wall_s;
            runs.push(out.stats);
            match &mut logs[i] {
                Some(log) => log.merge(out.log),
                slot => *slot = Some(out.log),
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();

    // The simulator on the same scenario: the limit, and the comparison.
    // Then again with the service times the rig gave: the sleep timer's
    // resolution and the server's own work make every call a little longer
    // than the scenario says.
    let mut sim_policies: Vec<orca_lb_sim::Policy> =
        policies.iter().map(|p| p.simulated(&scenario)).collect();
    sim_policies.push(orca_lb_sim::Policy::Limit);
    let sim_seeds: Vec<u64> = (0..u64::from(args.sim_repeat))
        .map(|r| args.seed + r)
        .collect();
    let sim = simulate(&scenario, &sim_policies, &sim_seeds);
    // Per miss: with keyed calls, cache hits shortened the service times.
    let typical_ms = median_of(runs.iter().map(|r| r.mean_service_ms / r.service_factor));
    let nominal_ms = median_of(scenario.backend_groups().map(|g| g.service_time.mean_ms()));
    let shift_ms = (typical_ms - nominal_ms).max(0.0);
    let sim_rig = simulate(&shifted(&scenario, shift_ms), &sim_policies, &sim_seeds);
    let mut results: Vec<PolicyResult> = logs
        .into_iter()
        .zip(&policies)
        .map(|(log, p)| log.expect("every policy ran").finish(p.name()))
        .collect();
    if let Some(limit) = sim.policy("limit") {
        results.push(limit.clone());
    }
    if let Some(limit) = sim_rig.policy("limit") {
        let mut limit = limit.clone();
        limit.policy = summary::RIG_LIMIT.to_owned();
        results.push(limit);
    }
    let harness = Results::from_policies(&scenario, &seeds, results, timings);
    let agreement = summary::agreement(&harness, &sim);
    let agreement_rig = summary::agreement(&harness, &sim_rig);
    let table = report::table(&harness);
    let comparisons = [
        summary::Comparison {
            what: "at the scenario's service times".into(),
            sim: &sim,
            agreement: &agreement,
        },
        summary::Comparison {
            what: format!("at the service times the rig gave ({shift_ms:.2} ms longer)"),
            sim: &sim_rig,
            agreement: &agreement_rig,
        },
    ];
    let mut extras = summary::tables(&harness, &runs, shift_ms, &comparisons);
    if time_scale != 1.0 && policies.contains(&Policy::WrrOrca) {
        extras.push_str(&format!(
            "wrr_orca's blackout period is scaled with the run here ({:.1} s) but not in the simulator (10 s): at this scale their wrr_orca rows compare different warm-ups.\n",
            settings.wrr.blackout_period.as_secs_f64()
        ));
    }
    println!("{table}\n{extras}");
    eprintln!(
        "ran {} policies x {} repetitions in {wall:.0} s (time scale {time_scale})",
        policies.len(),
        seeds.len()
    );
    let client_cores_max = runs.iter().map(|r| r.cores.client).fold(0.0, f64::max);
    if let Some(dir) = &args.out {
        let report = HarnessReport {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine_before,
            machine_after: Machine::read(),
            scenario: scenario.name,
            time_scale,
            seeds,
            wrr_blackout_s: settings.wrr.blackout_period.as_secs_f64(),
            service_shift_ms: shift_ms,
            client_cores_limit: summary::CLIENT_CORES_LIMIT,
            client_cores_max,
            runs: runs.clone(),
            agreement,
            agreement_rig,
            simulator: sim,
            simulator_rig: sim_rig,
        };
        write_outputs(dir, &harness, &report, &table, &extras)?;
    }
    if args.smoke {
        smoke_check(&harness, &table)?;
    }
    Ok(())
}

/// `scenario` with every service time `shift_ms` longer (a fixed part
/// added to the draw).
fn shifted(scenario: &Scenario, shift_ms: f64) -> Scenario {
    let mut s = scenario.clone();
    for g in &mut s.backends {
        g.service_time = match g.service_time {
            ServiceTime::Exponential { mean_ms } => {
                ServiceTime::ShiftedExponential { shift_ms, mean_ms }
            }
            ServiceTime::ShiftedExponential {
                shift_ms: fixed,
                mean_ms,
            } => ServiceTime::ShiftedExponential {
                shift_ms: fixed + shift_ms,
                mean_ms,
            },
            other => other,
        };
    }
    s
}

fn write_outputs(
    dir: &Path,
    harness: &Results,
    report: &HarnessReport,
    table: &str,
    extras: &str,
) -> Result<(), String> {
    let mut files = report::write_all(harness, dir)?;
    let mut write = |name: &str, text: String| -> Result<(), String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        files.push(path);
        Ok(())
    };
    write("harness.md", format!("{table}\n{extras}"))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    write("harness.json", json)?;
    files.extend(report::write_all(&report.simulator, &dir.join("sim"))?);
    files.extend(report::write_all(
        &report.simulator_rig,
        &dir.join("sim_rig"),
    )?);
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

/// The simulator's run of `policies`, named as the harness names them.
fn simulate(scenario: &Scenario, policies: &[orca_lb_sim::Policy], seeds: &[u64]) -> Results {
    let mut sim = simulate_seeds(scenario, policies, seeds);
    for p in &mut sim.policies {
        if p.policy == "random" {
            p.policy = Policy::Tonic.name().to_owned();
        }
    }
    sim
}

/// `--smoke` passes when every policy completed calls in the measurement
/// window and the table lists each of them.
fn smoke_check(harness: &Results, table: &str) -> Result<(), String> {
    for p in harness
        .policies
        .iter()
        .filter(|p| !p.policy.starts_with("limit"))
    {
        let m = &p.measure;
        if m.calls == 0 || m.errors >= m.calls {
            return Err(format!(
                "smoke: {} completed no call ({} sent, {} failed)",
                p.policy, m.calls, m.errors
            ));
        }
        if !table.contains(&format!("| {} |", p.policy)) {
            return Err(format!("smoke: the table has no row for {}", p.policy));
        }
    }
    eprintln!("smoke: ok");
    Ok(())
}

/// The median of `values`, 0 when there are none.
fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    orca_lb_benches::median(&values.collect::<Vec<_>>()).unwrap_or(0.0)
}
