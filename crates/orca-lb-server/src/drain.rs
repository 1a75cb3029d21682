//! Graceful shutdown of a tonic server, in an order that fails no call,
//! whatever discovery the clients use.

mod ending;
mod incoming;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use ending::{DrainBody, DrainFuture, DrainLayer, DrainService};
pub use incoming::{DrainIncoming, DrainIo};

/// How long each step of a [`Drain`] may take.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainConfig {
    /// After health turns `NOT_SERVING` (and any step the caller adds, such
    /// as deregistration), how long the server keeps accepting calls: the
    /// time clients need to notice and stop picking it. Calls that were
    /// already on their way are served. Default 1 s (a health-checking
    /// client hears it within a round trip; a registry's watch takes
    /// milliseconds).
    pub grace: Duration,
    /// After the listener closes (HTTP/2 GOAWAY), how long calls and streams
    /// in flight may take to finish; connections still open then are cut.
    /// Default 10 s.
    pub deadline: Duration,
}

// === setters of DrainConfig ===

impl DrainConfig {
    /// Sets [`grace`](Self::grace).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
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
        Self {
            grace: Duration::from_secs(1),
            deadline: Duration::from_secs(10),
        }
    }
}

/// A [`DrainConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainConfigError {
    field: &'static str,
    why: &'static str,
}

impl DrainConfigError {
    /// The offending field, as `deadline`.
    pub fn field(&self) -> &str {
        self.field
    }

    /// Why it was refused.
    pub fn why(&self) -> &str {
        self.why
    }
}

impl fmt::Display for DrainConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid drain config: {}: {}", self.field, self.why)
    }
}

impl std::error::Error for DrainConfigError {}

impl DrainConfig {
    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), DrainConfigError> {
        if self.deadline.is_zero() {
            return Err(DrainConfigError {
                field: "deadline",
                why: "must be greater than zero",
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
    /// The deadline passed: calls and streams through a [`DrainLayer`] end
    /// with UNAVAILABLE.
    Ending,
    /// The deadline passed: every connection is cut.
    Cut,
}

/// Takes a tonic server out of service without failing calls, for clients
/// of any discovery (a static list, DNS, a registry):
///
/// 1. health turns `NOT_SERVING` (the whole server and the named services):
///    health-checking clients (`orca_lb_client::HealthCheck`, gRPC's
///    `healthCheckConfig`) and proxies stop sending new calls;
/// 2. the caller's own step, if any ([`run_after`](Self::run_after):
///    deregistration from a registry);
/// 3. after [`grace`](DrainConfig::grace), the listener closes (tonic's
///    graceful shutdown: HTTP/2 GOAWAY on every connection, no new calls)
///    and the health watch streams end, so that they do not hold the
///    shutdown;
/// 4. calls and streams in flight finish, within
///    [`deadline`](DrainConfig::deadline);
/// 5. what is still open then is ended with `UNAVAILABLE` if the server was
///    built with [`layer`](Self::layer) (within [`END_GRACE`]), and any
///    connection still open after that is cut: a call or stream cut there
///    ends at its client with the status its transport gives a connection
///    lost mid-call (tonic: `UNKNOWN`), never `OK`. Either way a client
///    that must resume re-opens it, and the balancer sends it elsewhere
///    (see `docs/streams.md`).
///
/// A client that has not noticed yet when the listener closes sees GOAWAY
/// on its connection and a refused connection after it: the calls it sends
/// then never reached the server, and `orca-lb-client` re-picks them on
/// another endpoint.
///
/// ```no_run
/// # async fn run(shutdown: tokio::sync::oneshot::Receiver<()>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use orca_lb_server::{Drain, DrainConfig};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// let (health, health_service) = tonic_health::server::health_reporter();
/// let drain = Drain::new(DrainConfig::default()).health(health, ["helloworld.Greeter"]);
/// let server = tokio::spawn(
///     tonic::transport::Server::builder()
///         .layer(drain.layer()) // streams open at the deadline end UNAVAILABLE
///         .add_service(health_service) // and the application's services
///         .serve_with_incoming_shutdown(drain.incoming(listener), drain.signal()),
/// );
///
/// shutdown.await?; // SIGTERM, Ctrl-C, ...
/// let report = drain.run(server).await;
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
    /// Whether [`layer`](Drain::layer) was taken: the deadline then first
    /// ends what is open through it.
    layered: AtomicBool,
}

/// How long calls and streams ended at the deadline through a
/// [`DrainLayer`] have to send their status before connections are cut.
pub const END_GRACE: Duration = Duration::from_secs(1);

/// What a [`Drain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Whether every call and stream in flight finished before the deadline
    /// (`false`: some connections were cut).
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
            layered: AtomicBool::new(false),
        }
    }

    /// Its step durations.
    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// Sets the whole server (`""`) and these services `NOT_SERVING` first,
    /// and ends their watch streams when the listener closes.
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

    /// A tower layer for the server (`Server::builder().layer(...)`) that
    /// ends the calls and streams still open at the deadline with
    /// `UNAVAILABLE` (`server draining: deadline passed`): a trailers-only
    /// response for a call still in its handler, trailers for a response
    /// under way. Their connections are then closed gracefully; what is
    /// still open [`END_GRACE`] later is cut. Without it, calls and streams
    /// open at the deadline are cut with their connection.
    pub fn layer(&self) -> DrainLayer {
        // Relaxed: read by `run`, which takes `self` by value after this.
        self.layered.store(true, Ordering::Relaxed);
        DrainLayer::new(self.phase.subscribe())
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
    pub async fn run<T>(self, server: JoinHandle<T>) -> DrainReport {
        self.run_after(async {}, server).await.1
    }

    /// Like [`run`](Self::run), with `step` run once health is
    /// `NOT_SERVING` and before the grace period starts (deregistration from
    /// a registry); returns its output with the report.
    pub async fn run_after<T, F>(
        self,
        step: F,
        mut server: JoinHandle<T>,
    ) -> (F::Output, DrainReport)
    where
        F: Future,
    {
        let started = tokio::time::Instant::now();
        let names: Vec<String> = match &self.health {
            Some((_, services)) => std::iter::once(String::new())
                .chain(services.iter().cloned())
                .collect(),
            None => Vec::new(),
        };
        if let Some((reporter, _)) = &self.health {
            for name in &names {
                reporter
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        }
        let output = step.await;
        tokio::time::sleep(self.config.grace).await;
        tracing::info!("drain: closing the listener");
        let _ = self.phase.send(Phase::Closing);
        // Watch streams never end on their own: clearing the statuses ends
        // them (with OK), so that the graceful shutdown does not wait for
        // them until the deadline.
        if let Some((mut reporter, _)) = self.health.clone() {
            for name in &names {
                reporter.clear_service_status(name).await;
            }
        }
        let finished = tokio::time::timeout(self.config.deadline, &mut server)
            .await
            .is_ok();
        if !finished {
            // Relaxed: stored by `layer`, before this drain was moved here.
            let mut ended = false;
            if self.layered.load(Ordering::Relaxed) {
                tracing::warn!(deadline = ?self.config.deadline, "drain: calls still in flight at the deadline; ending them with UNAVAILABLE");
                let _ = self.phase.send(Phase::Ending);
                ended = tokio::time::timeout(END_GRACE, &mut server).await.is_ok();
            }
            if !ended {
                tracing::warn!(deadline = ?self.config.deadline, "drain: calls still in flight; cutting connections");
                let _ = self.phase.send(Phase::Cut);
                // Cut connections end at their next poll; the server task
                // then returns. Bounded in case a handler never yields.
                if tokio::time::timeout(Duration::from_secs(1), &mut server)
                    .await
                    .is_err()
                {
                    server.abort();
                }
            }
        }
        let took = started.elapsed();
        tracing::info!(?took, finished, "drain: done");
        (output, DrainReport { finished, took })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_deadline_is_refused_naming_it() {
        assert!(DrainConfig::default().validate().is_ok());
        let no_grace = DrainConfig {
            grace: Duration::ZERO,
            ..Default::default()
        };
        assert!(no_grace.validate().is_ok(), "no grace is allowed");
        let c = DrainConfig {
            deadline: Duration::ZERO,
            ..no_grace
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.field(), "deadline");
        assert_eq!(
            e.to_string(),
            "invalid drain config: deadline: must be greater than zero"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn health_turns_not_serving_before_the_listener_closes() {
        let (health, _) = tonic_health::server::health_reporter();
        let service = tonic_health::server::HealthService::from_health_reporter(health.clone());
        let c = DrainConfig {
            grace: Duration::from_secs(1),
            ..Default::default()
        };
        let drain = Drain::new(c).health(health, ["greeter"]);
        let mut signal = Box::pin(drain.signal());
        let server = tokio::spawn(std::future::pending::<()>());
        let checked = tokio::spawn(async move {
            use tonic_health::pb::health_server::Health;
            let request = || {
                tonic::Request::new(tonic_health::pb::HealthCheckRequest {
                    service: "greeter".into(),
                })
            };
            // The step between NOT_SERVING and the grace period sees it.
            let (status, report) = drain
                .run_after(
                    async {
                        let reply = service.check(request()).await.unwrap().into_inner();
                        reply.status()
                    },
                    server,
                )
                .await;
            // After the close, the statuses are cleared.
            let after = service
                .check(request())
                .await
                .map(|r| r.into_inner().status());
            (status, report, after.map_err(|s| s.code()))
        });
        // The listener closes only once the grace period is over.
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert!(futures_poll_once(&mut signal).await.is_none());
        signal.await;
        let (status, report, after) = checked.await.unwrap();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::NotServing
        );
        assert_eq!(after, Err(tonic::Code::NotFound));
        // The server never ended: cut at the deadline.
        assert!(!report.finished);
    }

    /// Polls `f` once: `Some` if it was ready.
    async fn futures_poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
