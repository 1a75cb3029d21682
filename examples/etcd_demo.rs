//! Balancing over servers that register themselves in etcd.
//!
//! Two in-process greeter servers, `fast` (5 ms per call, zone `a`) and `slow`
//! (20 ms, zone `b`), register under `/orca-lb/etcd-demo/` with a lease. A
//! client discovers them through an etcd watch and calls them through
//! orca-lb's balancer; every second the demo prints how the calls split.
//! Halfway through, `fast` drains gracefully (health NOT_SERVING, lease
//! revoked, listener closed, calls in flight finished) and its share goes to
//! `slow` with no failed call; at the end `slow` drains too, leaving etcd as
//! it was.
//!
//! ```text
//! scripts/etcd start                                        # in another terminal
//! cargo run -p orca-lb-examples --example etcd-demo -- --etcd http://127.0.0.1:2379
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_etcd::{
    Drain, DrainConfig, DrainReport, EtcdClient, EtcdDiscovery, Registration, RegistrationConfig,
};
use orca_lb_examples::parse_duration;
use orca_lb_server::ReportingLayer;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{ServiceTime, TestGreeter};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The service name the demo registers under.
const SERVICE: &str = "etcd-demo";

#[derive(Parser, Debug)]
#[command(about = "Servers register in etcd; a client balances over what it discovers")]
struct Args {
    /// The etcd server (`scripts/etcd start` runs one on 127.0.0.1:2379).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    etcd: String,
    /// How long to run.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The servers' lease TTL.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    ttl: Duration,
}

/// A registered greeter and what its drain needs.
struct Server {
    name: &'static str,
    drain: Drain,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    registration: Registration,
}

impl Server {
    async fn start(
        etcd: &EtcdClient,
        name: &'static str,
        service_time: Duration,
        zone: &str,
        ttl: Duration,
    ) -> Result<Server, Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<GreeterServer<TestGreeter>>().await;
        let drain = Drain::new(
            DrainConfig::default()
                .with_propagation(Duration::from_millis(500))
                .with_deadline(Duration::from_secs(5)),
        )
        .health(health, ["orca_lb.testing.v1.Greeter"]);
        let (layer, _recorder) = ReportingLayer::builder().capacity(4).build()?;
        let greeter = TestGreeter::new(name).with_service_time(ServiceTime::Fixed(service_time));
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(health_service)
                .add_service(GreeterServer::new(greeter))
                .serve_with_incoming_shutdown(drain.incoming(listener), drain.signal()),
        );
        // Register only once the server accepts calls.
        let mut config = RegistrationConfig::new(SERVICE, format!("http://{addr}").parse()?);
        config.ttl = ttl;
        config.record.zone = Some(zone.to_string());
        let registration = Registration::start(etcd.clone(), config).await?;
        println!(
            "{name}: serving on {addr}, registered as {}",
            registration.key()
        );
        Ok(Server {
            name,
            drain,
            task,
            registration,
        })
    }

    async fn drain(self) -> DrainReport {
        let name = self.name;
        let report = self.drain.run(Some(self.registration), self.task).await;
        println!(
            "{name}: drained in {:?}, calls in flight {}",
            report.took,
            if report.finished {
                "all finished"
            } else {
                "cut at the deadline"
            }
        );
        report
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let etcd = EtcdClient::connect_lazy([&args.etcd])?.request_timeout(Duration::from_secs(2));
    if let Err(e) = etcd.get("/orca-lb").await {
        return Err(format!(
            "cannot reach etcd at {} ({e}); start one with `scripts/etcd start`",
            args.etcd
        )
        .into());
    }

    let fast = Server::start(&etcd, "fast", Duration::from_millis(5), "a", args.ttl).await?;
    let slow = Server::start(&etcd, "slow", Duration::from_millis(20), "b", args.ttl).await?;

    let discovery = EtcdDiscovery::new(etcd.clone(), SERVICE);
    let stats = discovery.stats();
    let config = BalancerConfig::default().with_target(SERVICE);
    let balancer = Balancer::new(config, discovery.into_stream())?;
    tokio::time::timeout(Duration::from_secs(5), balancer.wait_for_endpoints(2)).await?;
    for (key, record) in stats.endpoints() {
        println!(
            "discovered {key}: {} zone {}",
            record.addr.authority().map_or("?", |a| a.as_str()),
            record.zone.as_deref().unwrap_or("-")
        );
    }

    let counts = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let end = tokio::time::Instant::now() + args.duration;
    let mut callers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let mut client = GreeterClient::new(balancer.clone());
        let counts = counts.clone();
        callers.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                let key = match client.say_hello(HelloRequest::default()).await {
                    Ok(reply) => reply.into_inner().backend,
                    Err(status) => format!("error {:?}", status.code()),
                };
                *counts.lock().entry(key).or_default() += 1;
            }
        }));
    }

    let drain_at = tokio::time::Instant::now() + args.duration / 2;
    let mut fast = Some(fast);
    let mut draining: Option<JoinHandle<DrainReport>> = None;
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
        if tokio::time::Instant::now() >= drain_at
            && let Some(server) = fast.take()
        {
            println!("fast: draining");
            draining = Some(tokio::spawn(server.drain()));
        }
    }
    for caller in callers {
        caller.await?;
    }
    if let Some(d) = draining {
        d.await?;
    }
    if let Some(server) = fast {
        server.drain().await;
    }
    slow.drain().await;
    println!(
        "discovery: {} malformed values skipped, {} reconnects",
        stats.malformed(),
        stats.reconnects()
    );
    Ok(())
}
