//! Graceful shutdown of a registered server, in an order that fails no call.

mod incoming;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::error::{ConfigError, EtcdError};
use crate::registration::Registration;

pub use incoming::{DrainIncoming, DrainIo};

/// How long each step of a [`Drain`] may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainConfig {
    /// After the key is deleted, how long the server keeps accepting calls:
    /// the time clients need to see the deletion and stop picking it. Calls
    /// that were already on their way are served. Default 1 s (an etcd
    /// watch on a healthy cluster takes milliseconds).
    pub propagation: Duration,
    /// After the listener closes, how long calls in flight may take to
    /// finish; connections still open then are cut. Default 10 s.
    pub deadline: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            propagation: Duration::from_secs(1),
            deadline: Duration::from_secs(10),
        }
    }
}

impl DrainConfig {
    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.deadline.is_zero() {
            return Err(ConfigError {
                field: "deadline",
                why: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// Where a drain is; connections and the server's shutdown signal watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// The listener closes; calls in flight go on.
    Closing,
    /// The deadline passed: every connection is cut.
    Cut,
}

/// Takes a registered tonic server out of service without failing calls:
///
/// 1. health turns `NOT_SERVING` (the whole server and the named services),
///    for health-checking clients and proxies;
/// 2. the registration is revoked: the key leaves etcd at once and
///    discovering clients stop picking this server;
/// 3. after [`propagation`](DrainConfig::propagation), the listener closes
///    (tonic's graceful shutdown: HTTP/2 GOAWAY, no new calls);
/// 4. calls in flight finish, within [`deadline`](DrainConfig::deadline);
///    connections still open then are cut.
///
/// Deregistering before closing is what keeps calls from failing: a client
/// that still believes in a closed server gets a refused connection.
///
/// ```no_run
/// # async fn run(client: orca_lb_etcd::EtcdClient, addr: http::Uri,
/// #     shutdown: tokio::sync::oneshot::Receiver<()>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use orca_lb_etcd::{Drain, DrainConfig, Registration, RegistrationConfig};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// let (health, health_service) = tonic_health::server::health_reporter();
/// let drain = Drain::new(DrainConfig::default()).health(health, ["helloworld.Greeter"]);
/// let server = tokio::spawn(
///     tonic::transport::Server::builder()
///         .add_service(health_service) // and the application's services
///         .serve_with_incoming_shutdown(drain.incoming(listener), drain.signal()),
/// );
/// // Serving first, then registered: no client sees a key it cannot reach.
/// let registration = Registration::start(client, RegistrationConfig::new("greeter", addr)).await?;
///
/// shutdown.await?; // SIGTERM, Ctrl-C, ...
/// let report = drain.run(Some(registration), server).await;
/// assert!(report.finished);
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Debug)]
pub struct Drain {
    config: DrainConfig,
    health: Option<(HealthReporter, Vec<String>)>,
    phase: watch::Sender<Phase>,
}

/// What a [`Drain`] did.
#[derive(Debug)]
pub struct DrainReport {
    /// Why the lease could not be revoked, if so: its key then stays until
    /// it expires.
    pub deregister_error: Option<EtcdError>,
    /// Whether every call in flight finished before the deadline (`false`:
    /// some connections were cut).
    pub finished: bool,
    /// From the start of the drain to the server's end.
    pub took: Duration,
}

// === impl Drain ===

impl Drain {
    /// A drain with these step durations. Use [`incoming`](Self::incoming)
    /// and [`signal`](Self::signal) when starting the server.
    pub fn new(config: DrainConfig) -> Self {
        Self {
            config,
            health: None,
            phase: watch::channel(Phase::Serving).0,
        }
    }

    /// Sets the whole server (`""`) and these services `NOT_SERVING` first.
    pub fn health<I, S>(mut self, reporter: HealthReporter, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.health = Some((reporter, services.into_iter().map(Into::into).collect()));
        self
    }

    /// The listener's connections, to serve with
    /// `serve_with_incoming_shutdown`, so that the drain can cut them.
    pub fn incoming(&self, listener: TcpListener) -> DrainIncoming {
        DrainIncoming::new(listener, self.phase.subscribe())
    }

    /// Resolves when the listener must close: the shutdown signal for
    /// `serve_with_incoming_shutdown`.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut phase = self.phase.subscribe();
        async move {
            if phase.wait_for(|p| *p >= Phase::Closing).await.is_err() {
                // The drain was dropped without running: serve on.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs the drain to its end: `server` is the task serving with
    /// [`incoming`](Self::incoming) and [`signal`](Self::signal).
    pub async fn run<T>(
        self,
        registration: Option<Registration>,
        mut server: JoinHandle<T>,
    ) -> DrainReport {
        let started = tokio::time::Instant::now();
        // For the log lines: the registered service, if any.
        let service = registration
            .as_ref()
            .map_or_else(String::new, |r| r.service().to_string());
        if let Some((reporter, services)) = &self.health {
            for name in std::iter::once("").chain(services.iter().map(String::as_str)) {
                reporter
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        }
        let mut deregister_error = None;
        if let Some(registration) = registration {
            let key = registration.key().to_string();
            if let Err(e) = registration.deregister().await {
                tracing::warn!(service, key, error = %e, "drain: deregistration failed; draining anyway");
                deregister_error = Some(e);
            }
        }
        tokio::time::sleep(self.config.propagation).await;
        tracing::info!(service, "drain: closing the listener");
        let _ = self.phase.send(Phase::Closing);
        let finished = match tokio::time::timeout(self.config.deadline, &mut server).await {
            Ok(_) => true,
            Err(_) => {
                tracing::warn!(service, deadline = ?self.config.deadline, "drain: calls still in flight at the deadline; cutting connections");
                let _ = self.phase.send(Phase::Cut);
                // Cut connections end at their next poll; the server task
                // then returns. Bounded in case a handler never yields.
                if tokio::time::timeout(Duration::from_secs(1), &mut server)
                    .await
                    .is_err()
                {
                    server.abort();
                }
                false
            }
        };
        let took = started.elapsed();
        tracing::info!(service, ?took, finished, "drain: done");
        DrainReport {
            deregister_error,
            finished,
            took,
        }
    }
}
