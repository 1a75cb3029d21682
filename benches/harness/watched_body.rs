//! A response body that shows its trailers to a watcher and keeps the
//! watcher until the body is dropped: how the report-fed policies learn of
//! the report at the end of a response, and how the probe layer holds a
//! call's place in its RIF until its response ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use tonic::Status;
use tonic::body::Body;

/// What a [`WatchedBody`] carries along to the end of its response.
pub(crate) trait ResponseWatcher: Unpin + Send + 'static {
    /// The response's headers came (with a trailers-only response, an
    /// error status, they hold what trailers would); by default they are
    /// not read. Shown by whoever receives the response, before it wraps
    /// the body (the policies' `send_watched`).
    fn headers(&mut self, _headers: &http::HeaderMap) {}

    /// The response's trailers came; by default they are not read.
    fn trailers(&mut self, _trailers: &http::HeaderMap) {}
}

/// A response body whose watcher is shown its trailers and dropped with it.
#[derive(Debug)]
pub(crate) struct WatchedBody<W> {
    inner: Body,
    watcher: W,
}

impl<W: ResponseWatcher> WatchedBody<W> {
    /// `inner` watched by `watcher`, as a tonic body.
    pub(crate) fn wrap(inner: Body, watcher: W) -> Body {
        Body::new(Self { inner, watcher })
    }
}

impl<W: ResponseWatcher> HttpBody for WatchedBody<W> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(trailers) = f.trailers_ref()
        {
            self.watcher.trailers(trailers);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
