//! What `ReportingLayer` costs a server's streams: 1,000 concurrent
//! server-streaming calls to the same greeter server bare and behind the
//! layer, in one process and one run.
//!
//! `cargo bench -p orca-lb-benches --bench streaming_overhead`
//!
//! - **Messages per second**: each round opens 1,000 `SayHelloStream` calls
//!   at once on one connection per server, each asking for 32 replies, and
//!   reads them all; the variants take turns in rotating order, and a second
//!   bare server (`bare_again`) shows the noise floor. Printed: the median
//!   of the rounds, and the median of the per-round ratios to `bare`.
//! - **Memory**: 1,000 streams held open (one reply each, then the server
//!   holds the stream until the client goes away), with a counting global
//!   allocator: the bytes still allocated once every stream has its first
//!   reply, per stream, client side included (the same client for every
//!   variant, so the difference to `bare` is the layer's).

use std::alloc::System;
use std::time::Instant;

use orca_lb_benches::{BenchServer, Variant, median};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tonic::transport::Channel;

/// `System`, counting every allocation in atomics (see `layer_call_path`).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Concurrent streams.
const STREAMS: usize = 1_000;
/// Replies each stream asks for in the throughput rounds.
const REPLIES: u32 = 32;

const VARIANTS: [(&str, Variant); 3] = [
    ("bare", Variant::Bare),
    ("bare_again", Variant::Bare),
    ("layered", Variant::Layered),
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn request(count: u32) -> HelloRequest {
    HelloRequest {
        name: "bench".into(),
        count,
        ..Default::default()
    }
}

/// Opens [`STREAMS`] streams of [`REPLIES`] replies at once and reads them
/// all; returns the messages read.
async fn round(client: &GreeterClient<Channel>) -> u64 {
    let mut tasks = JoinSet::new();
    for _ in 0..STREAMS {
        let mut client = client.clone();
        tasks.spawn(async move {
            let mut stream = client
                .say_hello_stream(request(REPLIES))
                .await
                .expect("stream opened")
                .into_inner();
            let mut n = 0u64;
            while stream.message().await.expect("stream message").is_some() {
                n += 1;
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.expect("stream task panicked");
    }
    total
}

/// Bytes still allocated per stream with [`STREAMS`] streams open and each
/// past its first reply.
async fn bytes_per_open_stream(client: &GreeterClient<Channel>) -> f64 {
    let region = Region::new(GLOBAL);
    let mut open = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let mut client = client.clone();
        open.push(tokio::spawn(async move {
            let mut stream = client
                .say_hello_stream(request(0))
                .await
                .expect("stream opened")
                .into_inner();
            stream.message().await.expect("first reply");
            stream
        }));
    }
    let mut streams = Vec::with_capacity(STREAMS);
    for task in open {
        streams.push(task.await.expect("stream task panicked"));
    }
    let change = region.change();
    let held = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    drop(streams);
    held / STREAMS as f64
}

fn main() {
    let rt = runtime();
    let (servers, clients): (Vec<BenchServer>, Vec<GreeterClient<Channel>>) = rt.block_on(async {
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        for (_, variant) in VARIANTS {
            let server = BenchServer::spawn(variant).await.expect("bench server");
            let client = server.client().await.expect("client");
            // Warm: the connection's windows and the server's tasks.
            round(&client).await;
            servers.push(server);
            clients.push(client);
        }
        (servers, clients)
    });

    let rounds = orca_lb_benches::rounds_or_one(15);
    let n = VARIANTS.len();
    let mut rate = vec![Vec::with_capacity(rounds); n];
    let mut bytes = vec![Vec::with_capacity(rounds); n];
    for r in 0..rounds {
        for k in 0..n {
            let v = (r + k) % n;
            let start = Instant::now();
            let messages = rt.block_on(round(&clients[v]));
            assert_eq!(messages, STREAMS as u64 * u64::from(REPLIES));
            rate[v].push(messages as f64 / start.elapsed().as_secs_f64());
        }
        for k in 0..n {
            let v = (r + k) % n;
            bytes[v].push(rt.block_on(bytes_per_open_stream(&clients[v])));
        }
    }

    println!();
    println!(
        "streaming overhead: {rounds} rounds; {STREAMS} concurrent server streams of {REPLIES} replies per round, then {STREAMS} held open"
    );
    println!(
        "variant         messages/s | % of bare: median of rounds | bytes per open stream (median) | vs bare"
    );
    for (v, (name, _)) in VARIANTS.iter().enumerate() {
        let ratios: Vec<f64> = rate[v].iter().zip(&rate[0]).map(|(a, b)| a / b).collect();
        let b = median(&bytes[v]).unwrap_or(f64::NAN);
        let b0 = median(&bytes[0]).unwrap_or(f64::NAN);
        println!(
            "{:<14} {:>11.0} | {:>27.1} | {:>30.0} | {:>+7.0}",
            name,
            median(&rate[v]).unwrap_or(f64::NAN),
            100.0 * median(&ratios).unwrap_or(f64::NAN),
            b,
            b - b0,
        );
    }
    println!();
    drop(clients);
    drop(servers);
}
