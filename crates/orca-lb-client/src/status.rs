//! The gRPC status of a call that failed on its endpoint's connection: the
//! code tonic's `Channel` gives the same failure, so that only failures
//! before the request was sent are UNAVAILABLE ("safe to retry").

use std::sync::Arc;

use orca_lb_core::append_sources;
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

/// The status a caller sees when `status` ends the response body of a call
/// on `endpoint` (the connection failed or was closed after the response
/// headers came, while the messages or trailers were read): the same code,
/// the message prefixed with the endpoint and followed by what caused it,
/// and a [`BalanceError::Transport`] source holding `status`. As for a
/// failure before the response, the caller learns which endpoint failed.
pub(crate) fn body_status(endpoint: String, status: Status) -> Status {
    let mut message = status.message().to_string();
    append_sources(&mut message, std::error::Error::source(&status));
    let mut out = Status::new(status.code(), format!("endpoint {endpoint}: {message}"));
    out.set_source(Arc::new(BalanceError::Transport {
        endpoint,
        source: Box::new(status),
    }));
    out
}

/// An error and its sources, as one line, without repeating a source whose
/// text its parent already shows.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    append_sources(&mut text, e.source());
    text
}
