//! Calls and streams still open at a drain's deadline, ended with a status
//! rather than cut with their connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

use super::Phase;

/// The status of a call or stream ended at the deadline: UNAVAILABLE, the
/// code that tells a client the call may be retried elsewhere.
const ENDED_STATUS: HeaderValue = HeaderValue::from_static("14");
const ENDED_MESSAGE: HeaderValue = HeaderValue::from_static("server draining: deadline passed");

type Ending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves once the drain reaches its deadline; never if the drain is
/// dropped without running.
fn ending(mut phase: watch::Receiver<Phase>) -> Ending {
    Box::pin(async move {
        if phase.wait_for(|p| *p >= Phase::Ending).await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

/// A tower layer, from [`Drain::layer`](super::Drain::layer), that ends the
/// calls and streams still open when the drain's deadline passes with
/// `UNAVAILABLE` (`server draining: deadline passed`) instead of leaving
/// them to be cut with their connection.
#[derive(Debug, Clone)]
pub struct DrainLayer {
    phase: watch::Receiver<Phase>,
}

impl DrainLayer {
    pub(super) fn new(phase: watch::Receiver<Phase>) -> Self {
        Self { phase }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = DrainService<S>;

    fn layer(&self, inner: S) -> DrainService<S> {
        DrainService {
            inner,
            phase: self.phase.clone(),
        }
    }
}

/// The service of a [`DrainLayer`].
#[derive(Debug, Clone)]
pub struct DrainService<S> {
    inner: S,
    phase: watch::Receiver<Phase>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DrainService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<DrainBody<ResBody>>;
    type Error = S::Error;
    type Future = DrainFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        DrainFuture {
            inner: self.inner.call(request),
            ending: Some(ending(self.phase.clone())),
        }
    }
}

pin_project! {
    /// The response future of a [`DrainService`]: the wrapped service's
    /// response, or a trailers-only UNAVAILABLE one if the deadline passes
    /// first.
    pub struct DrainFuture<F> {
        #[pin]
        inner: F,
        ending: Option<Ending>,
    }
}

impl<F> std::fmt::Debug for DrainFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for DrainFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<DrainBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let ending = this.ending.take();
            return Poll::Ready(result.map(|r| {
                r.map(|inner| DrainBody {
                    inner,
                    ending,
                    done: false,
                })
            }));
        }
        if let Some(ending) = this.ending.as_mut()
            && ending.as_mut().poll(cx).is_ready()
        {
            let mut response = Response::new(DrainBody {
                inner: B::default(),
                ending: None,
                done: true,
            });
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            insert_status(headers);
            return Poll::Ready(Ok(response));
        }
        Poll::Pending
    }
}

fn insert_status(headers: &mut HeaderMap) {
    headers.insert("grpc-status", ENDED_STATUS);
    headers.insert("grpc-message", ENDED_MESSAGE);
}

pin_project! {
    /// The response body of a [`DrainService`]: the wrapped body, ended with
    /// UNAVAILABLE trailers if the deadline passes before its own.
    pub struct DrainBody<B> {
        #[pin]
        inner: B,
        ending: Option<Ending>,
        done: bool,
    }
}

/// An empty body, ended: for layers around this one that answer on their
/// own.
impl<B: Default> Default for DrainBody<B> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            ending: None,
            done: true,
        }
    }
}

impl<B> std::fmt::Debug for DrainBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for DrainBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            match &frame {
                Some(Ok(f)) if f.is_trailers() => *this.done = true,
                None | Some(Err(_)) => *this.done = true,
                Some(Ok(_)) => {}
            }
            return Poll::Ready(frame);
        }
        if let Some(ending) = this.ending.as_mut() {
            ready!(ending.as_mut().poll(cx));
            *this.done = true;
            let mut trailers = HeaderMap::new();
            insert_status(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}
