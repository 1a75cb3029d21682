//! Bounding every call: a target that accepts connections and never answers
//! must not hang the command.

use std::future::Future;
use std::time::Duration;

use crate::error::CliError;

/// How long the server may take past the requested interval before a
/// streamed message counts as late: servers clamp the interval up to their
/// own minimum (gRPC's servers use 30 s for out-of-band reports).
pub(crate) const STREAM_SLACK: Duration = Duration::from_secs(30);

/// Awaits `call`, failing as unreachable (exit code 2) when no answer comes
/// within `timeout`. The call is dropped then, which resets its HTTP/2
/// stream, so the server stops working on it too.
pub(crate) async fn within<T>(
    target: &str,
    what: &str,
    timeout: Duration,
    call: impl Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(CliError::Unreachable {
            target: target.to_string(),
            cause: format!("no answer to {what} within {timeout:?} (--timeout)"),
        }),
    }
}
