//! Discovery by periodic DNS resolution.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use crate::Change;
use orca_lb_core::Zone;

/// Resolves a host name to socket addresses. The default uses the system
/// resolver (`tokio::net::lookup_host`); tests and custom setups supply
/// their own.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` on `port`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>>;
}

/// The system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// Resolves a host name every `interval` and announces each address as an
/// endpoint (`http://ip:port`): a name with many addresses becomes many
/// endpoints, an address that disappears is removed (its calls in flight
/// finish).
///
/// A failed resolution, or one that returns no address, keeps the endpoints
/// already known and is logged: a DNS hiccup must not empty the balancer.
/// New addresses are announced before vanished ones are removed, so a full
/// rotation never leaves the balancer without endpoints.
pub struct DnsDiscovery {
    host: String,
    port: u16,
    interval: Duration,
    resolver: Arc<dyn Resolve>,
    zone: Option<Zone>,
}

impl fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("interval", &self.interval)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl DnsDiscovery {
    /// Resolves `host:port` every 30 s with the system resolver.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            interval: Duration::from_secs(30),
            resolver: Arc::new(SystemResolver),
            zone: None,
        }
    }

    /// Re-resolves every `interval` (at least 10 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Uses `resolver` instead of the system's.
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Places every address of the name in `zone` (see
    /// [`BalancerConfig::locality`](crate::BalancerConfig::locality)): one
    /// name per zone, as `api.us-east-1a.internal`. Merge the streams of
    /// several names for several zones.
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zone = Some(zone);
        self
    }

    /// The changes, as a stream for [`Balancer::new`](crate::Balancer::new).
    /// Resolution runs on a task that ends when the stream is dropped.
    pub fn into_stream(self) -> impl Stream<Item = Change> + Send + 'static {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(self.run(tx));
        ReceiverStream::new(rx)
    }

    async fn run(self, tx: mpsc::Sender<Change>) {
        crate::metrics::describe();
        let failures = metrics::counter!("orca_lb_client_dns_failures_total");
        let mut known = BTreeSet::<SocketAddr>::new();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
            }
            let addrs = match self.resolver.resolve(&self.host, self.port).await {
                Ok(addrs) if addrs.is_empty() => {
                    tracing::warn!(host = %self.host, "DNS returned no address; keeping the known endpoints");
                    failures.increment(1);
                    continue;
                }
                Ok(addrs) => addrs.into_iter().collect::<BTreeSet<_>>(),
                Err(e) => {
                    tracing::warn!(host = %self.host, error = %e, "DNS resolution failed; keeping the known endpoints");
                    failures.increment(1);
                    continue;
                }
            };
            // Insertions first: a full rotation (every address replaced)
            // must never leave the balancer without endpoints in between.
            for new in addrs.difference(&known) {
                let uri = match key(new).parse() {
                    Ok(uri) => uri,
                    Err(_) => continue,
                };
                let change = match &self.zone {
                    Some(zone) => Change::InsertInZone(key(new), uri, zone.clone()),
                    None => Change::Insert(key(new), uri),
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
            for gone in known.difference(&addrs) {
                if tx.send(Change::Remove(key(gone))).await.is_err() {
                    return;
                }
            }
            known = addrs;
        }
    }
}

fn key(addr: &SocketAddr) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests;
