//! The reporting layer at work: three in-process backends of different speed
//! serve a steady round-robin load, and every second the demo prints what each
//! one reports in its per-call ORCA trailer.
//!
//! ```text
//! cargo run -p orca-lb-examples --example demo
//! ```

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orca_lb_core::LoadReport;
use orca_lb_examples::parse_duration;
use orca_lb_proto::pb::OrcaLoadReport;
use orca_lb_test::pb::HelloRequest;
use orca_lb_test::pb::greeter_client::GreeterClient;
use orca_lb_test::{Backend, BackendConfig, ServiceTime};
use parking_lot::Mutex;
use prost::Message;
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(about = "Watch in-process backends report their load")]
struct Args {
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Calls per second, spread round robin.
    #[arg(long, default_value_t = 250.0)]
    rate: f64,
}

struct Target {
    name: &'static str,
    client: GreeterClient<Channel>,
    latest: Arc<Mutex<Option<LoadReport>>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(format!("--rate must be a positive number, got {}", args.rate).into());
    }
    let mut backends = Vec::new();
    let mut targets = Vec::new();
    for (name, mean_ms) in [("fast", 10), ("medium", 20), ("slow", 40)] {
        let b = Backend::spawn(BackendConfig {
            capacity: Some(4),
            service_time: ServiceTime::Exponential(Duration::from_millis(mean_ms)),
            ..BackendConfig::named(name)
        })
        .await?;
        println!(
            "{name:>6}: {} (4 slots, mean service time {mean_ms} ms)",
            b.url()
        );
        targets.push(Target {
            name,
            client: GreeterClient::connect(b.url()).await?,
            latest: Arc::default(),
        });
        backends.push(b);
    }
    println!(
        "\nsending {} calls/s round robin for {:?}; each backend's latest per-call report:\n",
        args.rate, args.duration
    );

    let mut send = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut print = tokio::time::interval(Duration::from_secs(1));
    print.tick().await;
    let end = tokio::time::Instant::now() + args.duration;
    let mut next = 0usize;
    while tokio::time::Instant::now() < end {
        tokio::select! {
            _ = send.tick() => {
                let t = &targets[next % targets.len()];
                next += 1;
                let mut client = t.client.clone();
                let latest = t.latest.clone();
                tokio::spawn(async move {
                    if let Ok(response) = client.say_hello(HelloRequest::default()).await {
                        if let Some(report) = decode(response.metadata()) {
                            *latest.lock() = Some(report);
                        }
                    }
                });
            }
            _ = print.tick() => print_table(&targets),
        }
    }
    println!(
        "\nRound robin gives every backend the same calls, so the slow one runs near\n\
         its capacity while the fast one idles: that is what its reports say, and what\n\
         a load-aware client can act on."
    );
    drop(backends);
    Ok(())
}

fn decode(metadata: &tonic::metadata::MetadataMap) -> Option<LoadReport> {
    let bytes = metadata
        .get_bin(orca_lb_proto::TRAILER_KEY)?
        .to_bytes()
        .ok()?;
    LoadReport::try_from(OrcaLoadReport::decode(bytes).ok()?).ok()
}

fn print_table(targets: &[Target]) {
    println!(
        "{:>8} {:>9} {:>8} {:>7} {:>9} {:>9}",
        "backend", "app_util", "rps", "queue", "in_flight", "svc_ms"
    );
    for t in targets {
        match &*t.latest.lock() {
            None => println!("{:>8} (no report yet)", t.name),
            Some(r) => println!(
                "{:>8} {:>9.2} {:>8.1} {:>7} {:>9} {:>9.1}",
                t.name,
                r.application_utilization(),
                r.qps(),
                r.queue_depth().unwrap_or(0.0),
                r.in_flight().unwrap_or(0.0),
                r.service_time_ms().unwrap_or(0.0),
            ),
        }
    }
    println!();
}
