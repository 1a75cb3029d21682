//! The registry of balancers and the `BalancerDebug` gRPC service over it.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use orca_lb_client::Balancer;
use parking_lot::RwLock;
use tokio_stream::wrappers::IntervalStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::pb;
use crate::pb::balancer_debug_server::{BalancerDebug, BalancerDebugServer};

/// The `WatchState` interval when the request gives none.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest `WatchState` interval: the balancer's default maintenance
/// period, which updates breakers, fleet medians and the 10 s windows, so
/// states taken more often would mostly repeat themselves.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// The `orca_lb.debug.v1.BalancerDebug` service over a set of named
/// balancers.
///
/// Clones share the set, so an application can keep one clone to
/// [`register`](Self::register) balancers as it creates them while another
/// is being served.
#[derive(Debug, Clone, Default)]
pub struct DebugService {
    balancers: Arc<RwLock<BTreeMap<String, Balancer>>>,
}

// === impl DebugService ===

impl DebugService {
    /// A service with no balancer registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `balancer` under `name`, replacing (and returning) one already
    /// registered under that name. The service keeps the clone it is given.
    pub fn register(&self, name: impl Into<String>, balancer: Balancer) -> Option<Balancer> {
        self.balancers.write().insert(name.into(), balancer)
    }

    /// Stops showing the balancer registered under `name`, and returns it.
    pub fn deregister(&self, name: &str) -> Option<Balancer> {
        self.balancers.write().remove(name)
    }

    /// The registered names, in order.
    pub fn names(&self) -> Vec<String> {
        self.balancers.read().keys().cloned().collect()
    }

    /// Every registered balancer, now.
    pub fn state(&self) -> pb::State {
        let balancers = self.balancers.read();
        pb::State {
            balancers: balancers
                .iter()
                .map(|(name, b)| convert::balancer(name, &b.snapshot()))
                .collect(),
        }
    }

    /// The balancer registered as `name` (every one if `name` is empty), now.
    fn state_of(&self, name: &str) -> Result<pb::State, Status> {
        if name.is_empty() {
            return Ok(self.state());
        }
        let balancers = self.balancers.read();
        let b = balancers.get(name).ok_or_else(|| {
            Status::not_found(format!(
                "no balancer registered as {name:?}; registered: {:?}",
                balancers.keys().collect::<Vec<_>>()
            ))
        })?;
        Ok(pb::State {
            balancers: vec![convert::balancer(name, &b.snapshot())],
        })
    }

    /// The generated tonic server for this service, to add to a
    /// `tonic::transport::Server` of the application's own. (Register
    /// [`FILE_DESCRIPTOR_SET`](crate::FILE_DESCRIPTOR_SET) with its reflection
    /// service, if it has one.)
    pub fn into_server(self) -> BalancerDebugServer<DebugService> {
        BalancerDebugServer::new(self)
    }
}

/// The interval a `WatchState` request asks for, defaulted and clamped.
fn watch_interval(requested: Option<prost_types::Duration>) -> Result<Duration, Status> {
    let Some(d) = requested else {
        return Ok(DEFAULT_WATCH_INTERVAL);
    };
    let d = Duration::try_from(d)
        .map_err(|e| Status::invalid_argument(format!("invalid interval: {e}")))?;
    Ok(if d.is_zero() {
        DEFAULT_WATCH_INTERVAL
    } else {
        d.max(MIN_WATCH_INTERVAL)
    })
}

type StateStream = Pin<Box<dyn Stream<Item = Result<pb::State, Status>> + Send>>;

#[tonic::async_trait]
impl BalancerDebug for DebugService {
    async fn get_state(
        &self,
        request: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::State>, Status> {
        self.state_of(&request.get_ref().balancer)
            .map(Response::new)
    }

    type WatchStateStream = StateStream;

    async fn watch_state(
        &self,
        request: Request<pb::WatchStateRequest>,
    ) -> Result<Response<Self::WatchStateStream>, Status> {
        let pb::WatchStateRequest { interval, balancer } = request.into_inner();
        let interval = watch_interval(interval)?;
        // An unknown name is refused now rather than on the first tick.
        self.state_of(&balancer)?;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let service = self.clone();
        tracing::debug!(?interval, balancer, "debug state watch opened");
        // The first tick is immediate. The stream ends when the client goes
        // away (tonic drops it) or after an error (a balancer deregistered
        // while watched by name).
        let stream = IntervalStream::new(ticks).map(move |_| service.state_of(&balancer));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb_duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn watch_interval_defaults_and_clamps() {
        assert_eq!(watch_interval(None).unwrap(), DEFAULT_WATCH_INTERVAL);
        assert_eq!(
            watch_interval(pb_duration(0, 0)).unwrap(),
            DEFAULT_WATCH_INTERVAL
        );
        assert_eq!(
            watch_interval(pb_duration(0, 1_000)).unwrap(),
            MIN_WATCH_INTERVAL
        );
        assert_eq!(
            watch_interval(pb_duration(2, 500_000_000)).unwrap(),
            Duration::from_millis(2500)
        );
        let err = watch_interval(pb_duration(-1, 0)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn unknown_names_are_not_found() {
        let service = DebugService::new();
        assert!(service.state().balancers.is_empty());
        let err = service.state_of("nope").unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.message().contains("\"nope\""), "{err}");
    }
}
