//! What `ReportingLayer` costs one call in CPU and allocations, without the
//! network: the greeter's generated tonic service called directly with an
//! encoded `SayHello` request, bare and wrapped in the layer.
//!
//! `cargo bench -p orca-lb-benches --bench layer_call_path`
//!
//! `reporting_overhead` answers the question over loopback, where the kernel
//! and HTTP/2 dominate a call. This group removes both: each iteration builds
//! the `http::Request` (with the `TcpConnectInfo` extension that tonic's
//! server adds to every request), calls the service, and collects the
//! response body with its trailers, so the difference between the variants is the layer's
//! own work (the call guard, the per-call recorder, the report in the
//! trailers) and nothing else. It does not include HPACK, which encodes the
//! larger trailer on the server and decodes it on the client.
//!
//! Variants: `bare`, `layered`, `layered_no_recorder` (`call_recorder(false)`:
//! no `CallRecorder` for the handler), `layered_cap64` and
//! `layered_rec_in_ext` (`call_recorder_in_extensions(true)`: each call's
//! recorder carried in its request, as stacks that run the handler on
//! another task need).
//!
//! After the group, an interleaved check times batches of 200 calls of every
//! variant in rotating order and prints each as a ratio to `bare`: criterion
//! runs the variants one after the other, so on a busy machine load that
//! comes and goes lands on one of them.
//!
//! Before the group, a quick check counts allocations per call for each
//! variant with a counting global allocator and prints them, in all and by
//! stage of the call: building the request, `poll_ready` and `call`, the
//! response future, and the body with its trailers. The difference to `bare`
//! in each stage says where the layer allocates.

use std::alloc::System;
use std::future::poll_fn;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use orca_lb_benches::{Variant, Work, hello_request, median, reporting_layer};
use orca_lb_testkit::TestGreeter;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use prost::Message;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};
use tokio::runtime::Runtime;
use tonic::transport::server::TcpConnectInfo;
use tower_layer::Layer;
use tower_service::Service;

/// `System`, counting every allocation in atomics. `stats_alloc` holds the
/// `unsafe impl GlobalAlloc`, which the workspace's `unsafe_code = "forbid"`
/// rules out here.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SAY_HELLO: &str = "/orca_lb.testing.v1.Greeter/SayHello";

/// The request body: one uncompressed gRPC frame holding a `HelloRequest`.
fn grpc_frame() -> Bytes {
    let msg = hello_request();
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).expect("small message"));
    msg.encode(&mut buf).expect("vec grows");
    Bytes::from(buf)
}

/// The request as tonic's server hands it to the layers: with the
/// connection's `TcpConnectInfo` in its extensions, which tonic inserts into
/// every request it accepts over TCP. The extension map then exists before
/// the layer adds its mark for the `CallRecorder`, as it does over loopback.
fn request(frame: &Bytes) -> Request<Full<Bytes>> {
    let connection = TcpConnectInfo {
        local_addr: Some(SocketAddr::from(([127, 0, 0, 1], 50051))),
        remote_addr: Some(SocketAddr::from(([127, 0, 0, 1], 40000))),
    };
    Request::post(SAY_HELLO)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .extension(connection)
        .body(Full::new(frame.clone()))
        .expect("valid request")
}

/// One call, start to trailers. Returns whether the trailers carry a report.
async fn call<S, B>(service: &mut S, frame: &Bytes) -> bool
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    staged_call(service, frame, None).await
}

/// The stages of a call that allocations are counted in.
const STAGES: [&str; 4] = ["request", "call", "response", "body"];

/// Allocations (and reallocations) per stage.
type StageCounts = [u64; STAGES.len()];

fn allocations(s: Stats) -> u64 {
    (s.allocations + s.reallocations) as u64
}

/// [`call`], adding the allocations of each of its [`STAGES`] to `counts`
/// when given: the request built, `poll_ready` and `call` returned, the
/// response future resolved, the body collected with its trailers.
async fn staged_call<S, B>(service: &mut S, frame: &Bytes, counts: Option<&mut StageCounts>) -> bool
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut stage = [0; STAGES.len()];
    let region = Region::new(GLOBAL);
    let req = request(frame);
    stage[0] = allocations(region.change());

    let region = Region::new(GLOBAL);
    poll_fn(|cx| service.poll_ready(cx))
        .await
        .expect("service ready");
    let future = service.call(req);
    stage[1] = allocations(region.change());

    let region = Region::new(GLOBAL);
    let response = future.await.expect("response");
    stage[2] = allocations(region.change());

    let region = Region::new(GLOBAL);
    let body = response.into_body().collect().await.expect("body");
    let trailers = body.trailers().expect("gRPC trailers");
    let reported = trailers.contains_key(orca_lb_proto::TRAILER_KEY);
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    drop(body);
    stage[3] = allocations(region.change());

    if let Some(counts) = counts {
        for (c, s) in counts.iter_mut().zip(stage) {
            *c += s;
        }
    }
    reported
}

/// The same greeter service, bare or wrapped, behind one call signature.
#[derive(Clone)]
enum Stack {
    Bare(GreeterServer<TestGreeter>),
    Layered(orca_lb_server::Reporting<GreeterServer<TestGreeter>>),
}

impl Stack {
    /// The same greeter and layer as the loopback benchmark's servers. Must
    /// run inside the runtime: the layer starts its sampler task.
    fn new(variant: Variant) -> Stack {
        let greeter = GreeterServer::new(Work::None.greeter());
        match reporting_layer(variant).expect("layer") {
            None => Stack::Bare(greeter),
            Some((layer, _recorder)) => Stack::Layered(layer.layer(greeter)),
        }
    }

    async fn call(&mut self, frame: &Bytes) -> bool {
        match self {
            Stack::Bare(s) => call(s, frame).await,
            Stack::Layered(s) => call(s, frame).await,
        }
    }

    async fn staged_call(&mut self, frame: &Bytes, counts: &mut StageCounts) -> bool {
        match self {
            Stack::Bare(s) => staged_call(s, frame, Some(counts)).await,
            Stack::Layered(s) => staged_call(s, frame, Some(counts)).await,
        }
    }
}

const VARIANTS: [Variant; 5] = [
    Variant::Bare,
    Variant::Layered,
    Variant::LayeredNoRecorder,
    Variant::LayeredCapacity(64),
    Variant::LayeredRecorderInExtensions,
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Prints allocations per call for each variant, in all and by stage, and
/// checks that only the layered ones report.
fn allocation_check() {
    const RUNS: usize = 1_000;
    let rt = runtime();
    let frame = grpc_frame();
    println!("reporting layer call path/allocations: per call (mean of {RUNS}), in-process");
    let mut rows = Vec::new();
    for variant in VARIANTS {
        let (allocs, bytes, stages) = rt.block_on(async {
            let mut stack = Stack::new(variant);
            let layered = variant != Variant::Bare;
            assert_eq!(stack.call(&frame).await, layered, "{variant}");
            for _ in 0..100 {
                stack.call(&frame).await;
            }
            let region = Region::new(GLOBAL);
            for _ in 0..RUNS {
                black_box(stack.call(&frame).await);
            }
            let s = region.change();
            let mut stages = [0; STAGES.len()];
            for _ in 0..RUNS {
                black_box(stack.staged_call(&frame, &mut stages).await);
            }
            (
                allocations(s) as f64 / RUNS as f64,
                s.bytes_allocated as f64 / RUNS as f64,
                stages.map(|c| c as f64 / RUNS as f64),
            )
        });
        rows.push((variant, allocs, bytes, stages));
    }
    let (_, base_allocs, base_bytes, base_stages) = rows[0];
    for (variant, allocs, bytes, _) in &rows {
        println!(
            "  {:<19} {allocs:>6.2} allocations ({:+.2} vs bare), {bytes:>7.0} bytes ({:+.0})",
            variant.to_string(),
            allocs - base_allocs,
            bytes - base_bytes
        );
    }
    println!();
    println!("reporting layer call path/allocations by stage: per call, (difference to bare)");
    print!("  {:<19}", "variant");
    for name in STAGES {
        print!(" {name:>15}");
    }
    println!();
    for (variant, _, _, stages) in &rows {
        print!("  {:<19}", variant.to_string());
        for (s, b) in stages.iter().zip(&base_stages) {
            print!(" {:>6.2} ({:+5.2})", s, s - b);
        }
        println!();
    }
    println!();
}

fn call_path(c: &mut Criterion) {
    let rt = runtime();
    let frame = grpc_frame();
    let mut group = c.benchmark_group("reporting layer call path");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for variant in VARIANTS {
        let stack = rt.block_on(async { Stack::new(variant) });
        group.bench_function(BenchmarkId::new("say_hello", variant), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let mut stack = stack.clone();
                let frame = frame.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(stack.call(&frame).await);
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, call_path);

/// Rounds of the interleaved check: the full amount under `cargo bench`, one
/// when the benchmarks run as tests, none when criterion lists or profiles.
fn check_rounds() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    if has("--list") || has("--profile-time") {
        None
    } else if has("--bench") && !has("--test") {
        Some(201)
    } else {
        Some(1)
    }
}

/// Times batches of calls of every variant in rotating order, so that load
/// on a shared machine lands on all of them alike, and prints the median
/// and the fastest batch per call with the median of the per-round ratios
/// to `bare`.
fn interleaved() {
    const BATCH: u32 = 200;
    let Some(rounds) = check_rounds() else {
        return;
    };
    let rt = runtime();
    let frame = grpc_frame();
    let n = VARIANTS.len();
    let mut us = vec![Vec::with_capacity(rounds); n];
    rt.block_on(async {
        let mut stacks = VARIANTS.map(Stack::new);
        for stack in &mut stacks {
            for _ in 0..BATCH {
                stack.call(&frame).await;
            }
        }
        for r in 0..rounds {
            for k in 0..n {
                let v = (r + k) % n;
                let start = Instant::now();
                for _ in 0..BATCH {
                    black_box(stacks[v].call(&frame).await);
                }
                us[v].push(start.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH));
            }
        }
    });
    let fastest = |x: &[f64]| x.iter().copied().fold(f64::INFINITY, f64::min);
    let mid = |x: &[f64]| median(x).unwrap_or(f64::NAN);
    println!();
    println!(
        "reporting layer call path/interleaved: {rounds} rounds of {BATCH} calls per variant, rotating order"
    );
    println!(
        "  variant              median us  fastest us | ratio to bare: median of per-round ratios"
    );
    for (variant, x) in VARIANTS.iter().zip(&us) {
        let ratios: Vec<f64> = x.iter().zip(&us[0]).map(|(a, b)| a / b).collect();
        println!(
            "  {:<19} {:>10.3} {:>11.3} | {:>10.3}",
            variant.to_string(),
            mid(x),
            fastest(x),
            mid(&ratios)
        );
    }
    println!();
}

criterion::criterion_main!(allocation_check, benches, interleaved);
