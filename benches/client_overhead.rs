//! What balancing costs a tonic client: the same unary calls through a
//! plain `Channel` to one backend, through orca-lb's `Balancer`, and through
//! tonic's own balanced `Channel`, in one process and one run.
//!
//! `cargo bench -p orca-lb-benches --bench client_overhead`
//!
//! The servers run on a tokio runtime of their own (one worker, threads
//! named `server-rt`), the clients on another (one worker, `client-rt`), so
//! the client side's CPU time is read apart from the servers' (see
//! [`orca_lb_benches::cpu`]). Each round, every variant in rotating order
//! makes 64 concurrent callers x 16 unary `SayHello` calls to greeter servers
//! that answer at once, so a call is all framework and the balancer's share
//! of the client's work is as large as it gets.
//!
//! Variants:
//! - `channel`: `GreeterClient<Channel>` to one bare server (the baseline);
//! - `balancer_1`: `GreeterClient<Balancer>` over that same server;
//! - `balancer_8`: a `Balancer` over 8 bare servers;
//! - `balancer_8_no_offer`: the same with `hand_backs(0)`: calls are not
//!   offered for hand-back, so their bodies are not read ahead and kept
//!   (bare servers never hand back: the difference is the offer's cost);
//! - `tonic_balance_8`: tonic's `Channel::balance_list` over the same 8;
//! - `channel_reporting`: a `Channel` to one server behind `ReportingLayer`
//!   (the client receives a report per call and ignores it);
//! - `balancer_8_reporting`: a `Balancer` over 8 servers behind the layer,
//!   reading every report: the path of a production client.
//!
//! Printed per variant: calls per second (wall clock, median of the rounds),
//! client CPU per call and calls per client core-second (all rounds), the
//! p50 and p99 of call latency (all calls), and the CPU per call and p99 as
//! ratios to `channel` (median of the per-round ratios, so load that comes
//! and goes on a shared machine lands on every variant alike).

use std::time::{Duration, Instant};

use orca_lb_benches::cpu::{CLIENT_PREFIX, CpuTimes, SERVER_PREFIX, named_runtime};
use orca_lb_benches::{BenchServer, Percentiles, Variant, hello_request, median};
use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

/// Concurrent callers per round.
const CALLERS: usize = 64;
/// Calls each caller makes per round.
const CALLS_EACH: usize = 16;
/// Backends of the balanced variants.
const BACKENDS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Balancer1,
    Balancer8,
    Balancer8NoOffer,
    TonicBalance8,
    ChannelReporting,
    Balancer8Reporting,
}

const KINDS: [Kind; 7] = [
    Kind::Channel,
    Kind::Balancer1,
    Kind::Balancer8,
    Kind::Balancer8NoOffer,
    Kind::TonicBalance8,
    Kind::ChannelReporting,
    Kind::Balancer8Reporting,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Channel => "channel",
            Kind::Balancer1 => "balancer_1",
            Kind::Balancer8 => "balancer_8",
            Kind::Balancer8NoOffer => "balancer_8_no_offer",
            Kind::TonicBalance8 => "tonic_balance_8",
            Kind::ChannelReporting => "channel_reporting",
            Kind::Balancer8Reporting => "balancer_8_reporting",
        }
    }
}

/// A generated client over one of the two transports.
#[derive(Clone)]
enum Client {
    Channel(GreeterClient<Channel>),
    Balancer(GreeterClient<Balancer>),
}

impl Client {
    /// One unary call; panics on failure (a benchmark must not time errors).
    async fn say_hello(&mut self) {
        let result = match self {
            Client::Channel(c) => c.say_hello(hello_request()).await.map(drop),
            Client::Balancer(c) => c.say_hello(hello_request()).await.map(drop),
        };
        if let Err(status) = result {
            panic!("SayHello failed: {status}");
        }
    }
}

/// The clients of every variant, connected and checked with one call each.
fn clients(client_rt: &Runtime, bare: &[BenchServer], layered: &[BenchServer]) -> Vec<Client> {
    let urls = |servers: &[BenchServer]| servers.iter().map(BenchServer::url).collect::<Vec<_>>();
    let (bare, layered) = (urls(bare), urls(layered));
    client_rt.block_on(async {
        let balancer = |urls: Vec<String>, hand_backs: u32| async move {
            let n = urls.len();
            let config = BalancerConfig::default()
                .with_target("bench")
                .with_hand_backs(hand_backs);
            let balancer = Balancer::from_uris(config, urls).expect("balancer");
            balancer.wait_for_endpoints(n).await;
            Client::Balancer(GreeterClient::new(balancer))
        };
        let channel = |url: String| async move {
            let channel = Endpoint::from_shared(url)
                .expect("url")
                .connect()
                .await
                .expect("connect");
            Client::Channel(GreeterClient::new(channel))
        };
        let mut clients = Vec::new();
        for kind in KINDS {
            let client = match kind {
                Kind::Channel => channel(bare[0].clone()).await,
                Kind::Balancer1 => balancer(bare[..1].to_vec(), 1).await,
                Kind::Balancer8 => balancer(bare.clone(), 1).await,
                Kind::Balancer8NoOffer => balancer(bare.clone(), 0).await,
                Kind::TonicBalance8 => {
                    let endpoints = bare
                        .iter()
                        .map(|u| Endpoint::from_shared(u.clone()).expect("url"));
                    Client::Channel(GreeterClient::new(Channel::balance_list(endpoints)))
                }
                Kind::ChannelReporting => channel(layered[0].clone()).await,
                Kind::Balancer8Reporting => balancer(layered.clone(), 1).await,
            };
            // Warm: connections up, and a few calls each.
            let mut c = client.clone();
            for _ in 0..(4 * BACKENDS) {
                c.say_hello().await;
            }
            clients.push(client);
        }
        clients
    })
}

/// One round of one variant: wall time, client CPU nanoseconds, latencies.
fn round(client_rt: &Runtime, client: &Client, latencies: &mut Vec<Duration>) -> (Duration, u64) {
    let before = CpuTimes::now();
    let start = Instant::now();
    let client = client.clone();
    let mut samples = client_rt.block_on(async move {
        let mut tasks = JoinSet::new();
        for _ in 0..CALLERS {
            let mut client = client.clone();
            tasks.spawn(async move {
                let mut own = Vec::with_capacity(CALLS_EACH);
                for _ in 0..CALLS_EACH {
                    let t = Instant::now();
                    client.say_hello().await;
                    own.push(t.elapsed());
                }
                own
            });
        }
        let mut all = Vec::with_capacity(CALLERS * CALLS_EACH);
        while let Some(own) = tasks.join_next().await {
            all.extend(own.expect("caller task panicked"));
        }
        all
    });
    let wall = start.elapsed();
    let cpu = CpuTimes::now().client.saturating_sub(before.client);
    latencies.append(&mut samples);
    (wall, cpu)
}

fn main() {
    let server_rt = named_runtime(&format!("{SERVER_PREFIX}rt"));
    let client_rt = named_runtime(&format!("{CLIENT_PREFIX}rt"));
    let spawn = |variant: Variant| {
        server_rt
            .block_on(BenchServer::spawn(variant))
            .expect("bench server")
    };
    let bare: Vec<BenchServer> = (0..BACKENDS).map(|_| spawn(Variant::Bare)).collect();
    let layered: Vec<BenchServer> = (0..BACKENDS).map(|_| spawn(Variant::Layered)).collect();
    let clients = clients(&client_rt, &bare, &layered);

    let rounds = orca_lb_benches::rounds_or_one(40);
    let n = KINDS.len();
    let mut wall = vec![Vec::with_capacity(rounds); n];
    let mut cpu = vec![Vec::with_capacity(rounds); n];
    let mut round_p99 = vec![Vec::with_capacity(rounds); n];
    let mut latencies = vec![Vec::new(); n];
    for r in 0..rounds {
        for k in 0..n {
            // Rotating order: no variant always runs first or last.
            let v = (r + k) % n;
            let mut own = Vec::with_capacity(CALLERS * CALLS_EACH);
            let (w, c) = round(&client_rt, &clients[v], &mut own);
            wall[v].push(w);
            cpu[v].push(c);
            round_p99[v].push(Percentiles::of(&mut own).map_or(f64::NAN, |p| p.p99.as_secs_f64()));
            latencies[v].append(&mut own);
        }
    }

    let calls = (CALLERS * CALLS_EACH) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!(
        "client overhead: {rounds} rounds of {CALLERS} callers x {CALLS_EACH} calls per variant, rotating order; {BACKENDS} backends for the balanced ones"
    );
    println!(
        "variant                 calls/s  client us/call  calls per client core-s    p50 us    p99 us | ratio to channel: cpu/call   p99"
    );
    for (v, kind) in KINDS.iter().enumerate() {
        let rps: Vec<f64> = wall[v].iter().map(|w| calls / w.as_secs_f64()).collect();
        let cpu_per_call = cpu[v].iter().sum::<u64>() as f64 / (calls * rounds as f64) / 1e3;
        let cpu_ratio: Vec<f64> = cpu[v]
            .iter()
            .zip(&cpu[0])
            .map(|(a, b)| *a as f64 / (*b).max(1) as f64)
            .collect();
        let p99_ratio: Vec<f64> = round_p99[v]
            .iter()
            .zip(&round_p99[0])
            .map(|(a, b)| a / b)
            .collect();
        let p = Percentiles::of(&mut latencies[v]).expect("calls were made");
        println!(
            "{:<22} {:>8.0} {:>15.2} {:>24.0} {:>9.1} {:>9.1} | {:>26.3} {:>5.3}",
            kind.name(),
            median(&rps).unwrap_or(f64::NAN),
            cpu_per_call,
            1e6 / cpu_per_call,
            us(p.p50),
            us(p.p99),
            median(&cpu_ratio).unwrap_or(f64::NAN),
            median(&p99_ratio).unwrap_or(f64::NAN),
        );
    }
    println!();
    drop(clients);
    drop((bare, layered));
}
