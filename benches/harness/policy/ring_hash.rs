//! gRPC's `ring_hash` (and Envoy's ring hash) over tonic channels: a keyed
//! call goes to its key's owner on a consistent-hash ring, whatever its
//! load; a call without a key to a random channel.

use std::sync::Arc;
use std::task::{Context, Poll};

use orca_lb_client::BoxError;
use orca_lb_core::{HashRing, key_hash};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tower_service::Service;

use super::{BoxFuture, CallService};
use crate::attribution::{Attribution, CallId};

/// Ring points per backend, as `orca-lb/affinity`'s default and the
/// simulator's ring (gRPC's and Envoy's rings hold about 100 per endpoint
/// at these fleet sizes).
const VIRTUAL_NODES: u32 = 100;

/// The ring over `uris` (each placed by its URI, as orca-lb places its
/// endpoints), keyed by the value of the `key` metadata entry, hashed as
/// orca-lb hashes it: a key has the same first choice here as under
/// `orca-lb/affinity`.
pub(crate) fn service(
    uris: &[String],
    channels: Vec<Channel>,
    attribution: Arc<Attribution>,
    key: &'static str,
    seed: u64,
) -> CallService {
    super::boxed(RingHashService {
        ring: Arc::new(HashRing::new(
            uris.iter().map(String::as_str),
            VIRTUAL_NODES,
        )),
        channels: channels.into(),
        attribution,
        key,
        rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))),
    })
}

#[derive(Debug, Clone)]
struct RingHashService {
    ring: Arc<HashRing>,
    channels: Arc<[Channel]>,
    attribution: Arc<Attribution>,
    key: &'static str,
    rng: Arc<Mutex<SmallRng>>,
}

impl RingHashService {
    /// The channel of a call whose `key` entry is `value`, if it has one.
    fn pick(&self, value: Option<&[u8]>) -> usize {
        value
            .and_then(|v| self.ring.owner(key_hash(v)))
            .unwrap_or_else(|| self.rng.lock().random_range(0..self.channels.len()))
    }
}

impl Service<http::Request<Body>> for RingHashService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per channel: the call waits on its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let i = self.pick(request.headers().get(self.key).map(|v| v.as_bytes()));
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        let channel = self.channels[i].clone();
        Box::pin(async move { channel.oneshot(request).await.map_err(BoxError::from) })
    }
}
