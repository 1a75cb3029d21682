//! A handler that waits at a gate, and log capture, for the layer's tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Empty;
use orca_lb_proto::pb::OrcaLoadReport;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::Semaphore;
use tower_service::Service;

/// Answers each call with a trailers-only OK once the gate lets it through.
#[derive(Clone)]
pub(crate) struct Gated {
    gate: Arc<Semaphore>,
    entered: Arc<AtomicUsize>,
}

impl Default for Gated {
    fn default() -> Self {
        Self {
            gate: Arc::new(Semaphore::new(0)),
            entered: Arc::default(),
        }
    }
}

impl Gated {
    /// Lets `n` waiting or future calls through.
    pub(crate) fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Calls whose handler started.
    pub(crate) fn entered(&self) -> usize {
        self.entered.load(Relaxed)
    }
}

impl Service<Request<()>> for Gated {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        self.entered.fetch_add(1, Relaxed);
        let gate = self.gate.clone();
        Box::pin(async move {
            gate.acquire().await.expect("never closed").forget();
            let mut response = Response::new(Empty::new());
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static("0"));
            Ok(response)
        })
    }
}

/// The `grpc-status` of a trailers-only response.
pub(crate) fn status(headers: &HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}

/// The report in a header or trailer map, with its encoded size.
pub(crate) fn report(headers: &HeaderMap) -> (OrcaLoadReport, usize) {
    let value = headers
        .get(orca_lb_proto::TRAILER_KEY)
        .expect("a report is sent");
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value.as_bytes())
        .expect("base64");
    (
        OrcaLoadReport::decode(bytes.as_slice()).expect("a report"),
        bytes.len(),
    )
}

/// Polls `condition` on the (paused) clock until it holds, failing after a
/// minute of virtual time.
pub(crate) async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..60_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Everything logged while the guard lives, as text.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures the current thread's events at INFO and above.
    pub(crate) fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        orca_lb_testkit::scoped_logs::allow_scoped_subscribers();
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The log lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A gRPC call's request: the layer counts only requests that say
/// `content-type: application/grpc`.
pub(crate) fn grpc_call() -> Request<()> {
    Request::builder()
        .method("POST")
        .uri("/orca_lb.testing.v1.Greeter/SayHello")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(())
        .expect("a valid request")
}
