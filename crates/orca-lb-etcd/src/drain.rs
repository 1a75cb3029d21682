//! Graceful shutdown of a registered server: `orca_lb_server::Drain` with
//! deregistration before the grace period.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;
use tracing::Instrument;

use crate::error::{ConfigError, EtcdError};
use crate::registration::Registration;

pub use orca_lb_server::{DrainIncoming, DrainIo};

/// How long each step of a [`Drain`] may take.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainConfig {
    /// After the key is deleted, how long the server keeps accepting calls:
    /// the time clients need to see the deletion and stop picking it. Calls
    /// that were already on their way are served. Default 1 s (an etcd
    /// watch on a healthy cluster takes milliseconds). The
    /// [`grace`](orca_lb_server::DrainConfig::grace) of the server's drain.
    pub propagation: Duration,
    /// After the listener closes, how long calls in flight may take to
    /// finish; connections still open then are cut. Default 10 s.
    pub deadline: Duration,
}

// === setters of DrainConfig ===

impl DrainConfig {
    /// Sets [`propagation`](Self::propagation).
    #[must_use]
    pub fn with_propagation(mut self, propagation: Duration) -> Self {
        self.propagation = propagation;
        self
    }

    /// Sets [`deadline`](Self::deadline).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

impl Default for DrainConfig {
    fn default() -> Self {
        let server = orca_lb_server::DrainConfig::default();
        Self {
            propagation: server.grace,
            deadline: server.deadline,
        }
    }
}

impl DrainConfig {
    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server().validate().map_err(|e| ConfigError {
            field: if e.field() == "grace" {
                "propagation"
            } else {
                "deadline"
            },
            why: e.why().to_string(),
        })
    }

    fn server(&self) -> orca_lb_server::DrainConfig {
        let mut c = orca_lb_server::DrainConfig::default();
        c.grace = self.propagation;
        c.deadline = self.deadline;
        c
    }
}

/// Takes a registered tonic server out of service without failing calls:
/// [`orca_lb_server::Drain`], whose steps it follows, with the registration
/// revoked once health is `NOT_SERVING`:
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
    inner: orca_lb_server::Drain,
}

/// What a [`Drain`] did.
#[derive(Debug)]
#[non_exhaustive]
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
            inner: orca_lb_server::Drain::new(config.server()),
        }
    }

    /// Sets the whole server (`""`) and these services `NOT_SERVING` first.
    pub fn health<I, S>(self, reporter: HealthReporter, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            inner: self.inner.health(reporter, services),
        }
    }

    /// The listener's connections, to serve with
    /// `serve_with_incoming_shutdown`, so that the drain can cut them.
    pub fn incoming(&self, listener: TcpListener) -> DrainIncoming {
        self.inner.incoming(listener)
    }

    /// A tower layer that ends the calls and streams still open at the
    /// deadline with `UNAVAILABLE` rather than cutting them with their
    /// connection (see [`orca_lb_server::Drain::layer`]).
    pub fn layer(&self) -> orca_lb_server::DrainLayer {
        self.inner.layer()
    }

    /// Resolves when the listener must close: the shutdown signal for
    /// `serve_with_incoming_shutdown`.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.signal()
    }

    /// Runs the drain to its end: `server` is the task serving with
    /// [`incoming`](Self::incoming) and [`signal`](Self::signal).
    pub async fn run<T>(
        self,
        registration: Option<Registration>,
        server: JoinHandle<T>,
    ) -> DrainReport {
        // The log lines of every step name the registered service.
        let service = registration
            .as_ref()
            .map_or_else(String::new, |r| r.service().to_string());
        let span = tracing::info_span!("drain", service);
        let deregister = async move {
            let registration = registration?;
            let key = registration.key().to_string();
            match registration.deregister().await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(key, error = %e, "drain: deregistration failed; draining anyway");
                    Some(e)
                }
            }
        };
        let (deregister_error, report) = self
            .inner
            .run_after(deregister, server)
            .instrument(span)
            .await;
        DrainReport {
            deregister_error,
            finished: report.finished,
            took: report.took,
        }
    }
}
