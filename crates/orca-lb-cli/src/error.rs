//! Why a command failed, and the exit code that says so.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | usage error (unknown flag, bad value, bad `--target`) |
//! | 2 | the target cannot be reached (nothing listening, refused, timed out, connection lost, no answer within `--timeout`) |
//! | 3 | the target does not serve what the command needs (UNIMPLEMENTED) |
//! | 4 | any other error |

use std::fmt;
use std::io;

use orca_lb_core::escaped::escape;
use tonic::{Code, Status};

/// A failed command.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The command line is wrong.
    Usage(String),
    /// Nothing answers at the target, or the connection broke.
    Unreachable { target: String, cause: String },
    /// The target answers gRPC but not with the service the command needs.
    NotServed {
        target: String,
        service: &'static str,
    },
    /// Writing to standard output failed.
    Output(io::Error),
    /// Anything else.
    Other(String),
}

// === impl CliError ===

impl CliError {
    /// Exit code 1.
    pub(crate) const USAGE: u8 = 1;
    /// Exit code 2.
    pub(crate) const UNREACHABLE: u8 = 2;
    /// Exit code 3.
    pub(crate) const NOT_SERVED: u8 = 3;
    /// Exit code 4.
    pub(crate) const OTHER: u8 = 4;

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => Self::USAGE,
            CliError::Unreachable { .. } => Self::UNREACHABLE,
            CliError::NotServed { .. } => Self::NOT_SERVED,
            CliError::Output(_) | CliError::Other(_) => Self::OTHER,
        }
    }

    /// Whether the reader of standard output went away (`orca-lb ... | head`),
    /// which ends the command normally.
    pub(crate) fn is_closed_output(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The error for a failed call to `service` on `target`.
    pub(crate) fn from_status(target: &str, service: &'static str, status: &Status) -> Self {
        match status.code() {
            Code::Unimplemented => CliError::NotServed {
                target: target.to_string(),
                service,
            },
            // tonic reports connection failures (refused, reset, lost) as
            // UNAVAILABLE, with the transport error as the message.
            Code::Unavailable => CliError::Unreachable {
                target: target.to_string(),
                cause: status.message().to_string(),
            },
            code => CliError::Other(format!(
                "{target}: {service} failed: {code:?}: {}",
                status.message()
            )),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Messages can carry what the server sent: escaped.
            CliError::Usage(msg) | CliError::Other(msg) => f.write_str(&escape(msg)),
            CliError::Unreachable { target, cause } => {
                write!(f, "cannot connect to {target}: {}", escape(cause))
            }
            CliError::NotServed { target, service } => {
                write!(f, "{target} does not serve {service}")
            }
            CliError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Output(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        let t = "127.0.0.1:1";
        let s = "orca_lb.debug.v1.BalancerDebug";
        let not_served = CliError::from_status(t, s, &Status::unimplemented(""));
        assert_eq!(not_served.exit_code(), 3);
        assert_eq!(
            not_served.to_string(),
            "127.0.0.1:1 does not serve orca_lb.debug.v1.BalancerDebug"
        );
        let gone = CliError::from_status(t, s, &Status::unavailable("connection reset"));
        assert_eq!(gone.exit_code(), 2);
        assert_eq!(
            gone.to_string(),
            "cannot connect to 127.0.0.1:1: connection reset"
        );
        let other = CliError::from_status(t, s, &Status::internal("boom"));
        assert_eq!(other.exit_code(), 4);
        let hostile = CliError::from_status(t, s, &Status::internal("a\x1b[2Jb"));
        assert!(hostile.to_string().ends_with("a\\u{1b}[2Jb"), "{hostile}");
    }
}
