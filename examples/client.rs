//! Calls a list of greeter servers through orca-lb's balancer and prints,
//! every second, how the calls split across them.
//!
//! ```text
//! cargo run -p orca-lb-examples --example server -- --port 50051 &
//! cargo run -p orca-lb-examples --example server -- --port 50052 --service-time 40ms &
//! cargo run -p orca-lb-examples --example client -- --target http://127.0.0.1:50051 --target http://127.0.0.1:50052
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_examples::parse_duration;
use orca_lb_test::pb::HelloRequest;
use orca_lb_test::pb::greeter_client::GreeterClient;
use parking_lot::Mutex;

#[derive(Parser, Debug)]
#[command(about = "Call greeter servers through orca-lb and watch the split")]
struct Args {
    /// A server to balance over (`http://host:port`); repeat for more.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Subscribe to out-of-band reports at this period (e.g. 1s).
    #[arg(long, value_parser = parse_duration)]
    oob: Option<Duration>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "orca_lb_client=info".into()),
        )
        .init();
    let args = Args::parse();
    let config = BalancerConfig {
        target: "greeter".into(),
        oob_interval: args.oob,
        ..BalancerConfig::default()
    };
    let balancer = Balancer::from_uris(config, &args.targets)?;
    balancer.wait_for_endpoints(args.targets.len()).await;

    let counts = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let end = tokio::time::Instant::now() + args.duration;
    for _ in 0..args.concurrency.max(1) {
        let mut client = GreeterClient::new(balancer.clone());
        let counts = counts.clone();
        tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                let key = match client.say_hello(HelloRequest::default()).await {
                    Ok(reply) => reply.into_inner().backend,
                    Err(status) => format!("error {:?}", status.code()),
                };
                *counts.lock().entry(key).or_default() += 1;
            }
        });
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        let split = std::mem::take(&mut *counts.lock());
        let total: u64 = split.values().sum();
        let line: Vec<String> = split
            .iter()
            .map(|(k, v)| format!("{k} {v} ({:.0}%)", 100.0 * *v as f64 / total.max(1) as f64))
            .collect();
        println!("{total:>6} calls/s: {}", line.join(", "));
    }
    Ok(())
}
