//! Errors of the etcd client, registration and value decoding.

use std::fmt;
use std::time::Duration;

/// An etcd request failed.
#[derive(Debug)]
pub enum EtcdError {
    /// An etcd endpoint URL could not be used.
    InvalidEndpoint {
        /// The URL as given.
        endpoint: String,
        /// Why it was refused.
        why: String,
    },
    /// etcd answered with an error, or could not be reached.
    Status {
        /// The request, e.g. `"range"`.
        op: &'static str,
        /// What tonic reported.
        status: tonic::Status,
    },
    /// etcd did not answer in time.
    Timeout {
        /// The request.
        op: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// A stream (watch, keep-alive) ended without an error from etcd.
    StreamEnded {
        /// The stream.
        op: &'static str,
    },
    /// The lease no longer exists: it expired or was revoked.
    LeaseNotFound {
        /// The lease's ID.
        id: i64,
    },
    /// The client's options were refused.
    Config(ConfigError),
    /// No TLS session with etcd: its certificate failed verification
    /// (unknown CA, wrong name, expired), it refused this client's
    /// certificate, or one side does not speak TLS.
    Tls {
        /// The request.
        op: &'static str,
        /// What failed, as the TLS library reports it, with a hint.
        why: String,
    },
    /// etcd refused the user and password (or has authentication disabled).
    AuthFailed {
        /// The user.
        user: String,
        /// What etcd said.
        why: String,
    },
}

impl EtcdError {
    /// Whether etcd could not be reached or did not answer in time, as
    /// opposed to refusing the request: worth retrying.
    pub fn is_unavailable(&self) -> bool {
        match self {
            EtcdError::Timeout { .. } | EtcdError::StreamEnded { .. } => true,
            EtcdError::Status { status, .. } => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            ),
            _ => false,
        }
    }

    /// Whether the lease was gone.
    pub fn is_lease_not_found(&self) -> bool {
        matches!(self, EtcdError::LeaseNotFound { .. })
    }

    /// Whether etcd refused the credentials, or TLS failed: a problem of
    /// configuration that retrying does not fix by itself.
    pub fn is_security(&self) -> bool {
        matches!(self, EtcdError::Tls { .. } | EtcdError::AuthFailed { .. })
    }

    /// A failed call: a TLS failure if the transport error says so, else
    /// the status as it is.
    pub(crate) fn status(op: &'static str) -> impl FnOnce(tonic::Status) -> EtcdError {
        Self::status_via(op, None)
    }

    /// As [`status`](Self::status), with hints for how the client connects.
    pub(crate) fn status_via(
        op: &'static str,
        transport: Option<crate::tls_failure::Transport>,
    ) -> impl FnOnce(tonic::Status) -> EtcdError {
        move |status| match crate::tls_failure::classify(&status, transport) {
            Some(why) => EtcdError::Tls { op, why },
            None => EtcdError::Status { op, status },
        }
    }
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::InvalidEndpoint { endpoint, why } => {
                write!(f, "invalid etcd endpoint {endpoint:?}: {why}")
            }
            EtcdError::Status { op, status } => write!(
                f,
                "etcd {op} failed: {:?}: {}",
                status.code(),
                status.message()
            ),
            EtcdError::Timeout { op, after } => write!(f, "etcd {op} timed out after {after:?}"),
            EtcdError::StreamEnded { op } => write!(f, "etcd {op} stream ended"),
            EtcdError::LeaseNotFound { id } => write!(f, "etcd lease {id:x} not found"),
            EtcdError::Config(e) => e.fmt(f),
            EtcdError::Tls { op, why } => write!(f, "etcd {op} failed: TLS: {why}"),
            EtcdError::AuthFailed { user, why } => {
                write!(f, "etcd authentication failed for user {user:?}: {why}")
            }
        }
    }
}

impl std::error::Error for EtcdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EtcdError::Status { status, .. } => Some(status),
            EtcdError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for EtcdError {
    fn from(e: ConfigError) -> Self {
        EtcdError::Config(e)
    }
}

pub(crate) use orca_lb_core::error_chain;

/// An etcd value under the discovery prefix does not describe an endpoint in
/// the format it was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// Not a JSON object.
    NotJson(String),
    /// No `v` field.
    MissingVersion,
    /// A `v` this version of orca-lb does not read.
    UnsupportedVersion(u64),
    /// The address is not `scheme://host:port` (orca-lb's record), or not
    /// `host:port` / `http(s)://host:port` (a bare address, Go's `Addr`).
    InvalidAddr {
        /// The address as found.
        addr: String,
        /// Why it was refused.
        why: String,
    },
    /// A required field is missing (Go's naming form without `Addr`).
    MissingField(&'static str),
    /// A Go naming value whose `Op` is not 0 (`Add`): it registers nothing.
    /// Holds the `Op` as found, in JSON.
    UnsupportedOp(String),
    /// In [`ValueFormat::Auto`](crate::ValueFormat::Auto), a JSON object
    /// that shows no one format: which fields it has or lacks.
    UnknownFormat(String),
    /// The zone (orca-lb's `zone`, or the zone key of Go's `Metadata`) is
    /// not a valid zone name, or not a string.
    InvalidZone {
        /// The zone as found.
        zone: String,
        /// Why it was refused.
        why: String,
    },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::NotJson(why) => write!(f, "not a JSON endpoint record: {why}"),
            ValueError::MissingVersion => f.write_str("no version field \"v\""),
            ValueError::UnsupportedVersion(v) => {
                write!(f, "unsupported record version {v} (this reader knows 1)")
            }
            ValueError::InvalidAddr { addr, why } => write!(f, "invalid addr {addr:?}: {why}"),
            ValueError::MissingField(field) => write!(f, "no {field:?} field"),
            ValueError::UnsupportedOp(op) => write!(
                f,
                "Go naming value with \"Op\" {op} (only 0, Add, registers an endpoint)"
            ),
            ValueError::UnknownFormat(why) => write!(f, "no known value format: {why}"),
            ValueError::InvalidZone { zone, why } => write!(f, "invalid zone {zone:?}: {why}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// A configuration was refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The field, e.g. `"ttl"`.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid etcd config: {}: {}", self.field, self.why)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// `field` is wrong because `why`.
    pub fn new(field: &'static str, why: impl Into<String>) -> Self {
        Self {
            field,
            why: why.into(),
        }
    }
}

/// A registration could not start.
#[derive(Debug)]
pub enum RegisterError {
    /// The configuration was refused.
    Config(ConfigError),
    /// etcd refused or did not answer the first registration.
    Etcd(EtcdError),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Config(e) => e.fmt(f),
            RegisterError::Etcd(e) => write!(f, "registration failed: {e}"),
        }
    }
}

impl std::error::Error for RegisterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegisterError::Config(e) => Some(e),
            RegisterError::Etcd(e) => Some(e),
        }
    }
}

impl From<ConfigError> for RegisterError {
    fn from(e: ConfigError) -> Self {
        RegisterError::Config(e)
    }
}

impl From<EtcdError> for RegisterError {
    fn from(e: EtcdError) -> Self {
        RegisterError::Etcd(e)
    }
}
