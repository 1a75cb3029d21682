//! gRPC's `round_robin` over tonic channels.

use std::sync::Arc;
use std::task::{Context, Poll};

use orca_lb_client::BoxError;
use orca_lb_core::baseline::RoundRobin;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tower_service::Service;

use super::{BoxFuture, CallService};
use crate::attribution::{Attribution, CallId};

/// Each call to the next channel in turn, from a random start, as gRPC's
/// picker does with its ready subchannels (all of them are: a backend that
/// fails fast is still connected).
pub(crate) fn service(
    channels: Vec<Channel>,
    attribution: Arc<Attribution>,
    seed: u64,
    present: watch::Receiver<usize>,
) -> CallService {
    let mut rng = SmallRng::seed_from_u64(seed);
    super::boxed(RoundRobinService {
        channels: channels.into(),
        cursor: Arc::new(RoundRobin::from_rng(&mut rng)),
        attribution,
        present,
    })
}

#[derive(Debug, Clone)]
struct RoundRobinService {
    channels: Arc<[Channel]>,
    cursor: Arc<RoundRobin>,
    attribution: Arc<Attribution>,
    /// The channels in the rotation: the first this many (backends that
    /// join later come in as it grows).
    present: watch::Receiver<usize>,
}

impl Service<http::Request<Body>> for RoundRobinService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per channel: the call waits on its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let i = self
            .cursor
            .pick(self.present.borrow().min(self.channels.len()), |_| true)
            .expect("a run has backends");
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        let channel = self.channels[i].clone();
        Box::pin(async move { channel.oneshot(request).await.map_err(BoxError::from) })
    }
}
