//! C3 (Suresh et al., NSDI 2015) over tonic channels: replica ranking by
//! response time and server feedback, with a cubic queue term and
//! concurrency compensation. The simulator's `c3`, with its parameters:
//! the feedback is the orca-lb report in each response's trailers
//! (`endpoint-load-metrics-bin`), its service time and queue of waiting
//! calls.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use orca_lb_client::{BoxError, decode_report};
use orca_lb_core::LoadReport;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tower_service::Service;

use super::{BoxFuture, CallService};
use crate::attribution::{Attribution, CallId};
use crate::probe::streaming_methods;

/// Weight of the newest value in every moving average.
const ALPHA: f64 = 0.9;

/// What one client knows of one backend.
#[derive(Debug, Clone, Copy, Default)]
struct Feedback {
    /// This client's calls outstanding there.
    outstanding: u32,
    /// Moving average of response time seen by this client, seconds.
    response: Option<f64>,
    /// Moving average of the reported service time (1 / mu), seconds.
    service: Option<f64>,
    /// Moving average of the reported queue size.
    queue: f64,
}

fn ewma(old: Option<f64>, new: f64) -> f64 {
    match old {
        Some(o) => ALPHA * new + (1.0 - ALPHA) * o,
        None => new,
    }
}

/// One client's C3 replica ranking over every backend: the simulator's
/// `C3`, line for line.
///
/// A backend's score is `(R - 1/mu) + q^3 / mu` with
/// `q = 1 + os * n + q_reported`: `R` the moving average of this client's
/// response times from it, `1/mu` that of its reported service time,
/// `q_reported` that of its reported queue of waiting calls, `os` this
/// client's calls outstanding there and `n` the number of clients. The
/// lowest score wins (ties from a random start). A backend not heard from
/// yet scores its compensation term alone, with zero times.
///
/// C3's per-backend cubic rate control and its backlog queue are not
/// modelled, as in the simulator: calls are never held at the client.
#[derive(Debug)]
struct C3 {
    rng: SmallRng,
    clients: f64,
    backends: Vec<Feedback>,
}

impl C3 {
    /// `clients` is `n`; 0 leaves the compensation out.
    fn new(len: usize, seed: u64, clients: u32) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            clients: f64::from(clients),
            backends: vec![Feedback::default(); len],
        }
    }

    fn score(&self, f: &Feedback) -> f64 {
        let r = f.response.unwrap_or(0.0);
        let inv_mu = f.service.unwrap_or(0.0);
        let q = 1.0 + f64::from(f.outstanding) * self.clients + f.queue;
        (r - inv_mu) + q * q * q * inv_mu
    }

    /// The best of the first `len` backends, counted as outstanding there.
    fn pick(&mut self, len: usize) -> usize {
        let len = len.min(self.backends.len());
        let start = self.rng.random_range(0..len);
        let mut best = (f64::INFINITY, start);
        for k in 0..len {
            let i = (start + k) % len;
            let s = self.score(&self.backends[i]);
            if s < best.0 {
                best = (s, i);
            }
        }
        let backend = best.1;
        self.backends[backend].outstanding += 1;
        backend
    }

    /// A call to `backend` ended: `latency` from its pick (none for a
    /// stream), and the report its response carried, if any.
    fn done(&mut self, backend: usize, latency: Option<f64>, report: Option<&LoadReport>) {
        let f = &mut self.backends[backend];
        f.outstanding -= 1;
        if let Some(latency) = latency {
            f.response = Some(ewma(f.response, latency));
        }
        if let Some(report) = report {
            if let Some(ms) = report.service_time_ms() {
                f.service = Some(ewma(f.service, ms / 1e3));
            }
            if let Some(q) = report.queue_depth() {
                f.queue = ewma(Some(f.queue), q);
            }
        }
    }
}

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
    super::boxed(C3Service {
        state: Arc::new(Mutex::new(C3::new(channels.len(), seed, clients))),
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
        let i = self.state.lock().pick(len);
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        let mut outcome = Outcome {
            state: self.state.clone(),
            backend: i,
            picked: Instant::now(),
            stream: streaming_methods().contains(request.uri().path()),
            latency: None,
            report: None,
            done: false,
        };
        let channel = self.channels[i].clone();
        Box::pin(async move {
            // An error here drops `outcome`: a failure at its time.
            let response = channel.oneshot(request).await?;
            outcome.responded(response.headers());
            Ok(response.map(|inner| Body::new(FeedbackBody { inner, outcome })))
        })
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
    /// Pick to response, seconds, once the response came.
    latency: Option<f64>,
    report: Option<LoadReport>,
    done: bool,
}

impl Outcome {
    /// The response's headers came: the response time, and the report of
    /// a trailers-only response (an error status).
    fn responded(&mut self, headers: &http::HeaderMap) {
        self.latency = Some(self.picked.elapsed().as_secs_f64());
        self.read_report(headers);
    }

    /// A report in `map` (headers or trailers); one that does not decode
    /// is ignored.
    fn read_report(&mut self, map: &http::HeaderMap) {
        if let Some(value) = map.get(orca_lb_proto::TRAILER_KEY)
            && let Ok(report) = decode_report(value.as_bytes())
        {
            self.report = Some(report);
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // Pick to outcome for unary calls (a failure's too), none for
        // streams, as the simulator has it.
        let latency = (!self.stream).then(|| {
            self.latency
                .unwrap_or_else(|| self.picked.elapsed().as_secs_f64())
        });
        self.state
            .lock()
            .done(self.backend, latency, self.report.as_ref());
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A response body that hands the report in its trailers to the ranking.
#[derive(Debug)]
struct FeedbackBody {
    inner: Body,
    outcome: Outcome,
}

impl HttpBody for FeedbackBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(trailers) = f.trailers_ref()
        {
            self.outcome.read_report(trailers);
            self.outcome.finish();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cubic_queue_term_and_own_calls_steer_away() {
        let mut c = C3::new(2, 1, 10);
        // Backend 0 fast with a queue of 3; backend 1 twice as slow, empty.
        c.backends[0] = Feedback {
            outstanding: 0,
            response: Some(0.02),
            service: Some(0.01),
            queue: 3.0,
        };
        c.backends[1] = Feedback {
            outstanding: 0,
            response: Some(0.03),
            service: Some(0.02),
            queue: 0.0,
        };
        // 0: 0.01 + 64 * 0.01 = 0.65; 1: 0.01 + 1 * 0.02 = 0.03.
        assert_eq!(c.pick(2), 1);
        // Now one own call there: 1 + 10 = 11, 11^3 * 0.02 = 26.6 > 0.65.
        assert_eq!(c.pick(2), 0);
        let report = LoadReport::default();
        c.done(1, Some(0.04), Some(&report));
        assert_eq!(c.backends[1].outstanding, 0);
        let r = c.backends[1].response.unwrap();
        assert!((r - (0.9 * 0.04 + 0.1 * 0.03)).abs() < 1e-12, "{r}");
    }

    #[test]
    fn only_present_backends_are_ranked() {
        let mut c = C3::new(3, 2, 4);
        c.backends[0].service = Some(0.01);
        c.backends[0].queue = 9.0;
        for _ in 0..20 {
            let b = c.pick(1);
            assert_eq!(b, 0);
            c.done(b, Some(0.01), None);
        }
        assert!(c.backends[1..].iter().all(|f| f.outstanding == 0));
    }
}
