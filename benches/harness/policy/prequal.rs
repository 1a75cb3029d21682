//! Prequal (Wydrowski et al., NSDI 2024) over tonic channels: the
//! simulator's [`Prequal`] balancer, its probes sent over each backend's
//! channel and answered by `probe`'s layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use orca_lb_client::BoxError;
use orca_lb_sim::{Nanos, Prequal};
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tower_service::Service;

use super::{BoxFuture, CallService};
use crate::attribution::{Attribution, CallId};
use crate::probe;

/// A probe not answered by then is given up (its answer would be stale:
/// the pool keeps answers for 1 s). Not in the simulator, whose backends
/// always answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Each call goes where the client's pool says; then the probes of that
/// query go out on tasks of their own, each over its backend's channel,
/// and their answers enter the pool as they come.
///
/// Over the first `present` channels, and each further one as `present`
/// grows (a backend that joins is probed like the others from then on).
pub(crate) fn service(
    channels: Vec<Channel>,
    attribution: Arc<Attribution>,
    seed: u64,
    present: watch::Receiver<usize>,
) -> CallService {
    let len = (*present.borrow()).min(channels.len());
    super::boxed(PrequalService {
        state: Arc::new(Mutex::new(Prequal::new(len, seed))),
        channels: channels.into(),
        attribution,
        present,
        epoch: Instant::now(),
    })
}

#[derive(Debug, Clone)]
struct PrequalService {
    channels: Arc<[Channel]>,
    state: Arc<Mutex<Prequal>>,
    attribution: Arc<Attribution>,
    present: watch::Receiver<usize>,
    /// The pool's clock starts here.
    epoch: Instant,
}

impl Service<http::Request<Body>> for PrequalService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per channel: the call waits on its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let len = (*self.present.borrow()).min(self.channels.len());
        let now = self.epoch.elapsed().as_nanos() as Nanos;
        let mut targets = Vec::new();
        let i = {
            let mut state = self.state.lock();
            state.set_backends(len);
            let i = state.pick_backend(now).expect("a run has backends");
            state.probe_targets(&mut targets);
            i
        };
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        for b in targets {
            tokio::spawn(send_probe(
                self.channels[b].clone(),
                self.state.clone(),
                b,
                self.epoch,
            ));
        }
        let channel = self.channels[i].clone();
        Box::pin(async move { channel.oneshot(request).await.map_err(BoxError::from) })
    }
}

/// Probes `backend` over its channel and hands the answer to the pool.
async fn send_probe(channel: Channel, state: Arc<Mutex<Prequal>>, backend: usize, epoch: Instant) {
    let answer = tokio::time::timeout(PROBE_TIMEOUT, channel.oneshot(probe::probe_request())).await;
    let Ok(Ok(response)) = answer else { return };
    let Some((rif, latency)) = probe::read_answer(response.headers()) else {
        return;
    };
    let now = epoch.elapsed().as_nanos() as Nanos;
    state.lock().record_answer(backend, rif, latency, now);
}
