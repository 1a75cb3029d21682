//! `orca-lb-sim`: runs a scenario file over the policies, prints the tables
//! and writes JSON and SVG plots.
//!
//! ```text
//! cargo run --release -p orca-lb-sim -- \
//!     --scenario scenarios/s1_heterogeneous.toml --policies all --seed 1 --out target/sim/s1
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use orca_lb_sim::{Policy, Scenario, report, simulate_seeds};

/// Simulates orca-lb and its peers over a scenario in virtual time.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The scenario file (scenarios/*.toml).
    #[arg(long)]
    scenario: PathBuf,
    /// Comma-separated policies: rr, random (or tonic), p2c_lr,
    /// p2c_peakewma, wrr_orca, prequal, c3, orca-lb, orca-lb/<variant>,
    /// ring_hash and orca-lb/affinity (with keyed calls), limit; or all.
    /// (c3/p2c and c3/no-compensation, parts of C3, and
    /// orca-lb/choices=<k>, orca-lb with k candidates per pick, by name.)
    #[arg(long, default_value = "all")]
    policies: String,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs per policy, with seeds seed, seed+1, ...; their calls are pooled.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Multiplies the warm-up, the measurement and every event time, for
    /// shorter runs (0.25: a quarter as long). Rates and the policies'
    /// own time constants stay as they are.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Sets the servers' stream max age, seconds (`streams.max_age_s`),
    /// overriding the scenario's.
    #[arg(long)]
    stream_max_age_s: Option<f64>,
    /// Where to write results.json, table.md and the SVG plots.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orca-lb-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
        return Err(format!(
            "--time-scale must be a positive number, got {}",
            args.time_scale
        ));
    }
    let mut scenario = Scenario::load(&args.scenario)?.scaled_in_time(args.time_scale);
    if let Some(age) = args.stream_max_age_s {
        let streams = scenario
            .streams
            .as_mut()
            .ok_or("--stream-max-age-s: the scenario has no streams")?;
        streams.max_age_s = Some(age);
        scenario.validate()?;
    }
    let policies = Policy::parse_list(&args.policies, &scenario)?;
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let seeds: Vec<u64> = (0..args.repeat).map(|i| args.seed + i).collect();
    let started = Instant::now();
    let results = simulate_seeds(&scenario, &policies, &seeds);
    let wall = started.elapsed().as_secs_f64();
    println!("{}", report::table(&results));
    let per_policy: Vec<String> = results
        .timings
        .iter()
        .map(|(p, s)| format!("{p} {s:.1} s"))
        .collect();
    eprintln!(
        "simulated {} policies x {} runs in {wall:.1} s wall ({})",
        policies.len(),
        seeds.len(),
        per_policy.join(", ")
    );
    if let Some(dir) = &args.out {
        let files = report::write_all(&results, dir)?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}
