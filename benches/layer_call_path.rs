//! What `ReportingLayer` costs one call in CPU and allocations, without the
//! network: the greeter's generated tonic service called directly with an
//! encoded `SayHello` request, bare and wrapped in the layer.
//!
//! `cargo bench -p orca-lb-benches --bench layer_call_path`
//!
//! `reporting_overhead` answers the question over loopback, where the kernel
//! and HTTP/2 dominate a call. This group removes both: each iteration builds
//! the `http::Request`, calls the service, and collects the response body
//! with its trailers, so the difference between the variants is the layer's
//! own work (the call guard, the per-call recorder, the report in the
//! trailers) and nothing else. It does not include HPACK, which encodes the
//! larger trailer on the server and decodes it on the client.
//!
//! Before the group, a quick check counts allocations per call for each
//! variant with a counting global allocator and prints them.

use std::alloc::System;
use std::future::poll_fn;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use orca_lb_benches::hello_request;
use orca_lb_server::{FixedSampler, ReportingLayer, StreamingMethods};
use orca_lb_test::pb::greeter_server::GreeterServer;
use orca_lb_test::{GREETER_DESCRIPTOR_SET, TestGreeter};
use prost::Message;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;
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

fn request(frame: &Bytes) -> Request<Full<Bytes>> {
    Request::post(SAY_HELLO)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
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
    poll_fn(|cx| service.poll_ready(cx))
        .await
        .expect("service ready");
    let response = service.call(request(frame)).await.expect("response");
    let body = response.into_body().collect().await.expect("body");
    let trailers = body.trailers().expect("gRPC trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    trailers.contains_key(orca_lb_proto::TRAILER_KEY)
}

/// The same greeter service, bare or wrapped, behind one call signature.
#[derive(Clone)]
enum Stack {
    Bare(GreeterServer<TestGreeter>),
    Layered(orca_lb_server::Reporting<GreeterServer<TestGreeter>>),
}

impl Stack {
    /// Must run inside the runtime: the layer starts its sampler task.
    fn new(capacity: Option<Option<usize>>) -> Stack {
        let greeter = GreeterServer::new(TestGreeter::new("bench"));
        let Some(capacity) = capacity else {
            return Stack::Bare(greeter);
        };
        let streaming = StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
            .expect("greeter descriptor");
        let mut builder = ReportingLayer::builder()
            .sampler(FixedSampler::new(0.2, 0.3))
            .streaming_methods(streaming);
        if let Some(c) = capacity {
            builder = builder.capacity(c);
        }
        let (layer, _recorder) = builder.build().expect("layer");
        Stack::Layered(layer.layer(greeter))
    }

    async fn call(&mut self, frame: &Bytes) -> bool {
        match self {
            Stack::Bare(s) => call(s, frame).await,
            Stack::Layered(s) => call(s, frame).await,
        }
    }
}

const VARIANTS: [(&str, Option<Option<usize>>); 3] = [
    ("bare", None),
    ("layered", Some(None)),
    ("layered_cap64", Some(Some(64))),
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Prints allocations per call for each variant and checks that only the
/// layered ones report.
fn allocation_check() {
    const RUNS: usize = 1_000;
    let rt = runtime();
    let frame = grpc_frame();
    println!("reporting layer call path/allocations: per call (mean of {RUNS}), in-process");
    let mut rows = Vec::new();
    for (name, capacity) in VARIANTS {
        let (allocs, bytes) = rt.block_on(async {
            let mut stack = Stack::new(capacity);
            assert_eq!(stack.call(&frame).await, capacity.is_some(), "{name}");
            for _ in 0..100 {
                stack.call(&frame).await;
            }
            let region = Region::new(GLOBAL);
            for _ in 0..RUNS {
                black_box(stack.call(&frame).await);
            }
            let s = region.change();
            (
                (s.allocations + s.reallocations) as f64 / RUNS as f64,
                s.bytes_allocated as f64 / RUNS as f64,
            )
        });
        rows.push((name, allocs, bytes));
    }
    let (_, base_allocs, base_bytes) = rows[0];
    for (name, allocs, bytes) in rows {
        println!(
            "  {name:<14} {allocs:>6.2} allocations ({:+.2} vs bare), {bytes:>7.0} bytes ({:+.0})",
            allocs - base_allocs,
            bytes - base_bytes
        );
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
    for (name, capacity) in VARIANTS {
        let stack = rt.block_on(async { Stack::new(capacity) });
        group.bench_function(BenchmarkId::new("say_hello", name), |b| {
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
criterion::criterion_main!(allocation_check, benches);
