//! A request body that comes back to the balancer if the connection drops it
//! before sending a byte of it, so the call can go to another endpoint.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http::request::Parts;
use http_body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;
use tonic::Status;
use tonic::body::Body;

/// Where an unsent body is put back. Shared by one call's attempt and its
/// response future only.
type Slot = Arc<Mutex<Option<Body>>>;

/// Wraps the body handed to an endpoint's connection. Until the connection
/// first polls it for data, it is whole; if the connection drops it before
/// that (the connection could not be made, or the request was never
/// dispatched), it puts itself back in the slot.
struct UnsentBody {
    inner: Option<Body>,
    slot: Slot,
    polled: bool,
}

impl HttpBody for UnsentBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.polled = true;
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for UnsentBody {
    fn drop(&mut self) {
        if !self.polled
            && let Some(body) = self.inner.take()
        {
            *self.slot.lock() = Some(body);
        }
    }
}

/// What it takes to send a call again: its head, and the slot its body comes
/// back to if it was never sent.
pub(crate) struct Resendable {
    parts: Parts,
    slot: Slot,
}

impl std::fmt::Debug for Resendable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resendable")
            .field("uri", &self.parts.uri)
            .finish_non_exhaustive()
    }
}

/// A copy of a request's head, to send it again.
pub(crate) fn copy(parts: &Parts) -> Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy.extensions = parts.extensions.clone();
    copy
}

impl Resendable {
    /// Keeps `request`'s head and returns the request to hand to a
    /// connection, its body wrapped so it comes back if never sent.
    pub(crate) fn wrap(request: Request<Body>) -> (Resendable, Request<Body>) {
        let (parts, body) = request.into_parts();
        let slot = Slot::default();
        let wrapped = Body::new(UnsentBody {
            inner: Some(body),
            slot: slot.clone(),
            polled: false,
        });
        let request = Request::from_parts(copy(&parts), wrapped);
        (Resendable { parts, slot }, request)
    }

    /// The request again, if its body came back unsent.
    pub(crate) fn take(self) -> Option<Request<Body>> {
        let body = self.slot.lock().take()?;
        Some(Request::from_parts(self.parts, body))
    }

    /// The original request from a request that was never handed over.
    pub(crate) fn unwrap(self, handed: Request<Body>) -> Option<Request<Body>> {
        // Dropping the wrapped body, never polled, puts the original back.
        drop(handed);
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<Body> {
        let mut request = Request::new(Body::new(http_body_util::Full::new(Bytes::from_static(
            b"payload",
        ))));
        *request.uri_mut() = "/greeter.Greeter/SayHello".parse().unwrap();
        request.headers_mut().insert("x-test", "1".parse().unwrap());
        request
    }

    async fn collect(body: Body) -> Bytes {
        use http_body_util::BodyExt;
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_body_dropped_unread_comes_back_whole_with_its_head() {
        let (resend, handed) = Resendable::wrap(request());
        assert_eq!(handed.headers()["x-test"], "1");
        drop(handed);
        let again = resend.take().expect("the body came back");
        assert_eq!(again.uri().path(), "/greeter.Greeter/SayHello");
        assert_eq!(again.headers()["x-test"], "1");
        assert_eq!(collect(again.into_body()).await, "payload");
    }

    #[tokio::test]
    async fn a_body_read_from_never_comes_back() {
        let (resend, handed) = Resendable::wrap(request());
        let mut body = handed.into_body();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(frame.is_some());
        drop(body);
        assert!(resend.take().is_none());
    }

    #[tokio::test]
    async fn a_request_never_handed_over_is_unwrapped_whole() {
        let (resend, handed) = Resendable::wrap(request());
        let again = resend.unwrap(handed).expect("never handed over");
        assert_eq!(collect(again.into_body()).await, "payload");
    }
}
