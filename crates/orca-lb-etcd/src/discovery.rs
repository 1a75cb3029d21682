//! Client side: the endpoints registered under a prefix, as a stream of
//! changes for [`Balancer::new`](orca_lb_client::Balancer::new).

mod malformed_log;
mod retry;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, Gauge, counter, gauge};
use orca_lb_client::Change;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::EtcdClient;
use crate::error::EtcdError;
use crate::pb::etcdserverpb::WatchResponse;
use crate::pb::mvccpb::event::EventType;
use crate::record::{DEFAULT_PREFIX, EndpointRecord, service_prefix};
use crate::value_format::ValueFormat;
use malformed_log::MalformedLog;
use retry::Retry;
use table::{Applied, Table};

/// Discovers a service's endpoints in etcd: one read of the prefix, then a
/// watch from the read's revision + 1, so no change between the two is lost.
///
/// Each key under `<prefix>/<service>/` whose value reads as an endpoint in
/// the [`ValueFormat`] set with [`value_format`](Self::value_format)
/// (default [`ValueFormat::Auto`]: orca-lb's record, a bare `host:port` or
/// Go's naming JSON, whichever the value shows) becomes an endpoint keyed by
/// the etcd key; a change of address is a removal and an insertion, a change
/// of metadata alone changes nothing for the balancer. A malformed value is
/// skipped and counted ([`DiscoveryStats::malformed`],
/// `orca_lb_etcd_malformed_values_total`); the first is logged as a warning,
/// later ones in a summary a minute. If its key held a valid record before,
/// that endpoint is removed.
///
/// When etcd fails or restarts, the watch resumes from the next revision
/// after the last one seen, with backoff. If that revision was compacted
/// meanwhile (or etcd came back with an older store), the prefix is read
/// again and only the differences are emitted. A balancer therefore never
/// loses an endpoint that stayed registered, and never sees one twice.
pub struct EtcdDiscovery {
    client: EtcdClient,
    prefix: String,
    format: ValueFormat,
    zone_key: String,
    malformed_log: Mutex<MalformedLog>,
    retry_min: Duration,
    retry_max: Duration,
    stats: DiscoveryStats,
}

impl std::fmt::Debug for EtcdDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDiscovery")
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .field("zone_key", &self.zone_key)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .finish_non_exhaustive()
    }
}

/// What a running [`EtcdDiscovery`] has seen; cheap to clone, readable from
/// any task.
#[derive(Debug, Clone)]
pub struct DiscoveryStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug)]
struct StatsInner {
    table: Mutex<Table>,
    malformed: AtomicU64,
    relists: AtomicU64,
    reconnects: AtomicU64,
    revision: AtomicI64,
    /// The last failure, until a read or watch succeeds again.
    last_error: Mutex<Option<String>>,
    metrics: Metrics,
}

#[derive(Debug)]
struct Metrics {
    malformed: Counter,
    relists: Counter,
    reconnects: Counter,
    endpoints: Gauge,
}

/// Why a watch ended.
enum WatchEnd {
    /// The start revision was compacted: read the prefix again.
    Compacted(i64),
    /// etcd's store is older than what was seen (restored from a backup,
    /// or a new cluster): read the prefix again.
    Behind(i64),
    /// etcd canceled the watch for another reason.
    Canceled(String),
    /// etcd failed or could not be reached.
    Failed(EtcdError),
    /// Nobody listens any more.
    Closed,
}

// === impl EtcdDiscovery ===

impl EtcdDiscovery {
    /// Discovers `service` under the default prefix (`/orca-lb`).
    pub fn new(client: EtcdClient, service: &str) -> Self {
        Self::with_key_prefix(client, service_prefix(DEFAULT_PREFIX, service))
    }

    /// Discovers `service` under `prefix`, as a
    /// [`RegistrationConfig`](crate::RegistrationConfig) with that prefix
    /// registers it.
    pub fn with_prefix(client: EtcdClient, prefix: &str, service: &str) -> Self {
        Self::with_key_prefix(client, service_prefix(prefix, service))
    }

    /// Discovers every key that starts with `key_prefix`, whatever wrote it.
    pub fn with_key_prefix(client: EtcdClient, key_prefix: impl Into<String>) -> Self {
        crate::metric_descriptions::describe();
        let prefix = key_prefix.into();
        let labels = [("prefix", prefix.clone())];
        let metrics = Metrics {
            malformed: counter!("orca_lb_etcd_malformed_values_total", &labels),
            relists: counter!("orca_lb_etcd_relists_total", &labels),
            reconnects: counter!("orca_lb_etcd_reconnects_total", &labels),
            endpoints: gauge!("orca_lb_etcd_endpoints", &labels),
        };
        Self {
            client,
            prefix,
            format: ValueFormat::default(),
            zone_key: crate::value_format::DEFAULT_ZONE_KEY.to_string(),
            malformed_log: Mutex::new(MalformedLog::default()),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
            stats: DiscoveryStats {
                inner: Arc::new(StatsInner {
                    table: Mutex::new(Table::default()),
                    malformed: AtomicU64::new(0),
                    relists: AtomicU64::new(0),
                    reconnects: AtomicU64::new(0),
                    revision: AtomicI64::new(0),
                    last_error: Mutex::new(None),
                    metrics,
                }),
            },
        }
    }

    /// Retries after a failure from `min` (default 50 ms), growing 1.6 times
    /// each attempt up to `max` (default 2 s), each delay within ±20 %.
    pub fn retry(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    /// Reads values as `format` (default [`ValueFormat::Auto`]); a value
    /// not in it is skipped as malformed.
    pub fn value_format(mut self, format: ValueFormat) -> Self {
        self.format = format;
        self
    }

    /// Reads an endpoint's zone from this key of Go's naming `Metadata`
    /// (default `zone`; see [`ValueFormat::decode_zoned`]); orca-lb's own
    /// record has a `zone` field of its own. A zone that is not a valid
    /// zone name makes the value malformed.
    pub fn zone_key(mut self, key: impl Into<String>) -> Self {
        self.zone_key = key.into();
        self
    }

    /// The watched key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The format values are read as.
    pub fn format(&self) -> ValueFormat {
        self.format
    }

    /// A handle on what discovery sees, to read while it runs.
    pub fn stats(&self) -> DiscoveryStats {
        self.stats.clone()
    }

    /// The changes, as a stream for [`Balancer::new`](orca_lb_client::Balancer::new).
    /// Reading and watching run on a task of the current runtime that ends
    /// when the stream is dropped.
    pub fn into_stream(self) -> impl Stream<Item = Change> + Send + 'static {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            tokio::select! {
                _ = self.run(&tx) => {}
                _ = tx.closed() => {}
            }
        });
        ReceiverStream::new(rx)
    }

    async fn run(&self, tx: &mpsc::Sender<Change>) {
        let stats = &self.stats.inner;
        let mut retry = Retry::new(self.retry_min, self.retry_max);
        // The revision to watch from; `None`: read the prefix first.
        let mut next: Option<i64> = None;
        let mut first_read = true;
        loop {
            let start = match next {
                Some(rev) => rev,
                None => match self.client.get_prefix(self.prefix.as_str()).await {
                    Ok(read) => {
                        retry.healthy();
                        *stats.last_error.lock() = None;
                        let applied =
                            stats
                                .table
                                .lock()
                                .replace(&read.kvs, self.format, &self.zone_key);
                        if !first_read {
                            stats.relists.fetch_add(1, Relaxed);
                            stats.metrics.relists.increment(1);
                            tracing::info!(prefix = %self.prefix, revision = read.revision, changes = applied.changes.len(), "read the prefix again");
                        }
                        first_read = false;
                        stats.revision.store(read.revision, Relaxed);
                        if !self.emit(tx, applied).await {
                            return;
                        }
                        read.revision + 1
                    }
                    Err(e) => {
                        self.on_failure(&e, &mut retry).await;
                        continue;
                    }
                },
            };
            next = Some(start);
            let end = self.watch(start, tx, &mut next, &mut retry).await;
            retry.watch_ended(tokio::time::Instant::now());
            match end {
                WatchEnd::Closed => return,
                WatchEnd::Compacted(oldest) => {
                    tracing::info!(prefix = %self.prefix, from = ?next, oldest, "history compacted past the watch; reading the prefix again");
                    next = None;
                }
                WatchEnd::Behind(revision) => {
                    tracing::warn!(prefix = %self.prefix, seen = ?next, revision, "etcd's store is older than what was seen; reading the prefix again");
                    next = None;
                }
                WatchEnd::Canceled(reason) => {
                    tracing::warn!(prefix = %self.prefix, reason, "watch canceled by etcd; reading the prefix again");
                    next = None;
                    tokio::time::sleep(retry.failed(tokio::time::Instant::now()).delay).await;
                }
                WatchEnd::Failed(e) => self.on_failure(&e, &mut retry).await,
            }
        }
    }

    async fn on_failure(&self, e: &EtcdError, retry: &mut Retry) {
        let stats = &self.stats.inner;
        stats.reconnects.fetch_add(1, Relaxed);
        stats.metrics.reconnects.increment(1);
        *stats.last_error.lock() = Some(e.to_string());
        let f = retry.failed(tokio::time::Instant::now());
        if f.warn {
            tracing::warn!(prefix = %self.prefix, error = %e, retry_in = ?f.delay, failures = f.streak, not_logged = f.suppressed, "etcd discovery lost etcd");
        } else {
            tracing::debug!(prefix = %self.prefix, error = %e, retry_in = ?f.delay, failures = f.streak, "etcd discovery lost etcd");
        }
        tokio::time::sleep(f.delay).await;
    }

    /// Watches from `start`, applying events, until the watch ends. Keeps
    /// `next` at the revision after the last one fully applied.
    async fn watch(
        &self,
        start: i64,
        tx: &mpsc::Sender<Change>,
        next: &mut Option<i64>,
        retry: &mut Retry,
    ) -> WatchEnd {
        let stats = &self.stats.inner;
        let mut stream = match self.client.watch_prefix(self.prefix.as_str(), start).await {
            Ok(s) => s,
            Err(e) => return WatchEnd::Failed(e),
        };
        loop {
            let summary_due = self.malformed_log.lock().summary_due();
            let message = tokio::select! {
                message = stream.message() => message,
                // `message` is cancel safe: it polls the stream in place.
                () = sleep_until(summary_due) => {
                    self.malformed_log
                        .lock()
                        .flush(&self.prefix, tokio::time::Instant::now());
                    continue;
                }
            };
            let resp: WatchResponse = match message {
                Ok(Some(r)) => r,
                Ok(None) => return WatchEnd::Failed(EtcdError::StreamEnded { op: "watch" }),
                Err(e) => return WatchEnd::Failed(e),
            };
            let revision = resp.header.as_ref().map_or(0, |h| h.revision);
            if resp.compact_revision > 0 {
                return WatchEnd::Compacted(resp.compact_revision);
            }
            if resp.canceled {
                return WatchEnd::Canceled(resp.cancel_reason);
            }
            if resp.created {
                // Everything before `start` was seen, so the store must be at
                // least at `start - 1`.
                if revision < start - 1 {
                    return WatchEnd::Behind(revision);
                }
                // Not yet healthy: a watch etcd accepts and then drops at
                // once must keep backing off.
                retry.watch_created(tokio::time::Instant::now());
                tracing::debug!(prefix = %self.prefix, start, revision, "watching");
                continue;
            }
            retry.healthy();
            stats.last_error.lock().take();
            if resp.events.is_empty() {
                // Progress: every later event is above `revision`.
                let seen = next.map_or(revision + 1, |n| n.max(revision + 1));
                *next = Some(seen);
                stats.revision.store(seen - 1, Relaxed);
                continue;
            }
            let mut applied = Applied::default();
            let mut last = 0;
            {
                let mut table = stats.table.lock();
                for event in &resp.events {
                    let Some(kv) = event.kv.as_ref() else {
                        continue;
                    };
                    last = last.max(kv.mod_revision);
                    if event.r#type() == EventType::Delete {
                        table.delete(&kv.key, &mut applied);
                    } else {
                        table.put(kv, self.format, &self.zone_key, &mut applied);
                    }
                }
            }
            if last > 0 {
                *next = Some(last + 1);
                stats.revision.store(last, Relaxed);
            }
            if !self.emit(tx, applied).await {
                return WatchEnd::Closed;
            }
        }
    }

    /// Counts and sends; `false` if the receiver is gone.
    async fn emit(&self, tx: &mpsc::Sender<Change>, applied: Applied) -> bool {
        let stats = &self.stats.inner;
        if !applied.malformed.is_empty() {
            let n = applied.malformed.len() as u64;
            stats.malformed.fetch_add(n, Relaxed);
            stats.metrics.malformed.increment(n);
            let now = tokio::time::Instant::now();
            let mut log = self.malformed_log.lock();
            for value in &applied.malformed {
                log.skipped(&self.prefix, value, now);
            }
            log.flush(&self.prefix, now);
        }
        let n = stats.table.lock().endpoints().len();
        stats.metrics.endpoints.set(n as f64);
        for change in applied.changes {
            match &change {
                Change::Insert(key, uri) => {
                    tracing::info!(prefix = %self.prefix, key, %uri, "endpoint registered")
                }
                Change::InsertInZone(key, uri, zone) => {
                    tracing::info!(prefix = %self.prefix, key, %uri, %zone, "endpoint registered")
                }
                Change::Remove(key) => {
                    tracing::info!(prefix = %self.prefix, key, "endpoint deregistered")
                }
                _ => {}
            }
            if tx.send(change).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Sleeps until `at`; never wakes without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// === impl DiscoveryStats ===

impl DiscoveryStats {
    /// Malformed values skipped so far (each value counted once, however
    /// often it is read).
    pub fn malformed(&self) -> u64 {
        self.inner.malformed.load(Relaxed)
    }

    /// Times the prefix was read again after the first read: the watch's
    /// revision was compacted, etcd came back with an older store, or etcd
    /// canceled the watch. (A lost connection resumes the watch instead.)
    pub fn relists(&self) -> u64 {
        self.inner.relists.load(Relaxed)
    }

    /// Times a read or watch failed and was retried (etcd down, restarting,
    /// unreachable).
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Relaxed)
    }

    /// Why the last read or watch failed, while discovery is retrying
    /// (`None` once a read succeeds, or a watch delivers).
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().clone()
    }

    /// The last etcd revision applied.
    pub fn revision(&self) -> i64 {
        self.inner.revision.load(Relaxed)
    }

    /// The endpoints known now, by key, with their metadata.
    pub fn endpoints(&self) -> BTreeMap<String, EndpointRecord> {
        self.inner.table.lock().endpoints().clone()
    }
}
