//! Calls the layer refuses because its queue is full or too slow.

use http::{HeaderValue, Response};
use tonic::Code;

use crate::body::ResponseBody;
use crate::in_flight_call::InFlightCall;
use crate::trailer::insert_report;

/// Why a unary call was refused before its handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// `max_queue_depth` calls were waiting already.
    QueueFull,
    /// It waited `max_queue_wait` without getting a worker slot.
    QueueWait,
}

impl Shed {
    /// The word for it in the `reason` log field and metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Shed::QueueFull => "queue_full",
            Shed::QueueWait => "queue_wait",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Shed::QueueFull => "server overloaded: its queue is full",
            Shed::QueueWait => "server overloaded: no worker slot within the queue wait limit",
        }
    }
}

/// A trailers-only `RESOURCE_EXHAUSTED` response with the server's report,
/// counting the call as failed.
pub(crate) fn refused_response<B: Default>(
    shed: Shed,
    guard: &mut InFlightCall,
) -> Response<ResponseBody<B>> {
    guard.tracker().metrics.shed(shed).increment(1);
    tracing::debug!(reason = shed.label(), "refused a call: {}", shed.message());
    guard.finish(Some(Code::ResourceExhausted));
    let mut response = Response::new(ResponseBody::passthrough(B::default()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("8"));
    headers.insert("grpc-message", HeaderValue::from_static(shed.message()));
    let now = tokio::time::Instant::now().into_std();
    insert_report(headers, guard.tracker(), None, now);
    response
}
