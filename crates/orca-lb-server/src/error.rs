//! Errors of the reporting layer.

use std::fmt;
use std::time::Duration;

use orca_lb_core::InvalidReport;

/// A value an application tried to record was refused; nothing was recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordError {
    /// The value is out of its field's range (NaN, infinite, negative, or a
    /// utilization above 1).
    Invalid(InvalidReport),
    /// The name is one orca-lb publishes itself (see
    /// [`orca_lb_core::named_metrics`]); set it through its own method.
    ReservedName(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Invalid(e) => write!(f, "metric not recorded: {e}"),
            RecordError::ReservedName(name) => write!(
                f,
                "metric not recorded: named metric {name:?} is published by orca-lb itself"
            ),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Invalid(e) => Some(e),
            RecordError::ReservedName(_) => None,
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
            ConfigError::NoRuntime => f.write_str(
                "reporting layer built outside a tokio runtime: its system sampler needs one",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
