//! The policies measured, each a tower `Service` a generated
//! `GreeterClient` sends its calls through.

mod c3;
mod p2c;
mod prequal;
mod ring_hash;
mod round_robin;
mod wrr;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use orca_lb_client::{
    AffinityConfig, Balancer, BalancerConfig, BoxError, decode_report, static_list,
};
use orca_lb_core::LoadReport;
use orca_lb_core::baseline::WrrConfig;
use orca_lb_proto::StreamingMethods;
use orca_lb_sim::Scenario;
use orca_lb_testkit::GREETER_DESCRIPTOR_SET;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::attribution::{Attribution, Tagged};
use crate::keys::KEY_METADATA;
use crate::watched_body::{ResponseWatcher, WatchedBody};

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

/// Sends `request` over `channel`: `watcher` is shown the response's
/// headers, then its trailers, and is dropped with its body, or with the
/// call if it fails first.
fn send_watched<W: ResponseWatcher>(
    channel: Channel,
    request: http::Request<Body>,
    mut watcher: W,
) -> BoxFuture<Result<http::Response<Body>, BoxError>> {
    Box::pin(async move {
        let response = channel.oneshot(request).await?;
        watcher.headers(response.headers());
        Ok(response.map(|inner| WatchedBody::wrap(inner, watcher)))
    })
}

/// The orca-lb report in a response's trailers (`endpoint-load-metrics-bin`),
/// or in the headers of a trailers-only response (an error status); one
/// that does not decode is ignored, as gRPC does.
fn read_report(map: &http::HeaderMap) -> Option<LoadReport> {
    decode_report(map.get(orca_lb_proto::TRAILER_KEY)?.as_bytes()).ok()
}

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
    /// Prequal: probes of each backend's requests in flight and latency
    /// (answered by the backends' probe layer), hot-cold pick.
    Prequal,
    /// C3's replica ranking on the per-call reports (without its rate
    /// control).
    C3,
    /// gRPC's `ring_hash`: each keyed call to its key's owner on a
    /// consistent-hash ring, whatever its load.
    RingHash,
    /// `orca_lb_client::Balancer` with session affinity on the key's
    /// metadata entry (bounded loads, the scenario's epsilon).
    OrcaAffinity,
}

/// Settings the policies take from the run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `wrr_orca`'s configuration.
    pub(crate) wrr: WrrConfig,
    /// With keyed calls, `orca-lb/affinity`'s epsilon.
    pub(crate) epsilon: Option<f64>,
    /// The scenario's clients: C3's `n`.
    pub(crate) clients: u32,
}

impl Policy {
    /// Every policy, in the order tables show them.
    pub(crate) const ALL: [Policy; 8] = [
        Policy::Rr,
        Policy::Tonic,
        Policy::P2cLr,
        Policy::P2cPeakEwma,
        Policy::WrrOrca,
        Policy::OrcaLb,
        Policy::Prequal,
        Policy::C3,
    ];

    /// The policies for keyed calls only (scenarios with `[keys]`), in
    /// the order tables show them, after [`Policy::ALL`].
    pub(crate) const KEYED: [Policy; 2] = [Policy::RingHash, Policy::OrcaAffinity];

    /// The name in tables and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Policy::Rr => "rr",
            Policy::Tonic => "tonic",
            Policy::P2cLr => "p2c_lr",
            Policy::P2cPeakEwma => "p2c_peakewma",
            Policy::WrrOrca => "wrr_orca",
            Policy::OrcaLb => "orca-lb",
            Policy::Prequal => "prequal",
            Policy::C3 => "c3",
            Policy::RingHash => "ring_hash",
            Policy::OrcaAffinity => "orca-lb/affinity",
        }
    }

    /// Whether the policy is `orca_lb_client::Balancer` (its picks are
    /// read from its trace events).
    pub(crate) fn is_orca_lb(self) -> bool {
        matches!(self, Policy::OrcaLb | Policy::OrcaAffinity)
    }

    /// Whether the backends must answer probes (`probe`'s layer).
    pub(crate) fn probes(self) -> bool {
        self == Policy::Prequal
    }

    /// Parses a comma-separated list of names, or `all` (with the keyed
    /// policies if `keyed`: the scenario has `[keys]`). A keyed policy on
    /// a scenario without keys is refused, as the simulator refuses it.
    pub(crate) fn parse_list(list: &str, keyed: bool) -> Result<Vec<Policy>, String> {
        let every = || Policy::ALL.into_iter().chain(Policy::KEYED);
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let found: Vec<Policy> = if name == "all" {
                every()
                    .filter(|p| keyed || !Policy::KEYED.contains(p))
                    .collect()
            } else {
                let p = every().find(|p| p.name() == name).ok_or_else(|| {
                    let known: Vec<_> = every().map(Policy::name).collect();
                    format!("unknown policy {name:?}; known: {}, all", known.join(", "))
                })?;
                if !keyed && Policy::KEYED.contains(&p) {
                    return Err(format!(
                        "{name} needs keyed calls, and the scenario has no [keys] section"
                    ));
                }
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
            Policy::Prequal => orca_lb_sim::Policy::Prequal,
            Policy::C3 => orca_lb_sim::Policy::C3,
            Policy::RingHash => orca_lb_sim::Policy::RingHash,
            Policy::OrcaAffinity => orca_lb_sim::Policy::OrcaAffinity {
                epsilon: scenario.keys.as_ref().map_or(0.25, |k| k.epsilon),
                config: Box::new(scenario.orca_config()),
            },
        }
    }

    /// Whether the policy follows backends that join during a run (see
    /// [`Policy::client`]).
    pub(crate) fn follows_joins(self) -> bool {
        matches!(
            self,
            Policy::Rr
                | Policy::P2cLr
                | Policy::OrcaLb
                | Policy::OrcaAffinity
                | Policy::Prequal
                | Policy::C3
        )
    }

    /// One client's instance of the policy over the backends at `uris`,
    /// with connections of its own. Must run on the client runtime: the
    /// connections and the policy's tasks are spawned there.
    ///
    /// The client knows the first `present` backends; the policies that
    /// [follow joins](Self::follows_joins) learn of more as `present`
    /// grows, the others keep the first ones.
    pub(crate) async fn client(
        self,
        uris: &[String],
        present: &watch::Receiver<usize>,
        attribution: &Arc<Attribution>,
        seed: u64,
        settings: &Settings,
    ) -> Result<Client, String> {
        let initial = (*present.borrow()).min(uris.len());
        let service = match self {
            Policy::Rr => {
                let channels = connect_all(uris).await?;
                round_robin::service(channels, attribution.clone(), seed, present.clone())
            }
            Policy::Tonic => {
                let endpoints: Vec<Endpoint> = uris[..initial]
                    .iter()
                    .map(|u| Endpoint::from_shared(u.clone()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                let channel = Channel::balance_list(endpoints.into_iter());
                boxed(channel)
            }
            Policy::P2cLr | Policy::P2cPeakEwma => {
                let channels = connect_all(uris).await?;
                let tagged: Vec<Tagged<Channel>> = channels
                    .into_iter()
                    .enumerate()
                    .map(|(i, ch)| Tagged::new(i, attribution.clone(), ch))
                    .collect();
                if self == Policy::P2cLr {
                    p2c::pending_requests(tagged, present.clone(), seed)
                } else {
                    p2c::peak_ewma(tagged[..initial].to_vec(), seed)
                }
            }
            Policy::Prequal => {
                let channels = connect_all(uris).await?;
                prequal::service(channels, attribution.clone(), seed, present.clone())
            }
            Policy::C3 => {
                let channels = connect_all(uris).await?;
                c3::service(
                    channels,
                    attribution.clone(),
                    seed,
                    settings.clients,
                    present.clone(),
                )
            }
            Policy::WrrOrca => {
                let channels = connect_all(&uris[..initial]).await?;
                wrr::service(channels, attribution.clone(), settings.wrr.clone(), seed)
            }
            Policy::RingHash => {
                let channels = connect_all(&uris[..initial]).await?;
                ring_hash::service(
                    &uris[..initial],
                    channels,
                    attribution.clone(),
                    KEY_METADATA,
                    seed,
                )
            }
            Policy::OrcaLb | Policy::OrcaAffinity => {
                let streaming = StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
                    .map_err(|e| e.to_string())?;
                let mut config = BalancerConfig::default()
                    .with_target("harness")
                    .with_streaming(streaming);
                if self == Policy::OrcaAffinity {
                    let epsilon = settings
                        .epsilon
                        .ok_or("orca-lb/affinity needs keyed calls ([keys])")?;
                    config = config.with_affinity(
                        AffinityConfig::metadata(KEY_METADATA).with_epsilon(epsilon),
                    );
                }
                // `Balancer::from_uris`, with a seed, and an insert for
                // each backend that joins.
                let changes = static_list(uris).map_err(|e| e.to_string())?;
                let discovery = joins(changes, present.clone());
                let balancer =
                    Balancer::with_seed(config, discovery, seed).map_err(|e| e.to_string())?;
                balancer.wait_for_endpoints(initial).await;
                boxed(balancer.map_response(|r| r.map(Body::new)))
            }
        };
        Ok(GreeterClient::new(service))
    }
}

/// `items[..present]` at once, then each further item as `present` grows:
/// a discovery stream that follows joins. Runs a task on the current
/// runtime until `present` is dropped or every item went out.
pub(crate) fn joins<T: Send + 'static>(
    items: Vec<T>,
    mut present: watch::Receiver<usize>,
) -> impl Stream<Item = T> + Send + Unpin + 'static {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut items = items.into_iter();
        let mut sent = 0;
        loop {
            let now = *present.borrow_and_update();
            while sent < now {
                let Some(item) = items.next() else { return };
                if tx.send(item).is_err() {
                    return;
                }
                sent += 1;
            }
            if present.changed().await.is_err() {
                // No more joins; the stream stays open, as discovery does.
                tx.closed().await;
                return;
            }
        }
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_policies_need_keys() {
        assert_eq!(
            Policy::parse_list("all", false).unwrap(),
            Policy::ALL.to_vec()
        );
        let all = Policy::parse_list("all", true).unwrap();
        assert_eq!(&all[..8], &Policy::ALL[..]);
        assert_eq!(&all[8..], &Policy::KEYED[..]);
        assert_eq!(
            Policy::parse_list("orca-lb,orca-lb/affinity,ring_hash", true).unwrap(),
            vec![Policy::OrcaLb, Policy::OrcaAffinity, Policy::RingHash]
        );
        for name in ["ring_hash", "orca-lb/affinity"] {
            let e = Policy::parse_list(&format!("rr,{name}"), false).unwrap_err();
            assert!(e.contains("no [keys]"), "{e}");
        }
        assert_eq!(
            Policy::parse_list("prequal,c3", false).unwrap(),
            vec![Policy::Prequal, Policy::C3]
        );
        assert!(Policy::parse_list("nope", true).is_err());
    }
}
