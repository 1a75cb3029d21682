//! A small etcd v3 client over tonic: the requests registration and
//! discovery make, each with a timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::auth::{Auth, TOKEN_KEY, Token, token_rejected, watch_token_rejected};
use crate::client_options::{EtcdClientOptions, EtcdTls};
use crate::error::EtcdError;
use crate::pb::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseRevokeRequest, PutRequest, RangeRequest, WatchCreateRequest,
    WatchRequest, WatchResponse, kv_client::KvClient, lease_client::LeaseClient,
    watch_client::WatchClient, watch_request::RequestUnion,
};
use crate::pb::mvccpb::KeyValue;
use crate::record::prefix_range_end;
use crate::tls_failure::Transport;

/// How long a unary request may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Keys per page when reading a prefix: keeps each response far below
/// tonic's 4 MiB default message limit for any sane value size.
const PAGE: i64 = 1000;

/// A client for the parts of etcd's v3 API orca-lb uses: `KV` (range, put,
/// delete, compact), `Watch` and `Lease`.
///
/// Cloning is cheap and clones share connections (and the token). Connections
/// are made lazily and remade after failures, so a client outlives etcd
/// restarts. Several endpoints (members of one cluster) are balanced by
/// tonic.
///
/// With [`EtcdClientOptions::credentials`], the client authenticates before
/// its first request and sends the token with every request, watch and
/// keep-alive stream. When etcd refuses the token (it expired, or etcd
/// restarted and forgot it), the client authenticates again once and retries
/// the request; concurrent requests share the new token.
#[derive(Debug, Clone)]
pub struct EtcdClient {
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
    auth: Option<Arc<Auth>>,
    transport: Transport,
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
    /// be called within a tokio runtime. No TLS and no authentication: see
    /// [`connect_lazy_with`](Self::connect_lazy_with).
    pub fn connect_lazy<I, S>(endpoints: I) -> Result<EtcdClient, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_lazy_with(endpoints, EtcdClientOptions::default())
    }

    /// A client for the etcd members at `endpoints`, all `http://host:port`
    /// or all `https://host:port` (the latter with
    /// [`EtcdClientOptions::tls`]), authenticating with
    /// [`EtcdClientOptions::credentials`] if set. Connects on first use;
    /// must be called within a tokio runtime. Options and endpoints are
    /// checked here: a bad PEM, a mix of schemes, or TLS settings for
    /// `http://` endpoints are errors naming the culprit.
    pub fn connect_lazy_with<I, S>(
        endpoints: I,
        options: EtcdClientOptions,
    ) -> Result<EtcdClient, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        options.validate()?;
        let tls = options
            .tls
            .as_ref()
            .map(EtcdTls::client_config)
            .transpose()?;
        let mut list = Vec::new();
        let mut scheme: Option<(String, String)> = None;
        for e in endpoints {
            let e = e.as_ref();
            let invalid = |why: String| EtcdError::InvalidEndpoint {
                endpoint: e.to_string(),
                why,
            };
            let uri = crate::record::parse_addr(e).map_err(|err| invalid(err.to_string()))?;
            let this = uri.scheme_str().unwrap_or_default().to_string();
            match this.as_str() {
                "http" if tls.is_some() => {
                    return Err(invalid(
                        "TLS settings are given, so the endpoint must be https://".into(),
                    ));
                }
                "http" | "https" => {}
                other => {
                    return Err(invalid(format!(
                        "scheme {other:?}: use http:// or https://"
                    )));
                }
            }
            if let Some((first, first_scheme)) = &scheme
                && *first_scheme != this
            {
                return Err(invalid(format!(
                    "mixes {this}:// with {first_scheme}:// ({first}): all endpoints use one scheme"
                )));
            }
            scheme.get_or_insert_with(|| (e.to_string(), this.clone()));
            let mut endpoint = Endpoint::from(uri)
                .connect_timeout(options.connect_timeout)
                .tcp_nodelay(true)
                // Notices a silently dead member on an idle watch. etcd
                // refuses pings more often than every 5 s.
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            if this == "https" {
                let config = tls
                    .clone()
                    .unwrap_or_else(|| ClientTlsConfig::new().with_enabled_roots());
                endpoint = endpoint
                    .tls_config(config)
                    .map_err(|err| invalid(crate::error::error_chain(&err)))?;
            }
            list.push(endpoint);
        }
        let transport = match scheme {
            Some((_, scheme)) if scheme == "https" => Transport::Tls {
                identity: options
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.client_cert_pem.is_some()),
            },
            _ => Transport::Plain,
        };
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
            lease: LeaseClient::new(channel.clone()),
            transport,
            auth: options.credentials.map(|c| Arc::new(Auth::new(c, channel))),
            timeout: options.request_timeout,
        })
    }

    /// Gives up on a unary request after `timeout` (default 5 s). Streams
    /// (watch, keep-alive) have no overall timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times this client (and its clones) authenticated: 0 without
    /// credentials, 1 after the first request, one more each time etcd
    /// refused the token.
    pub fn authentications(&self) -> u64 {
        self.auth.as_ref().map_or(0, |a| a.authentications())
    }

    /// The user this client authenticates as, if any.
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.user())
    }

    /// The token to send, authenticating first if needed.
    async fn token(&self) -> Result<Option<Token>, EtcdError> {
        match &self.auth {
            Some(auth) => auth.token(self.timeout).await.map(Some),
            None => Ok(None),
        }
    }

    /// A new token after etcd refused `rejected`.
    async fn refresh(&self, rejected: Option<&Token>) -> Result<Option<Token>, EtcdError> {
        match &self.auth {
            Some(auth) => auth
                .refresh(rejected.map(|t| t.generation), self.timeout)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(EtcdError::status_via(op, Some(self.transport))(status)),
            Err(_) => Err(EtcdError::Timeout {
                op,
                after: self.timeout,
            }),
        }
    }

    /// Sends `message` with the token, once more with a new token if etcd
    /// refused it.
    async fn call<M, T, F, Fut>(&self, op: &'static str, message: M, f: F) -> Result<T, EtcdError>
    where
        M: Clone,
        F: Fn(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut token = self.token().await?;
        let mut retried = false;
        loop {
            let request = with_token(message.clone(), token.as_ref());
            match self.timed(op, f(request)).await {
                Err(EtcdError::Status { status, .. })
                    if !retried && token.is_some() && token_rejected(&status) =>
                {
                    tracing::debug!(
                        op,
                        message = status.message(),
                        "etcd refused the token; authenticating again"
                    );
                    retried = true;
                    token = self.refresh(token.as_ref()).await?;
                }
                r => return r,
            }
        }
    }

    /// One key, if present.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>, EtcdError> {
        let req = RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        let resp = self
            .call("range", req, |r| {
                let mut c = self.kv.clone();
                async move { c.range(r).await }
            })
            .await?;
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
            let resp = self
                .call("range", req, |r| {
                    let mut c = self.kv.clone();
                    async move { c.range(r).await }
                })
                .await?;
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
        let resp = self
            .call("put", req, |r| {
                let mut c = self.kv.clone();
                async move { c.put(r).await }
            })
            .await?;
        Ok(resp.header.map_or(0, |h| h.revision))
    }

    /// Deletes `key`. Returns how many keys were deleted (0 or 1).
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<i64, EtcdError> {
        let req = DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        };
        let resp = self
            .call("delete", req, |r| {
                let mut c = self.kv.clone();
                async move { c.delete_range(r).await }
            })
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
        self.call("compact", req, |r| {
            let mut c = self.kv.clone();
            async move { c.compact(r).await }
        })
        .await?;
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
            .call("lease grant", req, |r| {
                let mut c = self.lease.clone();
                async move { c.lease_grant(r).await }
            })
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
            .call("lease revoke", req, |r| {
                let mut c = self.lease.clone();
                async move { c.lease_revoke(r).await }
            })
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
        let op = "lease keep-alive";
        let mut token = self.token().await?;
        let mut retried = false;
        loop {
            let (tx, rx) = mpsc::channel(4);
            tx.try_send(LeaseKeepAliveRequest { id })
                .expect("a new channel has room");
            let request = with_token(ReceiverStream::new(rx), token.as_ref());
            match self
                .timed(op, self.lease.clone().lease_keep_alive(request))
                .await
            {
                Ok(inbound) => {
                    return Ok(KeepAlive {
                        id,
                        tx,
                        inbound,
                        timeout: self.timeout,
                    });
                }
                Err(EtcdError::Status { status, .. })
                    if !retried && token.is_some() && token_rejected(&status) =>
                {
                    retried = true;
                    token = self.refresh(token.as_ref()).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens a watch on every key starting with `prefix`, from
    /// `start_revision` (inclusive; 0 for "from now"), with progress
    /// notifications. Waits for etcd's first answer (the watch created, or
    /// canceled): a watch refused because of its token is opened again
    /// with a new one.
    pub async fn watch_prefix(
        &self,
        prefix: impl Into<Vec<u8>>,
        start_revision: i64,
    ) -> Result<WatchStream, EtcdError> {
        let op = "watch";
        let key = prefix.into();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                range_end: prefix_range_end(&key),
                key,
                start_revision,
                progress_notify: true,
                ..Default::default()
            })),
        };
        let mut token = self.token().await?;
        let mut retried = false;
        loop {
            let (tx, rx) = mpsc::channel(1);
            tx.try_send(create.clone()).expect("a new channel has room");
            let request = with_token(ReceiverStream::new(rx), token.as_ref());
            let opened = async {
                let mut inbound = self.watch.clone().watch(request).await?.into_inner();
                let first = inbound.message().await?;
                Ok::<_, tonic::Status>((inbound, first))
            };
            let (inbound, first) = match tokio::time::timeout(self.timeout, opened).await {
                Err(_) => {
                    return Err(EtcdError::Timeout {
                        op,
                        after: self.timeout,
                    });
                }
                Ok(Err(status)) if !retried && token.is_some() && token_rejected(&status) => {
                    retried = true;
                    token = self.refresh(token.as_ref()).await?;
                    continue;
                }
                Ok(Err(status)) => {
                    return Err(EtcdError::status_via(op, Some(self.transport))(status));
                }
                Ok(Ok(opened)) => opened,
            };
            if let Some(first) = &first
                && first.canceled
                && token.is_some()
                && watch_token_rejected(&first.cancel_reason)
            {
                if retried {
                    return Err(EtcdError::Status {
                        op,
                        status: tonic::Status::permission_denied(first.cancel_reason.clone()),
                    });
                }
                tracing::debug!(reason = %first.cancel_reason, "etcd refused the watch's token; authenticating again");
                retried = true;
                token = self.refresh(token.as_ref()).await?;
                continue;
            }
            return Ok(WatchStream {
                _tx: tx,
                first,
                inbound,
            });
        }
    }
}

/// A request carrying `token`, if any.
fn with_token<M>(message: M, token: Option<&Token>) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert(TOKEN_KEY, token.value.clone());
    }
    request
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
    /// etcd's first answer, read when the watch was opened.
    first: Option<WatchResponse>,
    inbound: Streaming<WatchResponse>,
}

// === impl WatchStream ===

impl WatchStream {
    /// The next response; `Ok(None)` when etcd ended the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, EtcdError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        self.inbound
            .message()
            .await
            .map_err(EtcdError::status("watch"))
    }
}
