//! tower's own power of two choices over tonic channels: least pending
//! requests, and PeakEWMA.

use std::time::Duration;

use orca_lb_client::BoxError;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::convert::Infallible;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;

use tokio::sync::watch;
use tower::discover::{Change, ServiceList};
use tower::load::{CompleteOnResponse, PeakEwmaDiscover, PendingRequestsDiscover};

use super::CallService;
use crate::attribution::Tagged;

/// PeakEWMA's round-trip estimate before the first response (Finagle's and
/// linkerd's default).
const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// PeakEWMA's decay (Finagle's and linkerd's default).
const DECAY: Duration = Duration::from_secs(10);

/// Requests the shared balancer holds for its callers, as in front of a
/// tonic `Channel`.
const BUFFER: usize = 1024;

/// P2C on each channel's requests in flight (Envoy's `least_request`):
/// `p2c::Balance` over `PendingRequestsDiscover`, a request complete when
/// its response arrives.
///
/// Over the first `present` channels, and each further one as `present`
/// grows (a backend that joins).
pub(crate) fn pending_requests(
    channels: Vec<Tagged<Channel>>,
    present: watch::Receiver<usize>,
    seed: u64,
) -> CallService {
    let inserts: Vec<Result<Change<usize, Tagged<Channel>>, Infallible>> = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| Ok(Change::Insert(i, ch)))
        .collect();
    let discover = PendingRequestsDiscover::new(
        super::joins(inserts, present),
        CompleteOnResponse::default(),
    );
    shared(Balance::from_rng(discover, Seeded::new(seed)))
}

/// P2C on `PeakEwma(rtt) x (pending + 1)` (Finagle, linkerd):
/// `p2c::Balance` over `PeakEwmaDiscover`.
pub(crate) fn peak_ewma(channels: Vec<Tagged<Channel>>, seed: u64) -> CallService {
    let discover = PeakEwmaDiscover::new(
        ServiceList::new(channels),
        DEFAULT_RTT,
        DECAY,
        CompleteOnResponse::default(),
    );
    shared(Balance::from_rng(discover, Seeded::new(seed)))
}

/// The balancer behind a `Buffer`, so that clones share it, as tonic puts
/// its own balancer behind one.
fn shared<S>(balance: S) -> CallService
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = BoxError,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    super::boxed(Buffer::new(balance, BUFFER))
}

/// A seeded generator for tower's sampler.
struct Seeded(SmallRng);

impl Seeded {
    fn new(seed: u64) -> Self {
        Self(SmallRng::seed_from_u64(seed))
    }
}

impl tower::util::rng::Rng for Seeded {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}
