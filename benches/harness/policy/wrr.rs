//! gRPC's `weighted_round_robin` (gRFC A58) over tonic channels, fed by the
//! report in each response's trailers.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use orca_lb_client::{BoxError, decode_report};
use orca_lb_core::baseline::{EdfScheduler, WrrConfig, WrrWeight};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tower_service::Service;

use super::{BoxFuture, CallService};
use crate::attribution::{Attribution, CallId};

/// One client's weights and schedule.
#[derive(Debug)]
struct State {
    config: WrrConfig,
    weights: Vec<WrrWeight>,
    schedule: EdfScheduler,
    current: Vec<Option<f64>>,
    rng: SmallRng,
}

impl State {
    /// A new schedule from the weights as they are at `now`.
    fn rebuild(&mut self, now: Instant) {
        for (slot, w) in self.current.iter_mut().zip(&self.weights) {
            *slot = w.weight(&self.config, now);
        }
        self.schedule = EdfScheduler::with_config(&self.current, &self.config, &mut self.rng)
            .expect("a run has backends");
    }
}

/// Calls go where the earliest-deadline-first schedule says; each
/// response's report updates its backend's weight, and a task rebuilds the
/// schedule every `weight_update_period`, from a random phase, until the
/// service is dropped.
pub(crate) fn service(
    channels: Vec<Channel>,
    attribution: Arc<Attribution>,
    config: WrrConfig,
    seed: u64,
) -> CallService {
    let n = channels.len();
    let mut rng = SmallRng::seed_from_u64(seed);
    let current = vec![None; n];
    let schedule =
        EdfScheduler::with_config(&current, &config, &mut rng).expect("a run has backends");
    let period = config.weight_update_period;
    let phase = period.mul_f64(rng.random::<f64>());
    let state = Arc::new(Mutex::new(State {
        config,
        weights: vec![WrrWeight::new(); n],
        schedule,
        current,
        rng,
    }));
    tokio::spawn(update_weights(
        Arc::downgrade(&state),
        tokio::time::Instant::now() + phase,
        period,
    ));
    super::boxed(WrrService {
        channels: channels.into(),
        state,
        attribution,
    })
}

async fn update_weights(
    state: Weak<Mutex<State>>,
    first: tokio::time::Instant,
    period: std::time::Duration,
) {
    let mut tick = tokio::time::interval_at(first, period);
    loop {
        let at = tick.tick().await.into_std();
        let Some(state) = state.upgrade() else { return };
        state.lock().rebuild(at);
    }
}

#[derive(Debug, Clone)]
struct WrrService {
    channels: Arc<[Channel]>,
    state: Arc<Mutex<State>>,
    attribution: Arc<Attribution>,
}

impl Service<http::Request<Body>> for WrrService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let i = self.state.lock().schedule.pick();
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        let channel = self.channels[i].clone();
        let feed = Feed {
            state: self.state.clone(),
            backend: i,
        };
        Box::pin(async move {
            let response = channel.oneshot(request).await?;
            // A trailers-only response (an error status) carries its report
            // in the headers.
            feed.headers(response.headers());
            Ok(response.map(|inner| Body::new(ReportBody { inner, feed })))
        })
    }
}

/// Where a response's report goes.
#[derive(Debug)]
struct Feed {
    state: Arc<Mutex<State>>,
    backend: usize,
}

impl Feed {
    fn headers(&self, headers: &http::HeaderMap) {
        let Some(value) = headers.get(orca_lb_proto::TRAILER_KEY) else {
            return;
        };
        // A report that does not decode is ignored, as gRPC does.
        if let Ok(report) = decode_report(value.as_bytes()) {
            let mut state = self.state.lock();
            let State {
                config, weights, ..
            } = &mut *state;
            weights[self.backend].on_report(&report, config, Instant::now());
        }
    }
}

/// A response body that hands the report in its trailers to the weights.
#[derive(Debug)]
struct ReportBody {
    inner: Body,
    feed: Feed,
}

impl HttpBody for ReportBody {
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
            self.feed.headers(trailers);
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
