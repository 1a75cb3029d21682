//! Server side: an endpoint's key under a lease, kept alive, restored after
//! a lost lease, revoked on graceful shutdown.

mod failure_log;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, counter};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{EtcdClient, KeepAlive};
use crate::error::{ConfigError, EtcdError, RegisterError};
use crate::record::{DEFAULT_PREFIX, EndpointRecord, endpoint_key};
use crate::value_format::RegistrationFormat;
use failure_log::FailureLog;
use orca_lb_core::Backoff;

/// "Key restored" is logged at WARN at most this often, else at DEBUG.
const RESTORE_WARN_EVERY: Duration = Duration::from_secs(60);

/// How to register one endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RegistrationConfig {
    /// The key prefix shared by every service (default `/orca-lb`). Empty,
    /// keys are `<service>/<host:port>` (Go's naming layout).
    pub prefix: String,
    /// The service name: keys go under `<prefix>/<service>/`.
    pub service: String,
    /// The address clients connect to, and its metadata.
    pub record: EndpointRecord,
    /// The value format written (default orca-lb's own): Go fleets read
    /// [`RegistrationFormat::BareAddress`] (`host:port` under a lease, with
    /// `prefix` `/<scheme>`) or [`RegistrationFormat::GoNaming`]
    /// (`{"Op":0,"Addr":"host:port","Metadata":...}`, with `prefix` the
    /// naming target's parent, often empty). The record must carry only
    /// what the format writes ([`RegistrationFormat::check`]).
    pub format: RegistrationFormat,
    /// The lease's time to live (default 10 s, whole seconds, at least 1 s;
    /// etcd raises it to its own minimum, 2 s with default settings). A
    /// process that dies without deregistering is dropped this long after
    /// its last renewal; renewals are sent every third of it.
    pub ttl: Duration,
}

// === setters of RegistrationConfig ===

impl RegistrationConfig {
    /// Sets [`prefix`](Self::prefix).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`service`](Self::service).
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Sets [`record`](Self::record).
    #[must_use]
    pub fn with_record(mut self, record: EndpointRecord) -> Self {
        self.record = record;
        self
    }

    /// Sets [`format`](Self::format).
    #[must_use]
    pub fn with_format(mut self, format: RegistrationFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

// === impl RegistrationConfig ===

impl RegistrationConfig {
    /// Registers `addr` (`http://host:port`) for `service` under the
    /// default prefix, with a 10 s lease and no metadata.
    pub fn new(service: impl Into<String>, addr: http::Uri) -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_string(),
            service: service.into(),
            record: EndpointRecord::new(addr),
            format: RegistrationFormat::default(),
            ttl: Duration::from_secs(10),
        }
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, why: &str| {
            Err(ConfigError {
                field,
                why: why.to_string(),
            })
        };
        if self.service.is_empty() || self.service.contains('/') {
            return err("service", "must be non-empty and contain no '/'");
        }
        if self.record.addr.authority().is_none() || self.record.addr.port_u16().is_none() {
            return err("record.addr", "must be scheme://host:port");
        }
        if self.ttl < Duration::from_secs(1) {
            return err("ttl", "must be at least 1 s");
        }
        self.format.check(&self.record)
    }

    /// The key this registration writes.
    pub fn key(&self) -> String {
        endpoint_key(&self.prefix, &self.service, &self.record.addr)
    }

    /// The value this registration writes, in [`format`](Self::format);
    /// fails as [`validate`](Self::validate) does.
    pub fn value(&self) -> Result<String, ConfigError> {
        self.validate()?;
        self.format.encode(&self.record)
    }
}

/// A running registration: the endpoint's key exists in etcd, attached to a
/// lease that a background task keeps alive.
///
/// The task restores the key when it goes missing: after the lease was lost
/// (etcd unreachable for longer than the TTL, the lease revoked by someone
/// else) it grants a new lease and writes the key again; after reconnecting
/// it checks the key is still there. An etcd restart keeps leases (etcd
/// extends them when it comes back), so the same key and lease carry on.
///
/// The key is also checked after every renewal (one read per third of the
/// TTL): a key deleted while its lease lives (`etcdctl del`, an operator's
/// cleanup) is written again under the same lease within a third of the TTL.
/// A key holding this endpoint's record under another lease (a second
/// registrant of the same address) counts as present; if that registrant's
/// lease goes, the key is written again at the next check.
///
/// [`deregister`](Self::deregister) stops the task and revokes the lease,
/// which deletes the key at once. Dropping the handle instead only stops
/// the task: the key stays until its lease expires, as when the process is
/// killed.
#[derive(Debug)]
pub struct Registration {
    key: String,
    client: EtcdClient,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct State {
    /// The service registered, for logs and metric labels.
    service: String,
    /// The current lease, 0 while there is none.
    lease: AtomicI64,
    registrations: AtomicU64,
    lease_losses: AtomicU64,
    key_restores: AtomicU64,
    /// When "key restored" was last logged at WARN.
    last_restore_warn: parking_lot::Mutex<Option<tokio::time::Instant>>,
    metrics: Metrics,
}

#[derive(Debug)]
struct Metrics {
    registrations: Counter,
    lease_losses: Counter,
    keep_alive_failures: Counter,
    key_restores: Counter,
}

enum Ended {
    /// Deregistration asked the task to stop.
    Stopped,
    /// etcd says the lease is gone.
    LeaseLost,
    /// etcd could not be reached, or failed.
    Failed(EtcdError),
}

// === impl Registration ===

impl Registration {
    /// Grants a lease, writes the key under it, and starts keeping the lease
    /// alive on a task of the current runtime. Fails if the configuration
    /// is invalid or etcd does not accept the first registration.
    pub async fn start(
        client: EtcdClient,
        config: RegistrationConfig,
    ) -> Result<Registration, RegisterError> {
        let value = config.value()?;
        crate::metric_descriptions::describe();
        let key = config.key();
        let labels = [("service", config.service.clone())];
        let state = Arc::new(State {
            service: config.service.clone(),
            lease: AtomicI64::new(0),
            registrations: AtomicU64::new(0),
            lease_losses: AtomicU64::new(0),
            key_restores: AtomicU64::new(0),
            last_restore_warn: parking_lot::Mutex::new(None),
            metrics: Metrics {
                registrations: counter!("orca_lb_etcd_registrations_total", &labels),
                lease_losses: counter!("orca_lb_etcd_lease_losses_total", &labels),
                keep_alive_failures: counter!("orca_lb_etcd_keep_alive_failures_total", &labels),
                key_restores: counter!("orca_lb_etcd_key_restores_total", &labels),
            },
        });
        let task = Task {
            client: client.clone(),
            key: key.clone(),
            value,
            ttl: config.ttl,
            state: state.clone(),
        };
        let lease = task.register().await?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(task.run(lease, stop_rx));
        Ok(Registration {
            key,
            client,
            state,
            stop,
            task: Some(task),
        })
    }

    /// The service registered.
    pub fn service(&self) -> &str {
        &self.state.service
    }

    /// The key this registration keeps in etcd.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease the key is attached to now; `None` between losing a lease
    /// and getting the next.
    pub fn lease_id(&self) -> Option<i64> {
        Some(self.state.lease.load(Relaxed)).filter(|&id| id != 0)
    }

    /// How many times the key was written under a new lease (1 after
    /// [`start`](Self::start)).
    pub fn registrations(&self) -> u64 {
        self.state.registrations.load(Relaxed)
    }

    /// How many times etcd reported the lease gone while the task kept it.
    pub fn lease_losses(&self) -> u64 {
        self.state.lease_losses.load(Relaxed)
    }

    /// How many times the key was found missing (or holding another record)
    /// under a live lease and written again.
    pub fn key_restores(&self) -> u64 {
        self.state.key_restores.load(Relaxed)
    }

    /// Stops keeping the lease alive and revokes it, deleting the key: every
    /// watcher sees the endpoint leave at once. A lease already gone counts
    /// as revoked. If etcd cannot be reached, the error is returned and the
    /// key goes when the lease expires.
    pub async fn deregister(mut self) -> Result<(), EtcdError> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let Some(id) = self.lease_id() else {
            return Ok(());
        };
        match self.client.lease_revoke(id).await {
            Ok(()) | Err(EtcdError::LeaseNotFound { .. }) => {
                tracing::info!(service = %self.state.service, key = %self.key, lease = id, "deregistered: lease revoked");
                self.state.lease.store(0, Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(service = %self.state.service, key = %self.key, lease = id, error = %e, "revoking the lease failed; the key stays until it expires");
                Err(e)
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The keep-alive task's state.
struct Task {
    client: EtcdClient,
    key: String,
    value: String,
    ttl: Duration,
    state: Arc<State>,
}

// === impl Task ===

impl Task {
    /// A new lease with the key written under it.
    async fn register(&self) -> Result<i64, EtcdError> {
        let lease = self.client.lease_grant(self.ttl).await?;
        self.state.lease.store(lease.id, Relaxed);
        self.client
            .put(self.key.as_str(), self.value.as_str(), lease.id)
            .await?;
        self.state.registrations.fetch_add(1, Relaxed);
        self.state.metrics.registrations.increment(1);
        tracing::info!(service = %self.state.service, key = %self.key, lease = lease.id, ttl = ?lease.ttl, "registered");
        Ok(lease.id)
    }

    /// Writes the key again if it is missing or holds another record.
    async fn restore_key(&self, lease: i64) -> Result<(), EtcdError> {
        let current = self.client.get(self.key.as_str()).await?;
        let intact = current
            .as_ref()
            .is_some_and(|kv| kv.value == self.value.as_bytes());
        if !intact {
            self.client
                .put(self.key.as_str(), self.value.as_str(), lease)
                .await?;
            let restores = self.state.key_restores.fetch_add(1, Relaxed) + 1;
            self.state.metrics.key_restores.increment(1);
            let now = tokio::time::Instant::now();
            let warn = {
                let mut last = self.state.last_restore_warn.lock();
                let due =
                    last.is_none_or(|at| now.saturating_duration_since(at) >= RESTORE_WARN_EVERY);
                if due {
                    *last = Some(now);
                }
                due
            };
            if warn {
                tracing::warn!(service = %self.state.service, key = %self.key, lease, restores, "key was missing or overwritten under a live lease; restored");
            } else {
                tracing::debug!(service = %self.state.service, key = %self.key, lease, restores, "key restored");
            }
        }
        Ok(())
    }

    /// etcd answers again: says so if it had failed.
    fn recovered(&self, failures: &mut FailureLog) {
        let streak = failures.recovered();
        if streak > 0 {
            tracing::info!(service = %self.state.service, key = %self.key, failures = streak, "etcd answers again");
        }
    }

    async fn run(self, mut lease: i64, mut stop: watch::Receiver<bool>) {
        // Retries stay well inside the TTL, so an etcd restart does not cost
        // the lease.
        let mut backoff = Backoff::new(Duration::from_millis(50), self.ttl / 4);
        let mut failures = FailureLog::default();
        let mut check_key = false;
        loop {
            if lease == 0 {
                let registered = tokio::select! {
                    r = self.register() => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match registered {
                    Ok(id) => {
                        lease = id;
                        check_key = false;
                        backoff.reset();
                        self.recovered(&mut failures);
                    }
                    Err(e) => {
                        let v = failures.failed(tokio::time::Instant::now());
                        if v.warn {
                            tracing::warn!(service = %self.state.service, key = %self.key, error = %e, failures = v.streak, not_logged = v.not_logged, "registration failed; retrying (repeats are logged once a minute)");
                        } else {
                            tracing::debug!(service = %self.state.service, key = %self.key, error = %e, failures = v.streak, "registration failed; retrying");
                        }
                        // A lease granted before the failure is kept: its key
                        // is checked once etcd answers again.
                        lease = self.state.lease.load(Relaxed);
                        check_key = lease != 0;
                        let delay = backoff.next_delay(&mut rand::rng());
                        if sleep_or_stop(delay, &mut stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            match self
                .keep_alive(lease, check_key, &mut backoff, &mut failures, &mut stop)
                .await
            {
                Ended::Stopped => return,
                Ended::LeaseLost => {
                    tracing::warn!(service = %self.state.service, key = %self.key, lease, "lease lost; registering again");
                    self.state.lease_losses.fetch_add(1, Relaxed);
                    self.state.metrics.lease_losses.increment(1);
                    self.state.lease.store(0, Relaxed);
                    lease = 0;
                }
                Ended::Failed(e) => {
                    let v = failures.failed(tokio::time::Instant::now());
                    if v.warn {
                        tracing::warn!(service = %self.state.service, key = %self.key, lease, error = %e, failures = v.streak, not_logged = v.not_logged, "lease keep-alive failed; reconnecting (repeats are logged once a minute)");
                    } else {
                        tracing::debug!(service = %self.state.service, key = %self.key, lease, error = %e, failures = v.streak, "lease keep-alive failed; reconnecting");
                    }
                    self.state.metrics.keep_alive_failures.increment(1);
                    check_key = true;
                    let delay = backoff.next_delay(&mut rand::rng());
                    if sleep_or_stop(delay, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Renews `lease` every third of its TTL until it is lost, etcd fails,
    /// or the registration stops.
    async fn keep_alive(
        &self,
        lease: i64,
        check_key: bool,
        backoff: &mut Backoff,
        failures: &mut FailureLog,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        tokio::select! {
            e = self.renew_until_error(lease, check_key, backoff, failures) => match e {
                EtcdError::LeaseNotFound { .. } => Ended::LeaseLost,
                e => Ended::Failed(e),
            },
            _ = stop.wait_for(|s| *s) => Ended::Stopped,
        }
    }

    async fn renew_until_error(
        &self,
        lease: i64,
        check_key: bool,
        backoff: &mut Backoff,
        failures: &mut FailureLog,
    ) -> EtcdError {
        let mut stream: KeepAlive = match self.client.lease_keep_alive(lease).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        let mut ttl = match stream.recv().await {
            Ok(ttl) => ttl,
            Err(e) => return e,
        };
        if check_key && let Err(e) = self.restore_key(lease).await {
            return e;
        }
        backoff.reset();
        self.recovered(failures);
        loop {
            tokio::time::sleep((ttl / 3).max(Duration::from_millis(100))).await;
            if let Err(e) = stream.renew().await {
                return e;
            }
            ttl = match stream.recv().await {
                Ok(ttl) => ttl,
                Err(e) => return e,
            };
            if let Err(e) = self.restore_key(lease).await {
                return e;
            }
        }
    }
}

/// Sleeps for `d`; `true` if the registration was stopped meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}
