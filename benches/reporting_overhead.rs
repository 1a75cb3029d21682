//! What `ReportingLayer` costs a tonic server: the same greeter server bare
//! and behind the layer, in one process and one run.
//!
//! `cargo bench -p orca-lb-benches --bench reporting_overhead`
//!
//! The criterion group "reporting layer overhead" measures, per variant:
//! - `unary_latency`: one unary `SayHello` over loopback through a connected
//!   client, one call at a time;
//! - `throughput`: 64 concurrent callers on one connection, each making a
//!   fixed number of calls; criterion reports calls per second.
//!
//! Variants: `bare` (the baseline), `layered`, `layered_no_recorder` (the
//! layer with `call_recorder(false)`: no per-call `CallRecorder` for the
//! handler), and `layered_cap64`, a layer with 64 worker slots,
//! which prices the slot semaphore (64 callers never wait for a slot, so
//! nothing queues).
//!
//! The servers set `TCP_NODELAY` on accepted connections, as tonic's
//! `Server::serve` does by default.
//!
//! Criterion runs the variants one after the other, so slow drift of a noisy
//! machine lands on one variant. After the group, an interleaved check runs
//! the variants in rotating order, call by call for latency percentiles (p50
//! to p99.9, which criterion does not give) and batch by batch for
//! throughput, and prints every figure as a ratio to `bare`. A second bare
//! server (`bare_again`) shows the noise floor: its ratio would be 1.00 on a
//! quiet machine. The check runs three times: with `TCP_NODELAY`; then (half
//! as long) with Nagle's algorithm on, the kernel's default, which a server
//! fed a plain `TcpListenerStream` keeps; then with `TCP_NODELAY` and a
//! handler that does work: it spins on the CPU for 50 µs per call
//! (`Work::Spin`). The greeter above answers at once, so a call is all
//! framework and the layer's share of it is as large as it gets; with the
//! spin, the same absolute cost is read against a call that does something.
//! The work is CPU-bound rather than a sleep because the question is how much
//! of the server's capacity the layer takes: a sleeping handler leaves the
//! CPU idle, so at a fixed number of callers its throughput is set by the
//! sleep, and tokio's timer would round a 200 µs sleep up to a millisecond
//! or more anyway.
//!
//! Last comes the **CPU check**, the steadiest of these figures on a shared
//! machine: throughput and latency over loopback move with whatever else
//! runs, CPU time per call much less. The servers run on a tokio runtime of
//! their own (one worker, threads named `server-rt`), the clients on
//! another (one worker, `client-rt`), and each batch of 64 callers x 16
//! calls (40 rounds, rotating order, zero-work handler, `TCP_NODELAY`) is
//! charged the CPU time the server threads and the client threads used
//! meanwhile (see [`orca_lb_benches::cpu`]). Printed per variant: server and
//! client CPU per call (medians of the rounds), and as ratios to `bare`
//! (medians of the per-round ratios). The server's figure is the layer's
//! cost in the server's capacity: its own code and the report's HPACK
//! encoding; the client's is what receiving the report costs the client
//! (HPACK decoding, the longer trailers), which the loopback throughput
//! charges to the server as well, since there both share the two cores.
//! `cargo bench -p orca-lb-benches --bench reporting_overhead -- cpu_check`
//! runs the CPU check alone.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use orca_lb_benches::cpu::{CLIENT_PREFIX, CpuTimes, SERVER_PREFIX, named_runtime};
use orca_lb_benches::{
    BenchServer, Listener, Percentiles, Variant, Work, call_batch, median, say_hello,
};
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use tokio::runtime::Runtime;
use tonic::transport::Channel;

/// Concurrent callers in the throughput benchmark.
const CALLERS: usize = 64;
/// Calls each caller makes per measured batch.
const CALLS_EACH: usize = 32;
/// The capacity of the limited layer: as many slots as callers, so a call
/// never waits and only the semaphore's own cost shows.
const CAPACITY: usize = 64;
/// CPU time the handler burns per call in the check with work.
const SPIN: Duration = Duration::from_micros(50);

const VARIANTS: [Variant; 4] = [
    Variant::Bare,
    Variant::Layered,
    Variant::LayeredNoRecorder,
    Variant::LayeredCapacity(CAPACITY),
];

/// Client and server share one runtime with one worker per core; the timed
/// client future runs on the benchmark thread (`block_on`).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts one server per variant and connects a client to each.
fn start(
    rt: &Runtime,
    variants: &[Variant],
    listener: Listener,
    work: Work,
) -> Vec<(BenchServer, GreeterClient<Channel>)> {
    rt.block_on(async {
        let mut out = Vec::new();
        for &v in variants {
            let server = BenchServer::spawn_with(v, listener, work)
                .await
                .expect("spawn server");
            let client = server.client().await.expect("connect");
            out.push((server, client));
        }
        out
    })
}

fn overhead(c: &mut Criterion) {
    let rt = runtime();
    let servers = start(&rt, &VARIANTS, Listener::NoDelay, Work::None);
    let mut group = c.benchmark_group("reporting layer overhead");

    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50);
    for (server, client) in &servers {
        group.bench_function(BenchmarkId::new("unary_latency", server.variant()), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let mut client = client.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        say_hello(&mut client).await;
                    }
                    start.elapsed()
                }
            });
        });
    }

    // One batch takes tens of milliseconds: flat sampling keeps the number of
    // batches per sample constant instead of growing it linearly.
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements((CALLERS * CALLS_EACH) as u64));
    for (server, client) in &servers {
        group.bench_function(
            BenchmarkId::new(format!("throughput_{CALLERS}_callers"), server.variant()),
            |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let client = client.clone();
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            call_batch(&client, CALLERS, CALLS_EACH).await;
                        }
                        start.elapsed()
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, overhead);

/// How much the interleaved check does: the full amount under `cargo bench`,
/// a token amount when the benchmarks run as tests (`cargo test --benches`),
/// nothing when criterion lists or profiles.
struct CheckSize {
    /// Calls per variant for the latency percentiles.
    latency_calls: usize,
    /// Batches per variant for throughput.
    rounds: usize,
    /// Calls per caller per batch.
    calls_each: usize,
}

impl CheckSize {
    /// `None` when criterion only lists or profiles the benchmarks.
    fn from_args() -> Option<CheckSize> {
        let args: Vec<String> = std::env::args().collect();
        let has = |flag: &str| {
            args.iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        if has("--list") || has("--profile-time") {
            None
        } else if has("--bench") && !has("--test") {
            Some(CheckSize {
                latency_calls: 20_000,
                rounds: 40,
                calls_each: 16,
            })
        } else {
            Some(CheckSize {
                latency_calls: 20,
                rounds: 1,
                calls_each: 1,
            })
        }
    }
}

/// The filter that runs the CPU check alone: it matches no criterion
/// benchmark, and the other checks are skipped.
const CPU_ONLY: &str = "cpu_check";

/// The variants of the interleaved check, with a second bare server whose
/// ratio to the first is the noise floor.
const CHECKED: [(&str, Variant); 5] = [
    ("bare", Variant::Bare),
    ("bare_again", Variant::Bare),
    ("layered", Variant::Layered),
    ("layered_no_recorder", Variant::LayeredNoRecorder),
    ("layered_cap64", Variant::LayeredCapacity(CAPACITY)),
];

/// Per-call latencies and per-batch calls per second of each variant of
/// [`CHECKED`], measured in rotating order.
struct Interleaved {
    latencies: Vec<Vec<Duration>>,
    rps: Vec<Vec<f64>>,
}

async fn measure_interleaved(clients: &[GreeterClient<Channel>], size: &CheckSize) -> Interleaved {
    let n = clients.len();
    let mut clients = clients.to_vec();
    // Warm every connection first.
    for c in &clients {
        call_batch(c, CALLERS, 4).await;
    }
    let mut latencies = vec![Vec::with_capacity(size.latency_calls); n];
    for i in 0..size.latency_calls {
        for k in 0..n {
            let v = (i + k) % n;
            let start = Instant::now();
            say_hello(&mut clients[v]).await;
            latencies[v].push(start.elapsed());
        }
    }
    let calls = (CALLERS * size.calls_each) as f64;
    let mut rps = vec![Vec::with_capacity(size.rounds); n];
    for r in 0..size.rounds {
        for k in 0..n {
            let v = (r + k) % n;
            let start = Instant::now();
            call_batch(&clients[v], CALLERS, size.calls_each).await;
            rps[v].push(calls / start.elapsed().as_secs_f64());
        }
    }
    Interleaved { latencies, rps }
}

/// The interleaved check, first with `TCP_NODELAY` (as a tonic server started
/// with `serve` runs), then with Nagle's algorithm on (as a server fed a
/// plain `TcpListenerStream` runs): there a response written in two pieces
/// can wait for the client's delayed ACK. Last, with `TCP_NODELAY` and a
/// handler that spins for [`SPIN`] per call.
fn interleaved() {
    let Some(size) = CheckSize::from_args() else {
        return;
    };
    if std::env::args().any(|a| a == CPU_ONLY) {
        cpu_check(&size);
        return;
    }
    check(Listener::NoDelay, Work::None, &size);
    let half = CheckSize {
        latency_calls: size.latency_calls / 2,
        rounds: size.rounds.div_ceil(2),
        calls_each: size.calls_each,
    };
    check(Listener::Nagle, Work::None, &half);
    let working = CheckSize {
        latency_calls: size.latency_calls / 2,
        rounds: size.rounds,
        calls_each: size.calls_each,
    };
    check(Listener::NoDelay, Work::Spin(SPIN), &working);
    cpu_check(&size);
}

/// The CPU check: servers on `server-rt`, clients on `client-rt`, batches
/// of every variant in rotating order, each charged the CPU time of the
/// server threads and of the client threads while it ran.
fn cpu_check(size: &CheckSize) {
    let server_rt = named_runtime(&format!("{SERVER_PREFIX}rt"));
    let client_rt = named_runtime(&format!("{CLIENT_PREFIX}rt"));
    let servers: Vec<BenchServer> = CHECKED
        .iter()
        .map(|&(_, v)| {
            server_rt
                .block_on(BenchServer::spawn_with(v, Listener::NoDelay, Work::None))
                .expect("spawn server")
        })
        .collect();
    let clients: Vec<GreeterClient<Channel>> = client_rt.block_on(async {
        let mut clients = Vec::new();
        for server in &servers {
            let client = server.client().await.expect("connect");
            call_batch(&client, CALLERS, 4).await;
            clients.push(client);
        }
        clients
    });
    let n = CHECKED.len();
    let calls = (CALLERS * size.calls_each) as f64;
    // Per variant, per round: server and client CPU per call (µs) and calls/s.
    let mut server_us = vec![Vec::with_capacity(size.rounds); n];
    let mut client_us = vec![Vec::with_capacity(size.rounds); n];
    let mut rps = vec![Vec::with_capacity(size.rounds); n];
    for r in 0..size.rounds {
        for k in 0..n {
            let v = (r + k) % n;
            let before = CpuTimes::now();
            let start = Instant::now();
            client_rt.block_on(call_batch(&clients[v], CALLERS, size.calls_each));
            let wall = start.elapsed();
            let after = CpuTimes::now();
            server_us[v].push(after.server.saturating_sub(before.server) as f64 / calls / 1e3);
            client_us[v].push(after.client.saturating_sub(before.client) as f64 / calls / 1e3);
            rps[v].push(calls / wall.as_secs_f64());
        }
    }
    drop(clients);
    drop(servers);

    let mid = |x: &[f64]| median(x).unwrap_or(f64::NAN);
    let ratio = |x: &[f64], base: &[f64]| {
        let r: Vec<f64> = x.iter().zip(base).map(|(a, b)| a / b).collect();
        mid(&r)
    };
    println!();
    println!(
        "reporting layer overhead/CPU per call, TCP_NODELAY: {} rounds of {CALLERS} callers x {} calls per variant, servers and clients on a worker each",
        size.rounds, size.calls_each
    );
    println!(
        "variant              server us/call  client us/call   median rps | ratio to bare: server cpu  client cpu   rps"
    );
    for (v, (name, _)) in CHECKED.iter().enumerate() {
        println!(
            "{name:<19} {:>15.2} {:>15.2} {:>12.0} | {:>25.3} {:>11.3} {:>5.3}",
            mid(&server_us[v]),
            mid(&client_us[v]),
            mid(&rps[v]),
            ratio(&server_us[v], &server_us[0]),
            ratio(&client_us[v], &client_us[0]),
            ratio(&rps[v], &rps[0]),
        );
    }
    println!();
}

/// Runs the variants in rotating order and prints every figure next to its
/// ratio to the first bare server.
fn check(listener: Listener, work: Work, size: &CheckSize) {
    let rt = runtime();
    let variants = CHECKED.map(|(_, v)| v);
    let servers = start(&rt, &variants, listener, work);
    let clients: Vec<_> = servers.iter().map(|(_, c)| c.clone()).collect();
    let (report_len, mut m) = rt.block_on(async {
        let mut layered = clients[2].clone();
        let reply = say_hello(&mut layered).await;
        let report = reply.metadata().get_bin(orca_lb_proto::TRAILER_KEY);
        let report_len = report.map_or(0, |v| v.as_encoded_bytes().len());
        (report_len, measure_interleaved(&clients, size).await)
    });
    drop(servers);

    let nagle = match listener {
        Listener::NoDelay => "TCP_NODELAY",
        Listener::Nagle => "Nagle on",
    };
    let label = match work {
        Work::None => format!("interleaved, {nagle}"),
        Work::Spin(d) => format!(
            "interleaved, {nagle}, {} us CPU spin per call",
            d.as_micros()
        ),
    };
    let label = label.as_str();
    println!();
    println!(
        "reporting layer overhead/{label}: the layered trailer value is {report_len} base64 chars"
    );
    print_latency(label, size, &mut m.latencies);
    print_throughput(label, size, &m.rps);
}

fn print_latency(label: &str, size: &CheckSize, latencies: &mut [Vec<Duration>]) {
    let stats: Vec<Percentiles> = latencies
        .iter_mut()
        .map(|l| Percentiles::of(l).expect("latency samples"))
        .collect();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let base = stats[0];
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!();
    println!(
        "reporting layer overhead/{label}: {} calls per variant, one at a time, rotating order",
        size.latency_calls
    );
    println!(
        "variant                mean us   p50 us   p90 us   p99 us p99.9 us | ratio to bare: mean   p50   p90   p99 p99.9"
    );
    for ((name, _), s) in CHECKED.iter().zip(&stats) {
        println!(
            "{name:<19} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>19.3} {:>5.3} {:>5.3} {:>5.3} {:>5.3}",
            us(s.mean),
            us(s.p50),
            us(s.p90),
            us(s.p99),
            us(s.p999),
            ratio(s.mean, base.mean),
            ratio(s.p50, base.p50),
            ratio(s.p90, base.p90),
            ratio(s.p99, base.p99),
            ratio(s.p999, base.p999),
        );
    }
}

fn print_throughput(label: &str, size: &CheckSize, rps: &[Vec<f64>]) {
    let best = |r: &[f64]| r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let worst = |r: &[f64]| r.iter().copied().fold(f64::INFINITY, f64::min);
    let mid = |r: &[f64]| median(r).unwrap_or(f64::NAN);
    let base = &rps[0];
    println!();
    println!(
        "reporting layer overhead/{label}: {} rounds of {CALLERS} callers x {} calls per variant",
        size.rounds, size.calls_each
    );
    println!(
        "variant              median rps   best rps | % of bare: median  best | per round: median [min, max]"
    );
    for ((name, _), r) in CHECKED.iter().zip(rps) {
        let per_round: Vec<f64> = r.iter().zip(base).map(|(x, b)| x / b * 100.0).collect();
        println!(
            "{name:<19} {:>11.0} {:>10.0} | {:>17.1} {:>5.1} | {:>17.1} [{:.1}, {:.1}]",
            mid(r),
            best(r),
            mid(r) / mid(base) * 100.0,
            best(r) / best(base) * 100.0,
            mid(&per_round),
            worst(&per_round),
            best(&per_round),
        );
    }
    println!();
}

criterion::criterion_main!(benches, interleaved);
