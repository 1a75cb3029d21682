//! Calls the layer refuses because its queue is full or too slow, and calls
//! it hands back unserved to the client that offered them.

use http::{HeaderValue, Response};
use orca_lb_proto::{HANDED_BACK_BUSY, HANDED_BACK_HEADER};
use tonic::Code;

use crate::body::ResponseBody;
use crate::in_flight_call::InFlightCall;
use crate::trailer::{Reuse, insert_report};

/// Why a unary call was refused before its handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// `max_queue_depth` calls were waiting already.
    QueueFull,
    /// It waited `max_queue_wait` without getting a worker slot.
    QueueWait,
    /// Its client offered it to be handed back, and every slot was taken
    /// with `hand_back_queue_depth` calls waiting.
    HandBack,
}

impl Shed {
    /// The word for it in the `reason` log field and metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Shed::QueueFull => "queue_full",
            Shed::QueueWait => "queue_wait",
            Shed::HandBack => "hand_back",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Shed::QueueFull => "server overloaded: its queue is full",
            Shed::QueueWait => "server overloaded: no worker slot within the queue wait limit",
            Shed::HandBack => "server busy: call handed back unserved, for another backend",
        }
    }

    /// The `grpc-status` of the response.
    fn code(self) -> &'static str {
        match self {
            // RESOURCE_EXHAUSTED: the server refused work it was given.
            Shed::QueueFull | Shed::QueueWait => "8",
            // UNAVAILABLE: not processed, safe to send elsewhere.
            Shed::HandBack => "14",
        }
    }
}

/// A trailers-only response with the server's report: `RESOURCE_EXHAUSTED`
/// for a refused call, counted as failed; `UNAVAILABLE` with the
/// [`HANDED_BACK_HEADER`] for a call handed back, counted as never served.
pub(crate) fn refused_response<B: Default>(
    shed: Shed,
    guard: &mut InFlightCall,
) -> Response<ResponseBody<B>> {
    guard.tracker().metrics.shed(shed).increment(1);
    if shed == Shed::HandBack {
        tracing::trace!(
            reason = shed.label(),
            "handed a call back: {}",
            shed.message()
        );
        guard.finish_unserved();
    } else {
        tracing::debug!(reason = shed.label(), "refused a call: {}", shed.message());
        guard.finish(Some(Code::ResourceExhausted));
    }
    let mut response = Response::new(ResponseBody::passthrough(B::default()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(shed.code()));
    headers.insert("grpc-message", HeaderValue::from_static(shed.message()));
    if shed == Shed::HandBack {
        headers.insert(
            HANDED_BACK_HEADER,
            HeaderValue::from_static(HANDED_BACK_BUSY),
        );
    }
    let now = tokio::time::Instant::now().into_std();
    insert_report(headers, guard.tracker(), None, now, Reuse::Never);
    response
}
