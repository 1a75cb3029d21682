//! `orca-lb-soak`: a long run of a balancer over four backends, one of them
//! hostile on every call, with the memory and the log lines of the client
//! and of the backends measured apart.
//!
//! The client (this process) offers an open-loop load (`--rate` calls a
//! second on a fixed schedule, for `--duration`) to a [`Balancer`] over
//! four backends in a second process (this binary run again with a hidden
//! role flag): three honest ones behind the reporting layer, and one whose
//! every response carries a hostile load report, in rotation undecodable,
//! NaN, infinite and oversized (32 KiB of named metrics, all new names),
//! and whose out-of-band stream floods (2,000 reports a second: valid, NaN
//! and infinite in turn). The balancer subscribes to every backend's out-of-band stream.
//!
//! Both processes log through `tracing`'s default text format at INFO and
//! above into a writer that counts lines. The resident set size (`VmRSS`)
//! of both is sampled every 10 s (every twentieth of a shorter run). The
//! run fails if either process's RSS at the end exceeds its RSS after the
//! first minute (the first tenth of a shorter run) by more than 10 %, or if
//! either logged more than [`SECOND_HALF_LOG_LINES_MAX`] lines in the
//! second half of the run: what is logged about a hostile backend must not
//! grow with the calls. Each process's live heap bytes (a counting
//! allocator) are reported beside its RSS, to tell what the process holds
//! from what the allocator keeps. `docs/benchmarks.md` ("Soak") has the results.
//!
//! ```text
//! cargo run --release -p orca-lb-benches --bin orca-lb-soak
//! cargo run -p orca-lb-benches --bin orca-lb-soak -- --duration 5s --rate 200 --no-memory-limit --quiet
//! ```

mod backends;
mod heap;
mod hostile;
mod load;
mod log_lines;
mod rss;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_server::StreamingMethods;
use orca_lb_testkit::GREETER_DESCRIPTOR_SET;
use tokio::time::Instant;
use tonic::Code;

use crate::backends::BackendsProcess;
use crate::load::Tally;
use crate::log_lines::LogLines;
use crate::rss::Rss;
use orca_lb_debug::duration_arg::parse_duration;

/// The most log lines either process may write in the second half of a
/// run, however long and however many calls: a summary a minute about the
/// hostile backend is five lines in the second half of the default run.
const SECOND_HALF_LOG_LINES_MAX: u64 = 30;

/// How much the RSS at the end may exceed the RSS at the baseline point.
const RSS_GROWTH_MAX: f64 = 1.10;

/// The longest gap between RSS samples, and the latest baseline point.
const SAMPLE_EVERY_MAX: Duration = Duration::from_secs(10);
const BASELINE_MAX: Duration = Duration::from_secs(60);

/// A balancer over four backends, one hostile on every call, for a long
/// time: client and backend memory and log lines must not grow.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// How long to send calls, with a unit: 5s, 10m, 1h30m, ...
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Calls a second, on a fixed schedule (open loop).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Report the RSS figures but do not fail on them: for runs too short
    /// for the baseline point to come after the warm-up.
    #[arg(long)]
    no_memory_limit: bool,
    /// Only count log lines: do not copy the first ones to stderr.
    #[arg(long)]
    quiet: bool,
    /// Which process this is; set by the client when it starts the
    /// backends' process.
    #[arg(long, value_enum, default_value_t = Role::Client, hide = true)]
    role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    Client,
    Backends,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let prefix = match args.role {
        Role::Client => "[client] ",
        Role::Backends => "[backends] ",
    };
    let echo = if args.quiet {
        0
    } else {
        log_lines::ECHOED_LINES
    };
    let result = log_lines::install(prefix, echo).and_then(|lines| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        match args.role {
            Role::Client => runtime.block_on(soak(&args, lines)),
            Role::Backends => runtime.block_on(backends::serve(lines)).map(|()| true),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("orca-lb-soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// One point of the run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    client_rss: Rss,
    server_rss: Rss,
    client_lines: u64,
    server_lines: u64,
    client_heap: u64,
    server_heap: u64,
}

/// When RSS is sampled: every `every` over the run, at the baseline point,
/// at half time and at the end, in order.
fn sample_points(duration: Duration, every: Duration, baseline: Duration) -> Vec<Duration> {
    let mut points: Vec<Duration> = (1..)
        .map(|k| every * k)
        .take_while(|&t| t < duration)
        .chain([baseline, duration / 2, duration])
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

/// Runs the soak; whether every check passed.
async fn soak(args: &Args, client_lines: LogLines) -> Result<bool, String> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 100_000.0) {
        return Err(format!(
            "--rate must be a number of calls a second in (0, 100000], got {}",
            args.rate
        ));
    }
    if args.duration < Duration::from_secs(1) {
        return Err(format!(
            "--duration must be at least 1s, got {:?}",
            args.duration
        ));
    }
    let duration = args.duration;
    let every = SAMPLE_EVERY_MAX.min(duration / 20);
    let baseline_at = BASELINE_MAX.min(duration / 10);

    let mut server = BackendsProcess::start(args.quiet).await?;
    let me = std::process::id();
    let config = BalancerConfig::default()
        .with_target("greeter")
        .with_streaming(
            StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
                .map_err(|e| e.to_string())?,
        )
        .with_oob_interval(Some(Duration::from_secs(1)));
    let balancer = Balancer::from_uris(config, &server.urls).map_err(|e| e.to_string())?;
    tokio::time::timeout(
        Duration::from_secs(30),
        balancer.wait_for_endpoints(server.urls.len()),
    )
    .await
    .map_err(|_| "the balancer did not list the backends in 30 s".to_string())?;

    println!(
        "orca-lb-soak: {} at {} calls/s; backends {} (the last hostile); client pid {me}, backends pid {}; load average {}",
        show(duration),
        args.rate,
        server.urls.join(" "),
        server.pid,
        load_average()
    );
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let driver = tokio::spawn(load::drive(
        balancer.clone(),
        args.rate,
        start,
        duration,
        tally.clone(),
    ));
    let mut samples = Vec::new();
    for at in sample_points(duration, every, baseline_at) {
        tokio::time::sleep_until(start + at).await;
        let (server_lines, server_heap) = server.stats().await?;
        let sample = Sample {
            at,
            client_rss: Rss::of(me)?,
            server_rss: Rss::of(server.pid)?,
            client_lines: client_lines.get(),
            server_lines,
            client_heap: heap::live_bytes(),
            server_heap,
        };
        println!(
            "t={:>5}  RSS/heap client {:>9} {:>9}  backends {:>9} {:>9}  sent {:>8}  ok {:>8}  peak in flight {:>5}  log lines {}/{}",
            show(at),
            sample.client_rss.to_string(),
            heap::mib(sample.client_heap),
            sample.server_rss.to_string(),
            heap::mib(sample.server_heap),
            tally.sent(),
            tally.count(Code::Ok),
            tally.take_peak_in_flight(),
            sample.client_lines,
            sample.server_lines,
        );
        samples.push(sample);
    }
    driver.await.map_err(|e| format!("the load task: {e}"))?;
    let drained = load::drained(&tally, Duration::from_secs(30)).await;
    let load_after = load_average();

    let find = |t: Duration| *samples.iter().find(|s| s.at == t).expect("sampled");
    let (base, half, end) = (find(baseline_at), find(duration / 2), find(duration));
    let client_ratio = base.client_rss.ratio(end.client_rss);
    let server_ratio = base.server_rss.ratio(end.server_rss);
    let client_second_half = end.client_lines - half.client_lines;
    let server_second_half = end.server_lines - half.server_lines;

    println!();
    let failed = tally.failed();
    let failed_total: u64 = failed.iter().map(|(_, n)| n).sum();
    let by_code: Vec<String> = failed.iter().map(|(c, n)| format!("{c:?} {n}")).collect();
    println!(
        "calls: sent {}, ok {}, failed {failed_total}{}; sent late (>100 ms behind schedule) {}; most in flight {}{}",
        tally.sent(),
        tally.count(Code::Ok),
        if by_code.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_code.join(", "))
        },
        tally.late(),
        tally.max_in_flight(),
        if drained {
            ""
        } else {
            "; NOT all answered 30 s after the end"
        },
    );
    println!(
        "endpoint                     responses   reports   invalid   oob dropped   latency ms   service ms"
    );
    let ms = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.2}", s * 1e3));
    for e in &balancer.snapshot().endpoints {
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>13} {:>12} {:>12}",
            e.uri,
            e.responses,
            e.reports,
            e.invalid_reports,
            e.oob_reports_dropped,
            ms(e.latency),
            ms(Some(e.cost.service_time)),
        );
    }
    println!(
        "RSS          at {:>5}    at end    end/baseline (limit {RSS_GROWTH_MAX:.2}{})",
        show(baseline_at),
        if args.no_memory_limit {
            ", not applied"
        } else {
            ""
        }
    );
    println!(
        "client    {:>11} {:>11}  {client_ratio:.3}",
        base.client_rss.to_string(),
        end.client_rss.to_string()
    );
    println!(
        "backends  {:>11} {:>11}  {server_ratio:.3}",
        base.server_rss.to_string(),
        end.server_rss.to_string()
    );
    println!("live heap (not a limit)");
    for (who, b, e) in [
        ("client", base.client_heap, end.client_heap),
        ("backends", base.server_heap, end.server_heap),
    ] {
        println!(
            "{who:<9} {:>11} {:>11}  {:.3}",
            heap::mib(b),
            heap::mib(e),
            e as f64 / b.max(1) as f64
        );
    }
    println!("log lines     total   second half (limit {SECOND_HALF_LOG_LINES_MAX})");
    println!(
        "client    {:>9} {:>13}",
        end.client_lines, client_second_half
    );
    println!(
        "backends  {:>9} {:>13}",
        end.server_lines, server_second_half
    );
    println!("load average at the end {load_after}");

    let mut problems = Vec::new();
    if !args.no_memory_limit {
        for (who, ratio) in [("client", client_ratio), ("backends", server_ratio)] {
            if ratio > RSS_GROWTH_MAX {
                problems.push(format!("{who} RSS grew {ratio:.3}x"));
            }
        }
    }
    for (who, n) in [
        ("client", client_second_half),
        ("backends", server_second_half),
    ] {
        if n > SECOND_HALF_LOG_LINES_MAX {
            problems.push(format!("{who} logged {n} lines in the second half"));
        }
    }
    if tally.count(Code::Ok) == 0 {
        problems.push("no call succeeded".into());
    }
    if !drained {
        problems.push("calls still in flight after the end".into());
    }
    drop(balancer);
    server.stop().await?;
    if problems.is_empty() {
        println!("result: pass");
        Ok(true)
    } else {
        println!("result: FAIL: {}", problems.join("; "));
        Ok(false)
    }
}

/// `90 s`, `10m`, `500 ms`: short and exact enough for the report.
fn show(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if d.as_secs().is_multiple_of(60) && d.as_secs() >= 60 {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{}s", d.as_secs())
    }
}

/// The first three fields of `/proc/loadavg`, or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_points_hold_baseline_half_and_end() {
        let s = |n| Duration::from_secs(n);
        let points = sample_points(s(600), s(10), s(60));
        assert_eq!(points.len(), 60);
        assert_eq!(points.first(), Some(&s(10)));
        assert_eq!(points.last(), Some(&s(600)));
        let short = sample_points(
            Duration::from_millis(5000),
            Duration::from_millis(250),
            Duration::from_millis(500),
        );
        assert_eq!(short.len(), 20);
        assert!(short.contains(&Duration::from_millis(2500)));
        assert!(short.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn flags() {
        let a = Args::try_parse_from(["soak"]).unwrap();
        assert_eq!(
            (a.duration, a.rate, a.role),
            (Duration::from_secs(600), 2000.0, Role::Client)
        );
        assert!(Args::try_parse_from(["soak", "--duration", "5"]).is_err());
        assert!(Args::try_parse_from(["soak", "--rate", "fast"]).is_err());
        assert!(Args::try_parse_from(["soak", "--bogus"]).is_err());
    }
}
