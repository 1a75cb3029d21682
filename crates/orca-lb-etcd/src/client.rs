//! A small etcd v3 client over tonic: the requests registration and
//! discovery make, each with a timeout.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::error::EtcdError;
use crate::pb::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseRevokeRequest, PutRequest, RangeRequest, WatchCreateRequest,
    WatchRequest, WatchResponse, kv_client::KvClient, lease_client::LeaseClient,
    watch_client::WatchClient, watch_request::RequestUnion,
};
use crate::pb::mvccpb::KeyValue;
use crate::record::prefix_range_end;

/// How long a unary request may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Keys per page when reading a prefix: keeps each response far below
/// tonic's 4 MiB default message limit for any sane value size.
const PAGE: i64 = 1000;

/// A client for the parts of etcd's v3 API orca-lb uses: `KV` (range, put,
/// delete, compact), `Watch` and `Lease`.
///
/// Cloning is cheap and clones share connections. Connections are made
/// lazily and remade after failures, so a client outlives etcd restarts.
/// Several endpoints (members of one cluster) are balanced by tonic.
#[derive(Debug, Clone)]
pub struct EtcdClient {
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
    timeout: Duration,
}

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// Its ID.
    pub id: i64,
    /// Its time to live, as etcd granted it.
    pub ttl: Duration,
}

/// A read of a key range at one revision.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RangeRead {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The store revision the read saw: a watch from `revision + 1` continues
    /// exactly where the read ended.
    pub revision: i64,
}

// === impl EtcdClient ===

impl EtcdClient {
    /// A client for the etcd members at `endpoints` (`http://host:port`).
    /// Connects on first use, so etcd may be down when this is called; must
    /// be called within a tokio runtime. No TLS and no authentication.
    pub fn connect_lazy<I, S>(endpoints: I) -> Result<EtcdClient, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for e in endpoints {
            let e = e.as_ref();
            let invalid = |why: String| EtcdError::InvalidEndpoint {
                endpoint: e.to_string(),
                why,
            };
            let uri = crate::record::parse_addr(e).map_err(|err| invalid(err.to_string()))?;
            if uri.scheme_str() != Some("http") {
                return Err(invalid("only http:// is supported (no TLS)".into()));
            }
            list.push(
                Endpoint::from(uri)
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    // Notices a silently dead member on an idle watch. etcd
                    // refuses pings more often than every 5 s.
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .keep_alive_while_idle(true),
            );
        }
        let channel = match list.len() {
            0 => {
                return Err(EtcdError::InvalidEndpoint {
                    endpoint: String::new(),
                    why: "no endpoint given".into(),
                });
            }
            1 => list.remove(0).connect_lazy(),
            _ => Channel::balance_list(list.into_iter()),
        };
        Ok(EtcdClient {
            kv: KvClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone()),
            lease: LeaseClient::new(channel),
            timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Gives up on a unary request after `timeout` (default 5 s). Streams
    /// (watch, keep-alive) have no overall timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(EtcdError::status(op)(status)),
            Err(_) => Err(EtcdError::Timeout {
                op,
                after: self.timeout,
            }),
        }
    }

    /// One key, if present.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>, EtcdError> {
        let req = RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        let resp = self.timed("range", self.kv.clone().range(req)).await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Every key starting with `prefix`, read at one revision (in pages of
    /// 1000 keys, each at the first page's revision).
    pub async fn get_prefix(&self, prefix: impl Into<Vec<u8>>) -> Result<RangeRead, EtcdError> {
        let prefix = prefix.into();
        let range_end = prefix_range_end(&prefix);
        let mut read = RangeRead::default();
        let mut key = prefix;
        loop {
            let req = RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                limit: PAGE,
                revision: read.revision,
                ..Default::default()
            };
            let resp = self.timed("range", self.kv.clone().range(req)).await?;
            if read.revision == 0 {
                read.revision = resp.header.map_or(0, |h| h.revision);
            }
            let more = resp.more;
            read.kvs.extend(resp.kvs);
            match read.kvs.last() {
                Some(last) if more => {
                    // The next page starts just after the last key.
                    key = last.key.clone();
                    key.push(0);
                }
                _ => return Ok(read),
            }
        }
    }

    /// Writes `key`, attached to `lease` (0 for none). Returns the new revision.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<i64, EtcdError> {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        };
        let resp = self.timed("put", self.kv.clone().put(req)).await?;
        Ok(resp.header.map_or(0, |h| h.revision))
    }

    /// Deletes `key`. Returns how many keys were deleted (0 or 1).
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<i64, EtcdError> {
        let req = DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        };
        let resp = self
            .timed("delete", self.kv.clone().delete_range(req))
            .await?;
        Ok(resp.deleted)
    }

    /// Drops the history before `revision`: watches that start earlier are
    /// canceled with the compacted revision.
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let req = CompactionRequest {
            revision,
            physical: true,
        };
        self.timed("compact", self.kv.clone().compact(req)).await?;
        Ok(())
    }

    /// A new lease of `ttl` (whole seconds, rounded up; etcd may raise it to
    /// its minimum).
    pub async fn lease_grant(&self, ttl: Duration) -> Result<Lease, EtcdError> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let req = LeaseGrantRequest {
            ttl: i64::try_from(secs.max(1)).unwrap_or(i64::MAX),
            id: 0,
        };
        let resp = self
            .timed("lease grant", self.lease.clone().lease_grant(req))
            .await?;
        if !resp.error.is_empty() {
            return Err(EtcdError::Status {
                op: "lease grant",
                status: tonic::Status::unknown(resp.error),
            });
        }
        Ok(Lease {
            id: resp.id,
            ttl: Duration::from_secs(u64::try_from(resp.ttl).unwrap_or(0)),
        })
    }

    /// Ends lease `id` at once: every key attached to it is deleted.
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        let req = LeaseRevokeRequest { id };
        match self
            .timed("lease revoke", self.lease.clone().lease_revoke(req))
            .await
        {
            Err(EtcdError::Status { status, .. }) if status.code() == tonic::Code::NotFound => {
                Err(EtcdError::LeaseNotFound { id })
            }
            r => r.map(drop),
        }
    }

    /// Opens a keep-alive stream for lease `id`; the first renewal is sent
    /// at once, its answer is [`KeepAlive::recv`]'s first.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<KeepAlive, EtcdError> {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(LeaseKeepAliveRequest { id })
            .expect("a new channel has room");
        let inbound = self
            .timed(
                "lease keep-alive",
                self.lease.clone().lease_keep_alive(ReceiverStream::new(rx)),
            )
            .await?;
        Ok(KeepAlive {
            id,
            tx,
            inbound,
            timeout: self.timeout,
        })
    }

    /// Opens a watch on every key starting with `prefix`, from
    /// `start_revision` (inclusive; 0 for "from now"), with progress
    /// notifications.
    pub async fn watch_prefix(
        &self,
        prefix: impl Into<Vec<u8>>,
        start_revision: i64,
    ) -> Result<WatchStream, EtcdError> {
        let key = prefix.into();
        let (tx, rx) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                range_end: prefix_range_end(&key),
                key,
                start_revision,
                progress_notify: true,
                ..Default::default()
            })),
        };
        tx.try_send(create).expect("a new channel has room");
        let inbound = self
            .timed("watch", self.watch.clone().watch(ReceiverStream::new(rx)))
            .await?;
        Ok(WatchStream { _tx: tx, inbound })
    }
}

/// A lease's keep-alive stream: one renewal per [`KeepAlive::renew`].
#[derive(Debug)]
pub struct KeepAlive {
    id: i64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    inbound: Streaming<LeaseKeepAliveResponse>,
    timeout: Duration,
}

// === impl KeepAlive ===

impl KeepAlive {
    /// The lease this stream renews.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Sends one renewal (the first was sent when the stream opened).
    pub async fn renew(&mut self) -> Result<(), EtcdError> {
        self.tx
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| EtcdError::StreamEnded {
                op: "lease keep-alive",
            })
    }

    /// The answer to the oldest unanswered renewal: the lease's new time to
    /// live, or [`EtcdError::LeaseNotFound`] if it expired or was revoked.
    pub async fn recv(&mut self) -> Result<Duration, EtcdError> {
        let op = "lease keep-alive";
        let resp = match tokio::time::timeout(self.timeout, self.inbound.message()).await {
            Err(_) => {
                return Err(EtcdError::Timeout {
                    op,
                    after: self.timeout,
                });
            }
            Ok(Err(status)) => return Err(EtcdError::status(op)(status)),
            Ok(Ok(None)) => return Err(EtcdError::StreamEnded { op }),
            Ok(Ok(Some(resp))) => resp,
        };
        if resp.ttl <= 0 {
            return Err(EtcdError::LeaseNotFound { id: self.id });
        }
        Ok(Duration::from_secs(u64::try_from(resp.ttl).unwrap_or(0)))
    }
}

/// A watch stream: responses for the one watcher it was opened with.
#[derive(Debug)]
pub struct WatchStream {
    /// Kept so the request side stays open: etcd ends the watch when it closes.
    _tx: mpsc::Sender<WatchRequest>,
    inbound: Streaming<WatchResponse>,
}

// === impl WatchStream ===

impl WatchStream {
    /// The next response; `Ok(None)` when etcd ended the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, EtcdError> {
        self.inbound
            .message()
            .await
            .map_err(EtcdError::status("watch"))
    }
}
