//! A load-aware balancer for tonic clients.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod atomic_f64;
mod balancer;
mod body;
mod call;
mod config;
mod discovery;
mod dns;
mod endpoint;
mod error;
mod future;
mod maintenance;
mod metrics;
mod oob;
mod report;
mod shared;
mod snapshot;

pub use balancer::Balancer;
pub use body::ResponseBody;
pub use config::{BalancerConfig, ConfigError};
pub use discovery::{Change, static_list};
pub use dns::{DnsDiscovery, Resolve, SystemResolver};
pub use error::BalanceError;
pub use future::ResponseFuture;
pub use report::{ReportError, decode_report};
pub use snapshot::{BalancerSnapshot, EndpointSnapshot};

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
    /// The balancer was built outside a tokio runtime; its tasks need one.
    NoRuntime,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::InvalidUri { uri, why } => write!(f, "invalid endpoint uri {uri:?}: {why}"),
            BuildError::NoRuntime => f.write_str("balancer built outside a tokio runtime"),
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
