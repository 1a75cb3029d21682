//! The registry of balancers and the `BalancerDebug` gRPC service over it.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use orca_lb_client::{Balancer, WeakBalancer};
use parking_lot::RwLock;
use tokio_stream::wrappers::IntervalStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::pb;
use crate::pb::balancer_debug_server::{BalancerDebug, BalancerDebugServer};
use crate::watch_limit::WatchLimit;

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
/// is being served. The set holds weak handles: registering a balancer does
/// not keep it alive, and one the application has dropped disappears from
/// the state.
///
/// At most [`DEFAULT_MAX_WATCHERS`](crate::DEFAULT_MAX_WATCHERS) `WatchState`
/// streams are open at once (see [`with_max_watchers`](Self::with_max_watchers));
/// more are refused with `RESOURCE_EXHAUSTED` and counted.
#[derive(Debug, Clone, Default)]
pub struct DebugService {
    balancers: Arc<RwLock<BTreeMap<String, WeakBalancer>>>,
    watchers: Arc<WatchLimit>,
}

// === impl DebugService ===

impl DebugService {
    /// A service with no balancer registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows at most `max` `WatchState` streams at once (at least one).
    pub fn with_max_watchers(mut self, max: usize) -> Self {
        self.watchers = Arc::new(WatchLimit::new(max.max(1)));
        self
    }

    /// `WatchState` streams open now.
    pub fn watchers(&self) -> usize {
        self.watchers.open()
    }

    /// `WatchState` streams refused so far because all places were taken.
    pub fn refused_watchers(&self) -> u64 {
        self.watchers.refused()
    }

    /// Shows `balancer` under `name` for as long as it exists, replacing one
    /// already registered under that name. Returns whether it replaced one
    /// that was still alive.
    pub fn register(&self, name: impl Into<String>, balancer: &Balancer) -> bool {
        let mut balancers = self.balancers.write();
        balancers.retain(|_, b| !b.is_dropped());
        balancers
            .insert(name.into(), balancer.downgrade())
            .is_some_and(|old| !old.is_dropped())
    }

    /// Stops showing the balancer registered under `name`; whether one was
    /// (and still existed).
    pub fn deregister(&self, name: &str) -> bool {
        self.balancers
            .write()
            .remove(name)
            .is_some_and(|old| !old.is_dropped())
    }

    /// The names of the registered balancers that still exist, in order.
    pub fn names(&self) -> Vec<String> {
        self.live().into_iter().map(|(name, _)| name).collect()
    }

    /// Every registered balancer that still exists, now.
    pub fn state(&self) -> pb::State {
        pb::State {
            balancers: self
                .live()
                .iter()
                .map(|(name, b)| convert::balancer(name, &b.snapshot()))
                .collect(),
        }
    }

    /// The registered balancers that still exist, in name order.
    fn live(&self) -> Vec<(String, Balancer)> {
        self.balancers
            .read()
            .iter()
            .filter_map(|(name, b)| Some((name.clone(), b.upgrade()?)))
            .collect()
    }

    /// The balancer registered as `name` (every one if `name` is empty), now.
    fn state_of(&self, name: &str) -> Result<pb::State, Status> {
        if name.is_empty() {
            return Ok(self.state());
        }
        let found = self
            .balancers
            .read()
            .get(name)
            .and_then(WeakBalancer::upgrade);
        let b = found.ok_or_else(|| {
            Status::not_found(format!(
                "no balancer registered as {name:?}; registered: {:?}",
                self.names()
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
        let Some(permit) = self.watchers.try_acquire() else {
            return Err(Status::resource_exhausted(format!(
                "too many state watches open (at most {})",
                self.watchers.max()
            )));
        };
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let service = self.clone();
        tracing::debug!(?interval, balancer, "debug state watch opened");
        // The first tick is immediate. The stream ends when the client goes
        // away (tonic drops it) or after an error (a balancer deregistered
        // while watched by name).
        // The permit lives as long as the stream.
        let stream = IntervalStream::new(ticks).map(move |_| {
            let _open = &permit;
            service.state_of(&balancer)
        });
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

    fn watch_request() -> Request<pb::WatchStateRequest> {
        Request::new(pb::WatchStateRequest {
            interval: None,
            balancer: String::new(),
        })
    }

    #[tokio::test]
    async fn watches_beyond_the_cap_are_refused_until_one_ends() {
        let service = DebugService::new().with_max_watchers(2);
        let first = service.watch_state(watch_request()).await.unwrap();
        let _second = service.watch_state(watch_request()).await.unwrap();
        let Err(refused) = service.watch_state(watch_request()).await else {
            panic!("a third watch is refused");
        };
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!((service.watchers(), service.refused_watchers()), (2, 1));
        drop(first);
        assert_eq!(service.watchers(), 1);
        service
            .watch_state(watch_request())
            .await
            .expect("room again");
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
