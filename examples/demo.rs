//! orca-lb against round robin, side by side, on in-process backends.
//!
//! Two identical fleets of four greeter backends run in this process: three
//! with 4 worker slots, one with 2, all with exponential service times of
//! 10 ms mean. Backend `b3` degrades (8x slower) from 10 s to 20 s. The same
//! open-loop Poisson load (700 calls/s, 1 s deadline) goes to one fleet
//! through orca-lb's balancer and to the other through round robin. Every
//! two seconds the demo prints, per policy: each backend's share, p50, p99,
//! errors, and orca-lb's view of each backend (score, circuit state).
//!
//! The orca-lb balancer is registered with the debug service, served on
//! 127.0.0.1:50900 (`--debug-addr`, `--no-debug`): watch it from another
//! terminal with `orca-lb state --watch`. With `--metrics-addr`, the
//! balancer's metrics are served in the Prometheus text format.
//!
//! ```text
//! cargo run -p orca-lb-examples --example demo
//! cargo run -p orca-lb-cli -- state --target 127.0.0.1:50900 --watch     # in another terminal
//! cargo run -p orca-lb-examples --example demo -- --metrics-addr 127.0.0.1:9464
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_debug::{DebugServer, DebugService, serve_debug};
use orca_lb_examples::parse_duration;
use orca_lb_examples::round_robin::RoundRobinChannels;
use orca_lb_examples::stats::Window;
use orca_lb_proto::StreamingMethods;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, GREETER_DESCRIPTOR_SET, ServiceTime, TestGreeter};
use parking_lot::Mutex;
use rand::Rng;
use tonic::transport::Endpoint;

#[derive(Parser, Debug)]
#[command(about = "orca-lb against round robin on in-process backends")]
struct Args {
    /// How long to run.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Calls per second sent to each fleet (open loop, Poisson).
    #[arg(long, default_value_t = 700.0)]
    rate: f64,
    /// When backend b3 starts being slow.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    degrade_at: Duration,
    /// How long b3 stays slow.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    degrade_for: Duration,
    /// Where to serve the orca-lb debug service (for `orca-lb state`).
    #[arg(long, default_value = "127.0.0.1:50900")]
    debug_addr: SocketAddr,
    /// Do not serve the debug service.
    #[arg(long)]
    no_debug: bool,
    /// Serve the balancer's metrics for Prometheus at http://ADDR/metrics
    /// (off by default).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

const MEAN: Duration = Duration::from_millis(10);
const SLOWDOWN: f64 = 8.0;
const DEADLINE: Duration = Duration::from_secs(1);
const REPORT_EVERY: Duration = Duration::from_secs(2);

struct Fleet {
    backends: Vec<Backend>,
}

impl Fleet {
    async fn start(tag: &str) -> Result<Fleet, Box<dyn std::error::Error>> {
        let mut backends = Vec::new();
        for (i, capacity) in [4, 4, 4, 2].into_iter().enumerate() {
            let name = format!("b{i}");
            let greeter = TestGreeter::new(&name).with_service_time(ServiceTime::Exponential(MEAN));
            backends.push(
                Backend::spawn(BackendConfig {
                    capacity: Some(capacity),
                    greeter: Some(greeter),
                    ..BackendConfig::named(&format!("{tag}-{name}"))
                })
                .await?,
            );
        }
        Ok(Fleet { backends })
    }

    fn slow_down(&self, on: bool) {
        let st = if on {
            ServiceTime::Exponential(MEAN.mul_f64(SLOWDOWN))
        } else {
            ServiceTime::Exponential(MEAN)
        };
        self.backends[3].greeter().set_service_time(st);
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(format!("--rate must be a positive number, got {}", args.rate).into());
    }
    if let Some(addr) = args.metrics_addr {
        // Installed before the balancer exists, so that its per-endpoint
        // metric handles register with this recorder.
        // Gauges of endpoints that left stop being set; the idle timeout
        // drops them (see docs/observability.md).
        // The call duration as a Prometheus histogram (the exporter's default
        // for a histogram is a summary).
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    "orca_lb_client_call_duration_seconds".into(),
                ),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )?
            .idle_timeout(
                metrics_util::MetricKindMask::GAUGE,
                Some(std::time::Duration::from_secs(60)),
            )
            .install()?;
        println!("metrics: http://{addr}/metrics");
    }
    let orca_fleet = Fleet::start("orca").await?;
    let rr_fleet = Fleet::start("rr").await?;

    let config = BalancerConfig::default()
        .with_target("demo")
        .with_streaming(StreamingMethods::from_file_descriptor_set(
            GREETER_DESCRIPTOR_SET,
        )?);
    let urls: Vec<String> = orca_fleet.backends.iter().map(|b| b.url()).collect();
    let balancer = Balancer::from_uris(config, &urls)?;
    balancer.wait_for_endpoints(4).await;
    let mut channels = Vec::new();
    for b in &rr_fleet.backends {
        channels.push(
            Endpoint::from_shared(b.url())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    let rr = RoundRobinChannels::new(channels);
    let _debug = if args.no_debug {
        None
    } else {
        serve_debug_for(&balancer, args.debug_addr).await
    };

    println!(
        "Two fleets of 4 backends (slots 4/4/4/2, ~{} ms per call); {} calls/s each;\n\
         b3 runs {SLOWDOWN}x slower from {:?} to {:?}. Deadline {:?}.\n",
        MEAN.as_millis(),
        args.rate,
        args.degrade_at,
        args.degrade_at + args.degrade_for,
        DEADLINE
    );

    let orca_stats = Arc::new(Mutex::new(Window::default()));
    let rr_stats = Arc::new(Mutex::new(Window::default()));
    let mut orca_total = Window::default();
    let mut rr_total = Window::default();

    let start = tokio::time::Instant::now();
    let end = start + args.duration;
    let mut next_send = start;
    let mut next_report = start + REPORT_EVERY;
    let mut degraded = false;
    let mut rng = rand::rng();
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            break;
        }
        let elapsed = now - start;
        let should_degrade =
            elapsed >= args.degrade_at && elapsed < args.degrade_at + args.degrade_for;
        if should_degrade != degraded {
            degraded = should_degrade;
            orca_fleet.slow_down(degraded);
            rr_fleet.slow_down(degraded);
            println!(
                ">>> t={:>4.1}s b3 {}\n",
                elapsed.as_secs_f64(),
                if degraded {
                    "slows down 8x"
                } else {
                    "recovers"
                }
            );
        }
        if now >= next_report {
            next_report += REPORT_EVERY;
            let mut o = std::mem::take(&mut *orca_stats.lock());
            let mut r = std::mem::take(&mut *rr_stats.lock());
            print_interval(elapsed, &balancer, &urls, &mut o, &mut r);
            orca_total.merge(&o);
            rr_total.merge(&r);
        }
        if now >= next_send {
            // Open loop: the schedule does not wait for replies, and latency
            // counts from the intended send time.
            let intended = next_send;
            let gap: f64 = -(1.0 - rng.random::<f64>()).ln() / args.rate;
            next_send += Duration::from_secs_f64(gap);
            spawn_call(
                GreeterClient::new(balancer.clone()),
                intended,
                orca_stats.clone(),
            );
            spawn_call(GreeterClient::new(rr.clone()), intended, rr_stats.clone());
            continue;
        }
        tokio::time::sleep_until(next_send.min(next_report)).await;
    }

    println!("=== whole run ===");
    summary("orca-lb", &mut orca_total);
    summary("round robin", &mut rr_total);
    Ok(())
}

/// Serves the debug service with the orca-lb balancer registered, and says
/// how to watch it. A port already in use is reported, not fatal.
async fn serve_debug_for(balancer: &Balancer, addr: SocketAddr) -> Option<DebugServer> {
    let debug = DebugService::new();
    debug.register("demo", balancer);
    match serve_debug(addr, debug).await {
        Ok(server) => {
            println!(
                "watch it live: cargo run -p orca-lb-cli -- state --target {} --watch\n",
                server.local_addr()
            );
            Some(server)
        }
        Err(e) => {
            println!(
                "debug service not started: cannot listen on {addr}: {e} \
                 (pick another with --debug-addr, or --no-debug)\n"
            );
            None
        }
    }
}

fn spawn_call<T>(
    mut client: GreeterClient<T>,
    intended: tokio::time::Instant,
    stats: Arc<Mutex<Window>>,
) where
    T: tonic::client::GrpcService<tonic::body::Body> + Send + 'static,
    T::Future: Send,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        let mut request = tonic::Request::new(HelloRequest::default());
        request.set_timeout(DEADLINE);
        let result = client.say_hello(request).await;
        let latency = intended.elapsed();
        let mut s = stats.lock();
        match result {
            Ok(reply) => {
                let backend = reply.into_inner().backend;
                let short = backend.rsplit('-').next().unwrap_or(&backend).to_string();
                s.ok(&short, latency);
            }
            Err(_) => s.error(latency.max(DEADLINE)),
        }
    });
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3))
}

fn shares(w: &Window) -> String {
    let total: u64 = w.per_backend().values().sum();
    (0..4)
        .map(|i| {
            let n = w.per_backend().get(&format!("b{i}")).copied().unwrap_or(0);
            format!("b{i} {:>3.0}%", 100.0 * n as f64 / total.max(1) as f64)
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn print_interval(
    elapsed: Duration,
    balancer: &Balancer,
    urls: &[String],
    o: &mut Window,
    r: &mut Window,
) {
    println!("t={:>4.1}s", elapsed.as_secs_f64());
    println!(
        "  orca-lb     {}  p50 {:>4} ms  p99 {:>5} ms  errors {}",
        shares(o),
        ms(o.quantile(0.5)),
        ms(o.quantile(0.99)),
        o.errors()
    );
    println!(
        "  round robin {}  p50 {:>4} ms  p99 {:>5} ms  errors {}",
        shares(r),
        ms(r.quantile(0.5)),
        ms(r.quantile(0.99)),
        r.errors()
    );
    let snapshot = balancer.snapshot();
    let states: Vec<String> = urls
        .iter()
        .enumerate()
        .filter_map(|(i, url)| {
            let e = snapshot.endpoints.iter().find(|e| &e.key == url)?;
            Some(format!(
                "b{i} {} {:.0}ms",
                e.breaker,
                e.cost.total().seconds() * 1e3
            ))
        })
        .collect();
    println!("  orca-lb sees: {}\n", states.join("  "));
}

fn summary(name: &str, w: &mut Window) {
    println!(
        "  {name:<12} calls {:>6}  p50 {:>4} ms  p99 {:>5} ms  p99.9 {:>5} ms  errors {}",
        w.calls(),
        ms(w.quantile(0.5)),
        ms(w.quantile(0.99)),
        ms(w.quantile(0.999)),
        w.errors()
    );
}
