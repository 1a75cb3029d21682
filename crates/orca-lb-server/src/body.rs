//! The response body that adds the report to the trailers.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use orca_lb_proto::grpc_status;
use pin_project_lite::pin_project;
use tonic::Code;

use crate::call_recorder::CallRecorder;
use crate::in_flight_call::InFlightCall;
use crate::trailer::insert_report;

pin_project! {
    /// Passes the wrapped body through and, when its trailers go by, ends the
    /// call's count and adds `endpoint-load-metrics-bin` to them.
    ///
    /// Dropping the body before its trailers (a client that goes away) ends
    /// the count too.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        call: Option<(InFlightCall, Option<CallRecorder>)>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, guard: InFlightCall, recorder: Option<CallRecorder>) -> Self {
        Self {
            inner,
            call: Some((guard, recorder)),
        }
    }

    /// A body whose call is already accounted for (trailers-only responses).
    pub(crate) fn passthrough(inner: B) -> Self {
        Self { inner, call: None }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the body; its call is counted as finished.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

/// An empty body whose call is accounted for, so that layers which answer
/// on their own (trailers-only responses) can wrap this one.
impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::passthrough(B::default())
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("counted", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                if let Some((mut guard, _)) = this.call.take() {
                    // Failed below gRPC: counted as UNKNOWN.
                    guard.finish(Some(Code::Unknown));
                }
                return Poll::Ready(Some(Err(e)));
            }
            None => {
                // Ended without trailers: not gRPC, nothing to report into.
                if let Some((mut guard, _)) = this.call.take() {
                    guard.finish(None);
                }
                return Poll::Ready(None);
            }
        };
        let frame = match frame.into_trailers() {
            Ok(mut trailers) => {
                if let Some((mut guard, recorder)) = this.call.take() {
                    let now = tokio::time::Instant::now().into_std();
                    guard.finish(grpc_status(&trailers));
                    insert_report(&mut trailers, guard.tracker(), recorder.as_ref(), now);
                }
                Frame::trailers(trailers)
            }
            Err(frame) => frame,
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
