//! C3 (Suresh et al., NSDI 2015) over tonic channels: the simulator's
//! [`C3`] ranking, fed by the orca-lb report in each response's trailers
//! (`endpoint-load-metrics-bin`), its service time and queue of waiting
//! calls.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use orca_lb_client::BoxError;
use orca_lb_core::LoadReport;
use orca_lb_sim::{C3, Nanos};
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

use super::{BoxFuture, CallService, read_report};
use crate::attribution::{Attribution, CallId};
use crate::probe::streaming_methods;
use crate::watched_body::ResponseWatcher;

/// Each call goes to the backend with the lowest score among the first
/// `present` (backends that join are ranked from then on); its outcome
/// (response time, report) updates that backend's feedback when its
/// response ends, or when it fails or is given up.
pub(crate) fn service(
    channels: Vec<Channel>,
    attribution: Arc<Attribution>,
    seed: u64,
    clients: u32,
    present: watch::Receiver<usize>,
) -> CallService {
    let len = (*present.borrow()).min(channels.len());
    super::boxed(C3Service {
        state: Arc::new(Mutex::new(C3::new(len, seed, clients))),
        channels: channels.into(),
        attribution,
        present,
    })
}

#[derive(Debug, Clone)]
struct C3Service {
    channels: Arc<[Channel]>,
    state: Arc<Mutex<C3>>,
    attribution: Arc<Attribution>,
    present: watch::Receiver<usize>,
}

impl Service<http::Request<Body>> for C3Service {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per channel: the call waits on its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let len = (*self.present.borrow()).min(self.channels.len());
        let i = {
            let mut state = self.state.lock();
            state.set_backends(len);
            state.pick_backend().expect("a run has backends")
        };
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        let outcome = Outcome {
            state: self.state.clone(),
            backend: i,
            picked: Instant::now(),
            stream: streaming_methods().contains(request.uri().path()),
            latency: None,
            report: None,
            done: false,
        };
        // A failure drops `outcome` at its time.
        super::send_watched(self.channels[i].clone(), request, outcome)
    }
}

/// What a call's client learns of it. Handed to the ranking once, when
/// its report arrives or, failing that, when it is dropped (the response
/// ended, or the call failed or was given up at its deadline).
#[derive(Debug)]
struct Outcome {
    state: Arc<Mutex<C3>>,
    backend: usize,
    picked: Instant,
    stream: bool,
    /// Pick to response, once the response came.
    latency: Option<Nanos>,
    report: Option<LoadReport>,
    done: bool,
}

impl Outcome {
    /// A report in `map` (headers or trailers), if any.
    fn read_report(&mut self, map: &http::HeaderMap) {
        if let Some(report) = read_report(map) {
            self.report = Some(report);
        }
    }

    fn since_pick(&self) -> Nanos {
        self.picked.elapsed().as_nanos() as Nanos
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // Pick to outcome for unary calls (a failure's too), none for
        // streams, as the simulator has it.
        let latency = (!self.stream).then(|| self.latency.unwrap_or_else(|| self.since_pick()));
        self.state
            .lock()
            .record_outcome(self.backend, latency, self.report.as_ref());
    }
}

impl ResponseWatcher for Outcome {
    /// The response time, and the report of a trailers-only response (an
    /// error status).
    fn headers(&mut self, headers: &http::HeaderMap) {
        self.latency = Some(self.since_pick());
        self.read_report(headers);
    }

    fn trailers(&mut self, trailers: &http::HeaderMap) {
        self.read_report(trailers);
        self.finish();
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish();
    }
}
