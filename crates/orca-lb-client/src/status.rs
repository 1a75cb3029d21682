//! The gRPC status of a call that failed on its endpoint's connection: the
//! code tonic's `Channel` gives the same failure, so that only failures
//! before the request was sent are UNAVAILABLE ("safe to retry").

use std::sync::Arc;

use tonic::{Code, Status};

use crate::error::BalanceError;

/// The status a caller sees for `error` on `endpoint`: tonic's code for it
/// (UNAVAILABLE for a refused connection or a failed TLS handshake,
/// CANCELLED for a client-side deadline, INTERNAL or CANCELLED for a reset
/// stream, UNKNOWN for a connection lost mid-call, ...), a message naming the
/// endpoint and the whole error chain, and a [`BalanceError::Transport`]
/// source. A failure before the request was handed to the connection
/// (`sent` false) is UNAVAILABLE whatever tonic would say.
pub(crate) fn transport_status(
    endpoint: String,
    error: tonic::transport::Error,
    sent: bool,
) -> Status {
    let chain = error_chain(&error);
    let tonic_status = Status::from_error(Box::new(error));
    let code = if sent {
        tonic_status.code()
    } else {
        Code::Unavailable
    };
    let mut status = Status::new(code, format!("endpoint {endpoint}: {chain}"));
    status.set_source(Arc::new(BalanceError::Transport {
        endpoint,
        source: Box::new(tonic_status),
    }));
    status
}

/// An error and its sources, as one line, without repeating a source whose
/// text its parent already shows.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
