//! Reaching the target.

use std::error::Error as _;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::CliError;

/// Connects to `target` (`HOST:PORT`, or a URI with a scheme), within
/// `timeout`.
pub(crate) async fn connect(target: &str, timeout: Duration) -> Result<Channel, CliError> {
    let endpoint = endpoint(target)?.connect_timeout(timeout).tcp_nodelay(true);
    let unreachable = |cause: String| CliError::Unreachable {
        target: target.to_string(),
        cause,
    };
    match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(unreachable(causes(&e))),
        Err(_) => Err(unreachable(format!("no connection within {timeout:?}"))),
    }
}

/// The endpoint for `target`: `http://` is assumed when no scheme is given.
fn endpoint(target: &str) -> Result<Endpoint, CliError> {
    let uri = if target.contains("://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    Endpoint::from_shared(uri)
        .map_err(|e| CliError::Usage(format!("invalid --target {target:?}: {e} (try HOST:PORT)")))
}

/// An error and its sources, as `a: b: c`. tonic's transport error says only
/// "transport error"; the cause (refused, timed out, DNS) is further down.
fn causes(e: &tonic::transport::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_without_a_scheme_are_http() {
        assert_eq!(
            endpoint("127.0.0.1:50900").unwrap().uri().to_string(),
            "http://127.0.0.1:50900/"
        );
        assert_eq!(
            endpoint("https://example.test:443")
                .unwrap()
                .uri()
                .scheme_str(),
            Some("https")
        );
        let err = endpoint("bad target").unwrap_err();
        assert_eq!(err.exit_code(), CliError::USAGE);
    }
}
