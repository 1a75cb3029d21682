//! The rig behind orca-lb's criterion benchmarks.
//!
//! The overhead benchmarks compare one tonic greeter server with itself: bare,
//! and behind [`ReportingLayer`]. [`BenchServer`] starts either on
//! `127.0.0.1:0`, with the same greeter and the same listener setup, so the
//! layer is the only difference between the variants. Accepted connections
//! have `TCP_NODELAY` set, as a server started with tonic's `Server::serve`
//! has them, unless [`Listener::Nagle`] asks for the kernel's default. The
//! greeter answers at once, or after burning a fixed amount of CPU per call
//! ([`Work::Spin`]). The helpers here drive unary `SayHello` calls through a
//! connected client, one at a time or from many concurrent callers, and
//! summarize per-call latencies.
//!
//! Run the benchmarks with `cargo bench -p orca-lb-benches`; `docs/benchmarks.md`
//! records each run.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use orca_lb_benches::{BenchServer, Variant, say_hello};
//!
//! let server = BenchServer::spawn(Variant::Layered).await.unwrap();
//! let mut client = server.client().await.unwrap();
//! let reply = say_hello(&mut client).await;
//! assert!(reply.metadata().get_bin(orca_lb_proto::TRAILER_KEY).is_some());
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod cpu;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orca_lb_server::{FixedSampler, LoadRecorder, ReportingLayer, StreamingMethods};
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::pb::{HelloReply, HelloRequest};
use orca_lb_testkit::{GREETER_DESCRIPTOR_SET, TestGreeter};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};

/// Which server a benchmark talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The greeter alone: the baseline.
    Bare,
    /// The greeter behind a [`ReportingLayer`] without a concurrency limit.
    Layered,
    /// As [`Layered`](Self::Layered), with the per-call recorder turned off
    /// (`call_recorder(false)`): no `CallRecorder` for the handler.
    LayeredNoRecorder,
    /// As [`Layered`](Self::Layered), with each call's recorder carried in
    /// its request's extensions (`call_recorder_in_extensions(true)`), for
    /// stacks that run the handler on a task of its own.
    LayeredRecorderInExtensions,
    /// The greeter behind a [`ReportingLayer`] with this many worker slots.
    LayeredCapacity(usize),
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Bare => f.write_str("bare"),
            Variant::Layered => f.write_str("layered"),
            Variant::LayeredNoRecorder => f.write_str("layered_no_recorder"),
            Variant::LayeredRecorderInExtensions => f.write_str("layered_rec_in_ext"),
            Variant::LayeredCapacity(c) => write!(f, "layered_cap{c}"),
        }
    }
}

/// How the server's accepted connections send small writes.
///
/// `Server::serve` turns Nagle's algorithm off (tonic's `tcp_nodelay`
/// defaults to true), but `serve_with_incoming`, which binding
/// `127.0.0.1:0` needs, ignores that setting: the incoming stream decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `TCP_NODELAY` on every accepted connection, as a tonic server started
    /// with `serve` has it.
    NoDelay,
    /// The kernel's default: Nagle's algorithm on, as a server fed a plain
    /// `TcpListenerStream` has it.
    Nagle,
}

/// What the greeter does in each unary call before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing: the call is all framework, which is where a layer's cost
    /// shows most.
    None,
    /// Keeps its worker thread busy this long (a spin on the clock, not a
    /// sleep): CPU-bound work, so the server's throughput is bounded by CPU
    /// and the layer's share of it can be read.
    Spin(Duration),
}

impl Work {
    /// The greeter every benchmark server serves, doing this work per call.
    pub fn greeter(self) -> TestGreeter {
        let greeter = TestGreeter::new("bench");
        match self {
            Work::None => greeter,
            Work::Spin(d) => greeter.with_hook(move |_| spin(d)),
        }
    }
}

/// Busy-waits for `d`.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The reporting layer of a layered `variant` as the benchmark servers use
/// it: the fixed CPU and memory of `orca_lb_testkit`'s backends, the greeter's
/// streaming methods, and the variant's options. `None` for
/// [`Variant::Bare`]. Must run inside a tokio runtime (the layer starts its
/// sampler task).
pub fn reporting_layer(variant: Variant) -> io::Result<Option<(ReportingLayer, LoadRecorder)>> {
    if variant == Variant::Bare {
        return Ok(None);
    }
    let streaming = StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
        .map_err(io::Error::other)?;
    let mut builder = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.2, 0.3))
        .streaming_methods(streaming);
    match variant {
        Variant::Bare | Variant::Layered => {}
        Variant::LayeredNoRecorder => builder = builder.call_recorder(false),
        Variant::LayeredRecorderInExtensions => builder = builder.call_recorder_in_extensions(true),
        Variant::LayeredCapacity(c) => builder = builder.capacity(c),
    }
    builder.build().map(Some).map_err(io::Error::other)
}

/// A greeter server on loopback, bare or behind the reporting layer. Stops
/// when dropped.
#[derive(Debug)]
pub struct BenchServer {
    addr: SocketAddr,
    variant: Variant,
    recorder: Option<LoadRecorder>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl BenchServer {
    /// Binds `127.0.0.1:0` and serves [`TestGreeter`] as `variant` says, on
    /// the current tokio runtime, with [`Listener::NoDelay`] and no work per
    /// call. The layered variants report the fixed CPU and memory of
    /// `orca_lb_testkit`'s backends and know the greeter's streaming methods, as
    /// those backends do.
    pub async fn spawn(variant: Variant) -> io::Result<BenchServer> {
        Self::spawn_with(variant, Listener::NoDelay, Work::None).await
    }

    /// [`spawn`](Self::spawn), with the accepted connections set up as
    /// `listener` says and the greeter doing `work` in each unary call.
    pub async fn spawn_with(
        variant: Variant,
        listener: Listener,
        work: Work,
    ) -> io::Result<BenchServer> {
        let nodelay = listener == Listener::NoDelay;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let greeter = GreeterServer::new(work.greeter());
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(nodelay));
        let (tx, rx) = oneshot::channel::<()>();
        let signal = async {
            let _ = rx.await;
        };
        let (task, recorder) = match reporting_layer(variant)? {
            None => {
                let router = Server::builder().add_service(greeter);
                let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, signal));
                (task, None)
            }
            Some((layer, recorder)) => {
                let router = Server::builder().layer(layer).add_service(greeter);
                let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, signal));
                (task, Some(recorder))
            }
        };
        Ok(BenchServer {
            addr,
            variant,
            recorder,
            shutdown: Some(tx),
            task,
        })
    }

    /// What this server is.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The layer's load recorder; `None` for the bare server.
    pub fn recorder(&self) -> Option<&LoadRecorder> {
        self.recorder.as_ref()
    }

    /// A client with its own connection to this server, checked with one
    /// call: the layered variants must send a load report, the bare one none.
    ///
    /// # Panics
    ///
    /// If the check call fails or the report is not as expected.
    pub async fn client(&self) -> Result<GreeterClient<Channel>, tonic::transport::Error> {
        let mut client = GreeterClient::connect(self.url()).await?;
        let reply = say_hello(&mut client).await;
        let reported = reply
            .metadata()
            .get_bin(orca_lb_proto::TRAILER_KEY)
            .is_some();
        assert_eq!(
            reported,
            self.variant != Variant::Bare,
            "{}: load report in the trailers",
            self.variant
        );
        Ok(client)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// How many rounds a benchmark with its own `main` runs: `full` under
/// `cargo bench` (which passes `--bench`), one when it runs as a test.
pub fn rounds_or_one(full: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--bench") && !has("--test") {
        full
    } else {
        1
    }
}

/// The request every benchmark sends: no simulated work, no failure.
pub fn hello_request() -> HelloRequest {
    HelloRequest {
        name: "bench".into(),
        ..Default::default()
    }
}

/// One unary `SayHello`.
///
/// # Panics
///
/// If the call fails: a benchmark must not time errors.
pub async fn say_hello(client: &mut GreeterClient<Channel>) -> tonic::Response<HelloReply> {
    client
        .say_hello(hello_request())
        .await
        .expect("SayHello failed")
}

/// `callers` tasks, each with its own handle on `client`'s connection, each
/// making `calls_each` unary calls one after the other. Returns when all are
/// done.
///
/// # Panics
///
/// If a call fails.
pub async fn call_batch(client: &GreeterClient<Channel>, callers: usize, calls_each: usize) {
    let mut tasks = JoinSet::new();
    for _ in 0..callers {
        let mut client = client.clone();
        tasks.spawn(async move {
            for _ in 0..calls_each {
                say_hello(&mut client).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("caller task panicked");
    }
}

/// Order statistics of a set of per-call latencies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// How many latencies.
    pub count: usize,
    /// The mean.
    pub mean: Duration,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The 99.9th percentile.
    pub p999: Duration,
}

impl Percentiles {
    /// Sorts `samples` and reads the percentiles off it (nearest rank).
    /// `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = samples.iter().sum();
        Some(Percentiles {
            count: n,
            mean: total / n as u32,
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            p999: rank(0.999),
        })
    }
}

/// The median of `values` as the balancer computes it
/// ([`orca_lb_core::median`]: the lower middle one for an even count);
/// `None` when empty or when a value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.iter().any(|x| x.is_nan()) {
        return None;
    }
    orca_lb_core::median(&mut values.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut v).unwrap();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, Duration::from_micros(500));
        assert_eq!(p.p90, Duration::from_micros(900));
        assert_eq!(p.p99, Duration::from_micros(990));
        assert_eq!(p.p999, Duration::from_micros(999));
        assert_eq!(p.mean, Duration::from_nanos(500_500));
        assert_eq!(Percentiles::of(&mut []), None);
    }

    #[test]
    fn median_of_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }
}
