//! The policies measured, each a tower `Service` a generated
//! `GreeterClient` sends its calls through.

mod p2c;
mod round_robin;
mod wrr;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use orca_lb_client::{Balancer, BalancerConfig, BoxError, static_list};
use orca_lb_core::baseline::WrrConfig;
use orca_lb_sim::Scenario;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::attribution::{Attribution, Tagged};

/// What every policy looks like to the harness: tonic's request in, its
/// response out.
pub(crate) type CallService =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, CallError>;

/// Any policy's error.
///
/// A type of its own rather than `BoxError`: with the boxed trait object
/// as the service's error, rustc cannot prove the generated client's
/// future `Send` (the `From` impl is "not general enough", a known
/// limitation with higher-ranked lifetimes).
#[derive(Debug)]
pub(crate) struct CallError(BoxError);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// `service` as a [`CallService`].
fn boxed<S>(service: S) -> CallService
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_err(|e: S::Error| CallError(e.into())))
}

/// A boxed future that can move between threads.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One client instance of a policy.
pub(crate) type Client = GreeterClient<CallService>;

/// A policy the harness can run on real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// gRPC's `round_robin`: `baseline::RoundRobin` over one `Channel` per
    /// backend.
    Rr,
    /// tonic's `Channel::balance_list`.
    Tonic,
    /// tower's `p2c::Balance` over `PendingRequestsDiscover`.
    P2cLr,
    /// tower's `p2c::Balance` over `PeakEwmaDiscover`.
    P2cPeakEwma,
    /// gRPC's `weighted_round_robin` on per-call ORCA reports.
    WrrOrca,
    /// `orca_lb_client::Balancer`.
    OrcaLb,
}

/// Settings the policies take from the run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `wrr_orca`'s configuration.
    pub(crate) wrr: WrrConfig,
}

impl Policy {
    /// Every policy, in the order tables show them.
    pub(crate) const ALL: [Policy; 6] = [
        Policy::Rr,
        Policy::Tonic,
        Policy::P2cLr,
        Policy::P2cPeakEwma,
        Policy::WrrOrca,
        Policy::OrcaLb,
    ];

    /// The name in tables and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Policy::Rr => "rr",
            Policy::Tonic => "tonic",
            Policy::P2cLr => "p2c_lr",
            Policy::P2cPeakEwma => "p2c_peakewma",
            Policy::WrrOrca => "wrr_orca",
            Policy::OrcaLb => "orca-lb",
        }
    }

    /// Parses a comma-separated list of names, or `all`.
    pub(crate) fn parse_list(list: &str) -> Result<Vec<Policy>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let found: Vec<Policy> = if name == "all" {
                Policy::ALL.to_vec()
            } else {
                let p = Policy::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| {
                        let known: Vec<_> = Policy::ALL.iter().map(|p| p.name()).collect();
                        format!("unknown policy {name:?}; known: {}, all", known.join(", "))
                    })?;
                vec![p]
            };
            for p in found {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        if out.is_empty() {
            return Err("no policy given".into());
        }
        Ok(out)
    }

    /// The simulator's model of this policy (tonic's is `random`).
    pub(crate) fn simulated(self, scenario: &Scenario) -> orca_lb_sim::Policy {
        match self {
            Policy::Rr => orca_lb_sim::Policy::Rr,
            Policy::Tonic => orca_lb_sim::Policy::Random,
            Policy::P2cLr => orca_lb_sim::Policy::P2cLr,
            Policy::P2cPeakEwma => orca_lb_sim::Policy::P2cPeakEwma,
            Policy::WrrOrca => orca_lb_sim::Policy::WrrOrca,
            Policy::OrcaLb => orca_lb_sim::Policy::orca(scenario),
        }
    }

    /// One client's instance of the policy over the backends at `uris`,
    /// with connections of its own. Must run on the client runtime: the
    /// connections and the policy's tasks are spawned there.
    pub(crate) async fn client(
        self,
        uris: &[String],
        attribution: &Arc<Attribution>,
        seed: u64,
        settings: &Settings,
    ) -> Result<Client, String> {
        let service = match self {
            Policy::Rr => {
                let channels = connect_all(uris).await?;
                round_robin::service(channels, attribution.clone(), seed)
            }
            Policy::Tonic => {
                let endpoints: Vec<Endpoint> = uris
                    .iter()
                    .map(|u| Endpoint::from_shared(u.clone()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                let channel = Channel::balance_list(endpoints.into_iter());
                boxed(channel)
            }
            Policy::P2cLr | Policy::P2cPeakEwma => {
                let channels = connect_all(uris).await?;
                let tagged = channels
                    .into_iter()
                    .enumerate()
                    .map(|(i, ch)| Tagged::new(i, attribution.clone(), ch))
                    .collect();
                if self == Policy::P2cLr {
                    p2c::pending_requests(tagged, seed)
                } else {
                    p2c::peak_ewma(tagged, seed)
                }
            }
            Policy::WrrOrca => {
                let channels = connect_all(uris).await?;
                wrr::service(channels, attribution.clone(), settings.wrr.clone(), seed)
            }
            Policy::OrcaLb => {
                let config = BalancerConfig::default().with_target("harness");
                // `Balancer::from_uris`, with a seed.
                let changes = static_list(uris).map_err(|e| e.to_string())?;
                let discovery = tokio_stream::iter(changes).chain(tokio_stream::pending());
                let balancer =
                    Balancer::with_seed(config, discovery, seed).map_err(|e| e.to_string())?;
                balancer.wait_for_endpoints(uris.len()).await;
                boxed(balancer.map_response(|r| r.map(Body::new)))
            }
        };
        Ok(GreeterClient::new(service))
    }
}

/// How long a connection may take before the run is called off.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connected `Channel` per backend, as a gRPC subchannel: tonic's
/// defaults (`TCP_NODELAY`, HTTP/2 with one connection).
async fn connect_all(uris: &[String]) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::with_capacity(uris.len());
    for uri in uris {
        let channel = Endpoint::from_shared(uri.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {uri}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}
