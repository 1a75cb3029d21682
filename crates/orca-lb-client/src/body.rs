//! The response body that reads the endpoint's report from the trailers.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;

use crate::call::CallGuard;
use crate::status::body_status;
use orca_lb_core::Outcome;

pin_project! {
    /// Passes the endpoint's response body through; when its trailers go by,
    /// feeds their `grpc-status` and `endpoint-load-metrics-bin` report back
    /// to the balancer. Dropped early, it releases the call without an outcome.
    /// An error ending the body fails the call, and its status names the
    /// endpoint.
    pub struct ResponseBody {
        #[pin]
        inner: Body,
        call: Option<CallGuard>,
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: Body, call: CallGuard) -> Self {
        Self {
            inner,
            call: Some(call),
        }
    }

    pub(crate) fn done(inner: Body) -> Self {
        Self { inner, call: None }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("pending", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref()
                    && let Some(mut call) = this.call.take()
                {
                    call.finish_with(trailers);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Some(Err(status)) => match this.call.take() {
                Some(mut call) => {
                    call.finish(Outcome::Failure, None);
                    let endpoint = call.endpoint().key().to_owned();
                    Poll::Ready(Some(Err(body_status(endpoint, status))))
                }
                // The call's outcome is already known: passed through.
                None => Poll::Ready(Some(Err(status))),
            },
            None => {
                if let Some(mut call) = this.call.take() {
                    // Ended without trailers: not a complete gRPC response.
                    call.finish(Outcome::Failure, None);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
