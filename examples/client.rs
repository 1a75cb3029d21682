//! Calls a list of greeter servers through orca-lb's balancer and prints,
//! every second, how the calls split across them.
//!
//! ```text
//! cargo run -p orca-lb-examples --example server -- --port 50051 &
//! cargo run -p orca-lb-examples --example server -- --port 50052 --service-time 40ms &
//! cargo run -p orca-lb-examples --example client -- --target http://127.0.0.1:50051 --target http://127.0.0.1:50052
//! ```
//!
//! Over TLS (certificates from the `certs` example), the targets are still
//! the addresses to dial; the certificates are checked against
//! `--tls-domain`:
//!
//! ```text
//! cargo run -p orca-lb-examples --example client -- --target http://127.0.0.1:50051 \
//!     --tls-ca certs/ca.pem --tls-domain greeter.example --tls-cert certs/client.pem --tls-key certs/client.key
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orca_lb_client::{Balancer, BalancerConfig, EndpointTemplate, TlsFiles};
use orca_lb_examples::parse_duration;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
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
    /// Speak TLS, trusting the CA certificates in this PEM file.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name the servers' certificates must carry (default: the first
    /// target's host). Implies TLS.
    #[arg(long)]
    tls_domain: Option<String>,
    /// This client's certificate chain (PEM), for mTLS; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// This client's private key (PEM), for mTLS; needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Args {
    /// The endpoint template the TLS flags ask for: plaintext without any.
    fn endpoint(&self) -> Result<EndpointTemplate, Box<dyn std::error::Error>> {
        if self.tls_ca.is_none() && self.tls_domain.is_none() && self.tls_cert.is_none() {
            return Ok(EndpointTemplate::plain());
        }
        let name = match &self.tls_domain {
            Some(domain) => domain.clone(),
            None => {
                let first: http::Uri = self.targets[0].parse()?;
                first.host().ok_or("a target has no host")?.to_string()
            }
        };
        let files = TlsFiles {
            ca: self.tls_ca.clone(),
            domain: self.tls_domain.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        };
        Ok(files.template(&format!("https://{name}"))?)
    }
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
        endpoint: args.endpoint()?,
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
