//! gRPC's `weighted_round_robin` (gRFC A58) over tonic channels, fed by the
//! report in each response's trailers.

use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use orca_lb_client::BoxError;
use orca_lb_core::baseline::{EdfScheduler, WrrConfig, WrrWeight};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

use super::{BoxFuture, CallService, read_report};
use crate::attribution::{Attribution, CallId};
use crate::watched_body::ResponseWatcher;

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
        let feed = Feed {
            state: self.state.clone(),
            backend: i,
        };
        super::send_watched(self.channels[i].clone(), request, feed)
    }
}

/// Where a response's report goes.
#[derive(Debug)]
struct Feed {
    state: Arc<Mutex<State>>,
    backend: usize,
}

impl ResponseWatcher for Feed {
    /// A trailers-only response (an error status) carries its report in
    /// the headers.
    fn headers(&mut self, headers: &http::HeaderMap) {
        self.trailers(headers);
    }

    /// The report, if any, updates the backend's weight.
    fn trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(report) = read_report(trailers) {
            let mut state = self.state.lock();
            let State {
                config, weights, ..
            } = &mut *state;
            weights[self.backend].on_report(&report, config, Instant::now());
        }
    }
}
