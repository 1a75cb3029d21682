//! The response body that adds the report to the trailers.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use orca_lb_proto::grpc_status;
use pin_project_lite::pin_project;
use tonic::Code;

use crate::call_recorder::CallRecorder;
use crate::current_call::Serving;
use crate::in_flight_call::InFlightCall;
use crate::stream_max_age::{StreamMaxAge, max_age_trailers};
use crate::trailer::{Reuse, insert_report};

pin_project! {
    /// Passes the wrapped body through and, when its trailers go by, ends the
    /// call's count and adds `endpoint-load-metrics-bin` to them.
    ///
    /// Dropping the body before its trailers (a client that goes away) ends
    /// the count too. A stream with a max age
    /// ([`ReportingConfig::max_stream_age`](crate::ReportingConfig::max_stream_age))
    /// is ended by the body once the age has passed and no message is partly
    /// sent: UNAVAILABLE, with the report; the wrapped body is not polled
    /// again.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        call: Option<(InFlightCall, Option<CallRecorder>)>,
        max_age: Option<StreamMaxAge>,
        ended: bool,
    }
}

impl<B> ResponseBody<B> {
    /// The body of `guard`'s call; its max age, if it has one, counts from
    /// now.
    pub(crate) fn new(inner: B, guard: InFlightCall, recorder: Option<CallRecorder>) -> Self {
        let max_age = guard
            .max_age()
            .map(|age| StreamMaxAge::new(age, tokio::time::Instant::now()));
        Self {
            inner,
            call: Some((guard, recorder)),
            max_age,
            ended: false,
        }
    }

    /// A body whose call is already accounted for (trailers-only responses).
    pub(crate) fn passthrough(inner: B) -> Self {
        Self {
            inner,
            call: None,
            max_age: None,
            ended: false,
        }
    }

    /// When the stream reaches its max age, if it has one.
    pub fn max_age_deadline(&self) -> Option<tokio::time::Instant> {
        self.max_age.as_ref().map(StreamMaxAge::deadline)
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
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.call.is_some()
            && let Some(age) = this.max_age.as_mut()
            && age.may_end(cx)
        {
            // At its max age, between two messages: the stream ends here.
            *this.ended = true;
            let mut trailers = max_age_trailers();
            if let Some((mut guard, recorder)) = this.call.take() {
                let now = tokio::time::Instant::now().into_std();
                // A normal end, not an error of the server's.
                guard.finish(Some(Code::Ok));
                insert_report(
                    &mut trailers,
                    guard.tracker(),
                    recorder.as_ref(),
                    now,
                    Reuse::Never,
                );
                if let Some(recorder) = recorder {
                    recorder.recycle();
                }
            }
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let polled = {
            // A streaming handler may produce its messages, and record
            // costs, as the body is polled.
            let _serving = this.call.as_mut().and_then(|(_, r)| Serving::enter(r));
            ready!(this.inner.poll_frame(cx))
        };
        let frame = match polled {
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
                    let now = guard.report_time();
                    guard.finish(grpc_status(&trailers));
                    insert_report(
                        &mut trailers,
                        guard.tracker(),
                        recorder.as_ref(),
                        now,
                        Reuse::Allowed,
                    );
                    if let Some(recorder) = recorder {
                        recorder.recycle();
                    }
                }
                Frame::trailers(trailers)
            }
            Err(frame) => frame,
        };
        if let (Some(age), Some(data)) = (this.max_age.as_mut(), frame.data_ref()) {
            age.sent(data);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
