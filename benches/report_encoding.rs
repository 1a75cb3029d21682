//! What building one per-call ORCA report costs, with `ReportEncoder` and the
//! naive way.
//!
//! `cargo bench -p orca-lb-benches --bench report_encoding`
//!
//! The criterion group "report encoding" encodes a typical report: 5 scalars,
//! the 5 `orca_lb.` named metrics and 2 of the application's own.
//! - `encoder_reused_vec` (the baseline): `ReportEncoder` into a cleared,
//!   reused `Vec`, as the reporting layer does with its thread-local scratch
//!   buffer;
//! - `prost_encode_to_vec`: build a `pb::OrcaLoadReport` with its maps, then
//!   `prost::Message::encode_to_vec`, as a naive implementation would;
//! - `encoder_base64` and `prost_base64`: the same, plus the base64
//!   (standard alphabet, no padding) of the bytes, which is the per-call
//!   header value. `encoder_base64` is the reporting layer's own path for the
//!   value: one `String` of exactly the encoded length, turned into `Bytes`.
//!
//! Before the group, a quick check counts the allocations of each path with a
//! counting global allocator, prints them, and asserts that the reused-buffer
//! encoder allocates nothing.

use std::alloc::System;
use std::collections::HashMap;
use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use orca_lb_core::named_metrics;
use orca_lb_proto::encode::ReportEncoder;
use orca_lb_proto::pb::OrcaLoadReport;
use prost::Message;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// `System`, counting every allocation in atomics. `stats_alloc` holds the
/// `unsafe impl GlobalAlloc`, which the workspace's `unsafe_code = "forbid"`
/// rules out here.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A busy server's report: every scalar set, the layer's own named metrics
/// (a capacity-limited server, so all five), and two of the application's.
#[derive(Debug, Clone, Copy)]
struct Typical {
    cpu_utilization: f64,
    mem_utilization: f64,
    application_utilization: f64,
    rps_fractional: f64,
    eps: f64,
    layer: [(&'static str, f64); 5],
    app: [(&'static str, f64); 2],
}

const TYPICAL: Typical = Typical {
    cpu_utilization: 0.42,
    mem_utilization: 0.61,
    application_utilization: 0.73,
    rps_fractional: 1234.5,
    eps: 2.25,
    layer: [
        (named_metrics::QUEUE_DEPTH, 3.0),
        (named_metrics::IN_FLIGHT, 17.0),
        (named_metrics::ACTIVE_STREAMS, 2.0),
        (named_metrics::CAPACITY, 64.0),
        (named_metrics::SERVICE_TIME_MS, 12.7),
    ],
    app: [("cache_hit_ratio", 0.93), ("db_pool_in_use", 7.0)],
};

impl Typical {
    /// Appends the report to `buf` with the allocation-free encoder.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        let mut enc = ReportEncoder::new(buf);
        enc.cpu_utilization(self.cpu_utilization)
            .mem_utilization(self.mem_utilization)
            .application_utilization(self.application_utilization)
            .rps_fractional(self.rps_fractional)
            .eps(self.eps);
        for (name, v) in self.layer.iter().chain(&self.app) {
            enc.named_metric(name, *v);
        }
    }

    /// The report as a prost message, built the way a naive server would on
    /// each call.
    fn to_message(self) -> OrcaLoadReport {
        let named_metrics: HashMap<String, f64> = self
            .layer
            .iter()
            .chain(&self.app)
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        OrcaLoadReport {
            cpu_utilization: self.cpu_utilization,
            mem_utilization: self.mem_utilization,
            application_utilization: self.application_utilization,
            rps_fractional: self.rps_fractional,
            eps: self.eps,
            named_metrics,
            ..Default::default()
        }
    }
}

/// The header value from encoded bytes, as the reporting layer builds it:
/// one `String` of exactly the base64 length, handed to `Bytes` without a copy.
fn base64_value(encoded: &[u8]) -> Bytes {
    let len = base64::encoded_len(encoded.len(), false).expect("report length overflows");
    let mut out = String::with_capacity(len);
    STANDARD_NO_PAD.encode_string(encoded, &mut out);
    Bytes::from(out)
}

fn encoder_reused(buf: &mut Vec<u8>) -> usize {
    buf.clear();
    black_box(TYPICAL).encode_into(buf);
    black_box(buf.as_slice()).len()
}

fn encoder_base64(buf: &mut Vec<u8>) -> Bytes {
    buf.clear();
    black_box(TYPICAL).encode_into(buf);
    base64_value(buf)
}

fn prost_encode() -> Vec<u8> {
    black_box(TYPICAL).to_message().encode_to_vec()
}

fn prost_base64() -> String {
    STANDARD_NO_PAD.encode(prost_encode())
}

/// Allocations (including reallocations) per call of `f`, over `runs` calls.
fn allocations_per_call<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let region = Region::new(GLOBAL);
    for _ in 0..runs {
        drop(black_box(f()));
    }
    let s = region.change();
    (s.allocations + s.reallocations) as f64 / runs as f64
}

/// Prints the allocations of each path and asserts the encoder's is zero.
fn allocation_check() {
    const RUNS: usize = 1_000;
    // The buffer keeps its capacity from the first encode on, as the
    // layer's thread-local scratch buffer does.
    let mut buf = Vec::with_capacity(256);
    encoder_reused(&mut buf);
    let encoded = buf.len();

    // Both encodings decode to the same report.
    let decoded = OrcaLoadReport::decode(buf.as_slice()).expect("encoder output decodes");
    assert_eq!(decoded, TYPICAL.to_message());
    assert_eq!(prost_encode().len(), encoded);

    let rows = [
        (
            "encoder_reused_vec",
            allocations_per_call(RUNS, || encoder_reused(&mut buf)),
        ),
        (
            "encoder_base64",
            allocations_per_call(RUNS, || encoder_base64(&mut buf)),
        ),
        (
            "prost_encode_to_vec",
            allocations_per_call(RUNS, prost_encode),
        ),
        ("prost_base64", allocations_per_call(RUNS, prost_base64)),
    ];
    println!(
        "report encoding/allocations: typical report = {encoded} bytes, {} base64 chars; \
         allocations per encode (mean of {RUNS}):",
        base64::encoded_len(encoded, false).unwrap_or(0)
    );
    for (name, n) in rows {
        println!("  {name:<20} {n:>5.2}");
    }
    println!();
    assert_eq!(
        rows[0].1, 0.0,
        "ReportEncoder into a reused buffer must not allocate"
    );
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("report encoding");
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(3));

    let mut buf = Vec::with_capacity(256);
    group.bench_function("encoder_reused_vec", |b| {
        b.iter(|| encoder_reused(&mut buf));
    });
    group.bench_function("prost_encode_to_vec", |b| b.iter(prost_encode));
    group.bench_function("encoder_base64", |b| {
        b.iter(|| encoder_base64(&mut buf));
    });
    group.bench_function("prost_base64", |b| b.iter(prost_base64));
    group.finish();
}

criterion_group!(benches, encoding);
criterion::criterion_main!(allocation_check, benches);
