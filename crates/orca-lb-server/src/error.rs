//! Errors of the reporting layer.

use std::fmt;
use std::time::Duration;

use orca_lb_core::InvalidReport;

/// A value an application tried to record was refused; nothing was recorded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is out of its field's range (NaN, infinite, negative, or a
    /// utilization above 1).
    Invalid(InvalidReport),
    /// The name is one orca-lb publishes itself (see
    /// [`orca_lb_core::named_metrics`]); set it through its own method.
    ReservedName(String),
    /// The name is longer than
    /// [`ReportingConfig::max_name_len`](crate::ReportingConfig::max_name_len).
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The entry would take the report past
    /// [`ReportingConfig::max_report_bytes`](crate::ReportingConfig::max_report_bytes).
    ReportFull {
        /// The limit.
        max: usize,
    },
    /// The call's report has been sent: a per-call value recorded after the
    /// response's trailers (or by a task the handler left running) has no
    /// report to go in.
    CallEnded,
}

impl RecordError {
    /// A short, fixed description of why the value was refused, without the
    /// metric's name: what logs group refusals by.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Invalid(_) => "value out of range",
            RecordError::ReservedName(_) => "reserved name",
            RecordError::NameTooLong { .. } => "name too long",
            RecordError::ReportFull { .. } => "report full",
            RecordError::CallEnded => "call ended",
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Invalid(e) => write!(f, "metric not recorded: {e}"),
            RecordError::ReservedName(name) => write!(
                f,
                "metric not recorded: named metric {name:?} is published by orca-lb itself"
            ),
            RecordError::NameTooLong { len, max } => write!(
                f,
                "metric not recorded: its name has {len} bytes, more than the {max} allowed"
            ),
            RecordError::ReportFull { max } => write!(
                f,
                "metric not recorded: the report would pass its limit of {max} bytes"
            ),
            RecordError::CallEnded => write!(
                f,
                "metric not recorded: the call has ended and its report was sent"
            ),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Invalid(e) => Some(e),
            RecordError::ReservedName(_)
            | RecordError::NameTooLong { .. }
            | RecordError::ReportFull { .. }
            | RecordError::CallEnded => None,
        }
    }
}

impl From<InvalidReport> for RecordError {
    fn from(e: InvalidReport) -> Self {
        RecordError::Invalid(e)
    }
}

/// The reporting layer's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `capacity` is zero: a server with no worker slots can serve nothing.
    ZeroCapacity,
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// The configuration field.
        field: &'static str,
    },
    /// `window` must span at least two sample intervals to hold a rate.
    WindowTooShort {
        /// The configured window.
        window: Duration,
        /// The configured sample interval.
        sample_interval: Duration,
    },
    /// `max_report_bytes` leaves no room for the standard fields.
    ReportTooSmall {
        /// The configured limit.
        max_report_bytes: usize,
    },
    /// A count limit is zero.
    ZeroLimit {
        /// The configuration field.
        field: &'static str,
    },
    /// The layer was built outside a tokio runtime, so its sampler cannot run.
    NoRuntime,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCapacity => {
                f.write_str("invalid reporting config: capacity must be at least 1")
            }
            ConfigError::ZeroDuration { field } => {
                write!(
                    f,
                    "invalid reporting config: {field} must be greater than zero"
                )
            }
            ConfigError::WindowTooShort {
                window,
                sample_interval,
            } => write!(
                f,
                "invalid reporting config: window ({window:?}) must be at least twice sample_interval ({sample_interval:?})"
            ),
            ConfigError::ReportTooSmall { max_report_bytes } => write!(
                f,
                "invalid reporting config: max_report_bytes ({max_report_bytes}) must be at least {}",
                crate::config::MIN_REPORT_BYTES
            ),
            ConfigError::ZeroLimit { field } => {
                write!(f, "invalid reporting config: {field} must be at least 1")
            }
            ConfigError::NoRuntime => f.write_str(
                "reporting layer built outside a tokio runtime: its system sampler needs one",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
