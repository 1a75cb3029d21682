//! A load-aware balancer for tonic clients.
//!
//! # Where it fits
//!
//! gRPC multiplexes every call over one HTTP/2 connection, so a
//! connection-level balancer pins a client to one backend. [`Balancer`] is a
//! tower `Service` that a generated tonic client takes in place of a
//! `Channel`: it holds a connection per endpoint and picks an endpoint per
//! call (and per stream, when it opens). It reads the ORCA reports that
//! `orca-lb-server` (or grpc-go, grpc-java, C-core) attaches to responses,
//! and decides with the pure policy in `orca-lb-core`.
//!
//! # Concepts
//!
//! - **Discovery** is a stream of [`Change`]s: [`static_list`] and
//!   [`Balancer::from_uris`], [`DnsDiscovery`], or etcd (`orca-lb-etcd`).
//!   An endpoint may come with a [`Zone`] ([`static_zoned_list`],
//!   [`DnsDiscovery::zone`], etcd's `zone_key`).
//! - **Locality** (optional, [`LocalityConfig`]): calls stay in the
//!   client's zone while its load is under a threshold, and spill over to
//!   other zones beyond it.
//! - **The pick**: the cheapest of 8 endpoints drawn at random
//!   (`ScoreConfig::choices`), by expected completion time (service time scaled by the calls ahead, plus a failure
//!   penalty); see `docs/balancing.md`. A pick takes no global lock and
//!   allocates nothing.
//! - **Feedback**: the response body reads the trailer (or the trailers-only
//!   headers) and feeds the report, the latency and the outcome back.
//!   Optionally, each endpoint's out-of-band stream is subscribed too.
//! - **Circuit breaking**: consecutive failures, refused connections and
//!   sustained overload eject an endpoint, within an ejection budget, and
//!   probes bring it back. With too few endpoints left, panic mode ignores
//!   ejections.
//! - **Health checking** (optional, [`HealthCheck`]): each endpoint's
//!   `grpc.health.v1.Health/Watch` stream; an endpoint that does not answer
//!   `SERVING` gets no new calls (see `docs/streams.md`).
//! - **Connections**: [`EndpointTemplate`] applies a tonic `Endpoint`'s
//!   settings (TLS, mTLS, keepalive, ...) to every discovered address;
//!   [`TlsFiles`] reads TLS settings from PEM files.
//! - **Visibility**: [`Balancer::snapshot`] shows every endpoint's score,
//!   signals and breaker; metrics and tracing events are listed in
//!   `docs/observability.md`.
//!
//! # Examples
//!
//! ```no_run
//! use orca_lb_client::{Balancer, BalancerConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let balancer = Balancer::from_uris(
//!         BalancerConfig::default().with_target("greeter"),
//!         ["http://127.0.0.1:50051", "http://127.0.0.1:50052"],
//!     )?;
//!     // let mut client = GreeterClient::new(balancer.clone());
//!     // client.say_hello(request).await?;
//!     for endpoint in balancer.snapshot().endpoints {
//!         println!("{} {} {:?}", endpoint.key, endpoint.breaker, endpoint.cost.total());
//!     }
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod balancer;
mod body;
mod call;
mod call_key;
mod change_batch;
mod config;
mod discovery;
mod dns;
mod endpoint;
mod endpoint_set;
mod endpoint_template;
mod error;
mod future;
mod grpc_timeout;
mod health_check;
mod health_state;
mod health_watch;
mod invalid_report_log;
mod local_calls;
mod maintenance;
mod metrics;
mod offered_call;
mod oob;
mod readiness;
mod repick_budget;
mod report;
mod seq_view;
mod shared;
mod snapshot;
mod standing_slot;
mod status;
#[cfg(any(feature = "tls-ring", feature = "tls-aws-lc"))]
mod tls_files;
mod unsent_body;

pub use balancer::{Balancer, WeakBalancer};
pub use body::ResponseBody;
pub use call_key::CallKey;
pub use config::{BalancerConfig, ConfigError};
pub use discovery::{Change, static_list, static_zoned_list};
pub use dns::{DnsDiscovery, Resolve, SystemResolver};
pub use endpoint_template::EndpointTemplate;
pub use error::BalanceError;
pub use future::ResponseFuture;
pub use health_check::{HealthCheck, HealthCheckError};
pub use health_state::HealthState;
pub use orca_lb_core::{AffinityConfig, AffinityKey, InvalidZone, LocalityConfig, Zone};
pub use report::{ReportError, decode_report};
pub use snapshot::{BalancerSnapshot, EndpointSnapshot};
#[cfg(any(feature = "tls-ring", feature = "tls-aws-lc"))]
pub use tls_files::TlsFiles;

/// A type-erased error, as tower and tonic use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A balancer could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The configuration was refused.
    Config(ConfigError),
    /// An endpoint URI could not be parsed.
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// Why it was refused.
        why: String,
    },
    /// An endpoint's zone name was refused.
    InvalidZone {
        /// The endpoint URI it was given with.
        uri: String,
        /// Why it was refused.
        why: InvalidZone,
    },
    /// The balancer was built outside a tokio runtime; its tasks need one.
    NoRuntime,
    /// The [`EndpointTemplate`] could not make a connection for an address.
    Endpoint {
        /// The address.
        uri: String,
        /// Why.
        why: String,
    },
    /// A TLS setting or file was refused.
    Tls {
        /// The setting, with the file it names.
        setting: String,
        /// Why it was refused.
        why: String,
    },
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::InvalidUri { uri, why } => write!(f, "invalid endpoint uri {uri:?}: {why}"),
            BuildError::InvalidZone { uri, why } => {
                write!(f, "invalid zone for endpoint {uri:?}: {why}")
            }
            BuildError::NoRuntime => f.write_str("balancer built outside a tokio runtime"),
            BuildError::Endpoint { uri, why } => {
                write!(f, "cannot make a connection to endpoint {uri}: {why}")
            }
            BuildError::Tls { setting, why } => write!(f, "invalid TLS {setting}: {why}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
