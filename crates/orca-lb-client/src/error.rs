//! Errors of the balancer.

use std::fmt;
use std::time::Duration;

use tonic::{Code, Status};

/// Why a call could not be sent.
///
/// The balancer's `Service::Error` is a boxed [`tonic::Status`] whose
/// `source()` is one of these, so a generated tonic client sees a clear status
/// and code, and code that needs the detail can downcast. Later versions
/// may add reasons, so a `match` on it needs a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum BalanceError {
    /// Discovery has not produced any endpoint (yet), or all were removed.
    NoEndpoints {
        /// The balancer's target.
        target: String,
    },
    /// Every endpoint is ejected or draining, and panic mode did not apply.
    NoneAvailable {
        /// The balancer's target.
        target: String,
        /// How many endpoints there are.
        endpoints: usize,
    },
    /// Health checking is on and no endpoint that is not ejected or
    /// draining answers `SERVING` (see
    /// [`HealthCheck`](crate::HealthCheck)).
    Unhealthy {
        /// The balancer's target.
        target: String,
        /// How many endpoints there are.
        endpoints: usize,
        /// The health service name asked for.
        service: String,
    },
    /// The call had to be sent again (its server handed it back, or its
    /// attempt never reached a server) after its `grpc-timeout` had run
    /// out: it fails with DEADLINE_EXCEEDED instead.
    DeadlineExceeded {
        /// The balancer's target.
        target: String,
        /// The call's `grpc-timeout`.
        timeout: Duration,
        /// How long ago the call's first attempt was picked.
        elapsed: Duration,
    },
    /// The call failed on the endpoint's connection: before any response,
    /// the connection was refused or failed its TLS handshake (UNAVAILABLE),
    /// or the call was reset, cut off or timed out after it was sent; or,
    /// after the response headers, the connection failed while the rest of
    /// the response was read. Such a status has the code tonic's `Channel`
    /// gives the same failure (CANCELLED, INTERNAL, UNKNOWN,
    /// RESOURCE_EXHAUSTED, ...).
    Transport {
        /// The endpoint's address.
        endpoint: String,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BalanceError {
    /// Whether discovery had no endpoint at all.
    pub fn is_no_endpoints(&self) -> bool {
        matches!(self, BalanceError::NoEndpoints { .. })
    }

    /// Whether every endpoint was ejected or draining.
    pub fn is_none_available(&self) -> bool {
        matches!(self, BalanceError::NoneAvailable { .. })
    }

    /// Whether no endpoint answered `SERVING` to health checking.
    pub fn is_unhealthy(&self) -> bool {
        matches!(self, BalanceError::Unhealthy { .. })
    }

    /// Whether the call's deadline passed before it could be sent again.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, BalanceError::DeadlineExceeded { .. })
    }

    /// Whether the chosen endpoint could not be reached.
    pub fn is_transport(&self) -> bool {
        matches!(self, BalanceError::Transport { .. })
    }
}

impl fmt::Display for BalanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalanceError::NoEndpoints { target } => {
                write!(f, "no endpoints for {target}: discovery has found none")
            }
            BalanceError::NoneAvailable { target, endpoints } => write!(
                f,
                "no available endpoint for {target}: all {endpoints} are ejected or draining"
            ),
            BalanceError::Unhealthy {
                target,
                endpoints,
                service,
            } => write!(
                f,
                "no healthy endpoint for {target}: none of {endpoints} answers SERVING for health service {service:?}"
            ),
            BalanceError::DeadlineExceeded {
                target,
                timeout,
                elapsed,
            } => write!(
                f,
                "deadline exceeded for {target}: the call's grpc-timeout of {timeout:?} had run out \
                 {elapsed:?} after it started, when it was to be sent again"
            ),
            BalanceError::Transport { endpoint, source } => {
                write!(f, "endpoint {endpoint}: {source}")
            }
        }
    }
}

impl std::error::Error for BalanceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BalanceError::Transport { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl From<BalanceError> for Status {
    fn from(e: BalanceError) -> Status {
        // No endpoint to send to is retriable elsewhere or later:
        // UNAVAILABLE, as gRPC uses for "no ready subchannel". Transport
        // failures carry the code tonic gives them (see `status.rs`).
        let code = match e {
            BalanceError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            _ => Code::Unavailable,
        };
        let mut status = Status::new(code, e.to_string());
        status.set_source(std::sync::Arc::new(e));
        status
    }
}

/// The boxed error the balancer's service returns: a `tonic::Status`.
pub(crate) fn boxed(e: BalanceError) -> crate::BoxError {
    Box::new(Status::from(e))
}
