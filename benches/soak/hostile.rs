//! The hostile backend's behaviours: load reports that are garbage, NaN,
//! infinite or oversized, in rotation, call after call, and an out-of-band
//! stream that floods.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body::Frame;
use orca_lb_proto::TRAILER_KEY;
use orca_lb_proto::pb::open_rca_service_server::OpenRcaService;
use orca_lb_proto::pb::{OrcaLoadReport, OrcaLoadReportRequest};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Named metrics in an oversized report: 32 KiB of them, each name new.
const OVERSIZED_BYTES: usize = 32 * 1024;

/// Out-of-band reports sent per burst, and the time between bursts: 2,000
/// reports a second whatever interval the client asked for.
const FLOOD_BURST: u64 = 20;
const FLOOD_PERIOD: Duration = Duration::from_millis(10);

/// The `n`th hostile report, as the bytes of an `endpoint-load-metrics-bin`
/// trailer (before base64): undecodable, NaN, infinite, oversized, and again.
/// Names carry `n`, so no two reports share a metric name.
pub(crate) fn hostile_report(n: u64) -> Vec<u8> {
    match n % 4 {
        // A varint that never ends: no protobuf decoder takes it.
        0 => vec![0xff; 24],
        1 => OrcaLoadReport {
            cpu_utilization: f64::NAN,
            application_utilization: f64::NAN,
            named_metrics: [(format!("soak.nan.{n}"), f64::NAN)].into(),
            ..Default::default()
        }
        .encode_to_vec(),
        2 => OrcaLoadReport {
            cpu_utilization: f64::INFINITY,
            rps_fractional: f64::INFINITY,
            utilization: [(format!("soak.inf.{n}"), f64::NEG_INFINITY)].into(),
            ..Default::default()
        }
        .encode_to_vec(),
        _ => oversized(n).encode_to_vec(),
    }
}

/// A report of [`OVERSIZED_BYTES`] of named metrics, every name unseen.
fn oversized(n: u64) -> OrcaLoadReport {
    let mut report = OrcaLoadReport {
        cpu_utilization: 0.5,
        ..Default::default()
    };
    let mut i = 0u32;
    while report.encoded_len() < OVERSIZED_BYTES {
        for _ in 0..64 {
            let name = format!("soak.oversized.{n}.{i:05}");
            report.named_metrics.insert(name, f64::from(i) + 0.5);
            i += 1;
        }
    }
    report
}

/// Replaces the `endpoint-load-metrics-bin` trailer of every response with
/// the next [`hostile_report`], or adds one.
#[derive(Debug, Clone)]
pub(crate) struct CorruptTrailers<S> {
    inner: S,
    calls: Arc<AtomicU64>,
}

impl<S> CorruptTrailers<S> {
    /// `inner` with its trailers rewritten; `calls` numbers the reports.
    pub(crate) fn new(inner: S, calls: Arc<AtomicU64>) -> Self {
        Self { inner, calls }
    }
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for CorruptTrailers<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let n = self.calls.fetch_add(1, Relaxed);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|body| {
                let inner = tonic::body::Body::new(body);
                tonic::body::Body::new(CorruptBody { inner, n })
            }))
        })
    }
}

struct CorruptBody {
    inner: tonic::body::Body,
    n: u64,
}

impl http_body::Body for CorruptBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let n = self.n;
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(frame.map(|f| {
            f.map(|frame| match frame.into_trailers() {
                Ok(mut trailers) => {
                    let text = STANDARD.encode(hostile_report(n));
                    let value = http::HeaderValue::from_str(&text).expect("base64 is ASCII");
                    trailers.insert(TRAILER_KEY, value);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// An out-of-band service that answers every subscription with a flood:
/// [`FLOOD_BURST`] reports every [`FLOOD_PERIOD`], valid, NaN and infinite in
/// turn, until the client goes away. (Oversized reports come in trailers: a
/// flood of them would cost the backends' process more CPU than the calls.)
#[derive(Debug, Clone, Default)]
pub(crate) struct FloodingOob;

type ReportStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<OrcaLoadReport, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl OpenRcaService for FloodingOob {
    type StreamCoreMetricsStream = ReportStream;

    async fn stream_core_metrics(
        &self,
        _request: tonic::Request<OrcaLoadReportRequest>,
    ) -> Result<tonic::Response<ReportStream>, tonic::Status> {
        let (tx, rx) = mpsc::channel(FLOOD_BURST as usize);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLOOD_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                for _ in 0..FLOOD_BURST {
                    let report = match n % 3 {
                        0 => OrcaLoadReport {
                            cpu_utilization: 0.1 + (n % 100) as f64 * 1e-3,
                            ..Default::default()
                        },
                        1 => OrcaLoadReport {
                            cpu_utilization: f64::NAN,
                            ..Default::default()
                        },
                        _ => OrcaLoadReport {
                            application_utilization: f64::INFINITY,
                            ..Default::default()
                        },
                    };
                    n += 1;
                    // The client went away: the flood ends with its stream.
                    if tx.send(Ok(report)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation() {
        assert!(OrcaLoadReport::decode(&hostile_report(0)[..]).is_err());
        let nan = OrcaLoadReport::decode(&hostile_report(1)[..]).unwrap();
        assert!(nan.cpu_utilization.is_nan());
        let inf = OrcaLoadReport::decode(&hostile_report(2)[..]).unwrap();
        assert!(inf.cpu_utilization.is_infinite());
        let big = hostile_report(3);
        assert!(big.len() >= OVERSIZED_BYTES, "{}", big.len());
        let a = OrcaLoadReport::decode(&big[..]).unwrap();
        let b = OrcaLoadReport::decode(&hostile_report(7)[..]).unwrap();
        assert!(
            a.named_metrics
                .keys()
                .all(|k| !b.named_metrics.contains_key(k))
        );
    }
}
