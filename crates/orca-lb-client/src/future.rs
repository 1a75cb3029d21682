//! The response future of [`Balancer`](crate::Balancer).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::call::CallGuard;
use crate::error::{BalanceError, boxed};
use crate::report::grpc_status;
use orca_lb_core::Outcome;

pin_project! {
    /// Sends the call on the picked endpoint's connection and wraps the
    /// response so its trailers feed the balancer.
    pub struct ResponseFuture {
        #[pin]
        state: State,
        call: Option<CallGuard>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Failed { error: Option<BalanceError> },
        Connecting { channel: Channel, request: Option<Request<Body>> },
        Sent { #[pin] future: tonic::transport::channel::ResponseFuture },
    }
}

impl ResponseFuture {
    pub(crate) fn failed(error: BalanceError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            call: None,
        }
    }

    pub(crate) fn send(call: CallGuard, request: Request<Body>) -> Self {
        let channel = call.endpoint().channel.clone();
        Self {
            state: State::Connecting {
                channel,
                request: Some(request),
            },
            call: Some(call),
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Ends the call with `outcome` and makes the caller's status: UNAVAILABLE
/// when the request was not handed to the connection (`sent` false),
/// otherwise the code tonic's `Channel` gives `source`.
fn transport_error(
    call: &mut Option<CallGuard>,
    source: tonic::transport::Error,
    outcome: Outcome,
    sent: bool,
) -> crate::BoxError {
    let endpoint = call
        .as_ref()
        .map(|c| c.endpoint().key.clone())
        .unwrap_or_default();
    if let Some(mut c) = call.take() {
        c.finish(outcome, None);
    }
    Box::new(crate::status::transport_status(endpoint, source, sent))
}

/// Whether a transport error happened before the request reached the server:
/// the connection (TCP, or its TLS handshake) could not be made.
fn is_connect_error(e: &tonic::transport::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        // tonic and hyper-util keep their connect error types private; their
        // messages are stable ("tcp connect error", "connection refused").
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("connect error") || text.contains("connection refused") {
            return true;
        }
        source = err.source();
    }
    false
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, crate::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { error } => {
                    let e = error.take().expect("polled after completion");
                    return Poll::Ready(Err(boxed(e)));
                }
                StateProj::Connecting { channel, request } => {
                    if let Err(e) = ready!(channel.poll_ready(cx)) {
                        let outcome = if is_connect_error(&e) {
                            Outcome::ConnectFailure
                        } else {
                            Outcome::Failure
                        };
                        return Poll::Ready(Err(transport_error(this.call, e, outcome, false)));
                    }
                    let request = request.take().expect("polled after completion");
                    let future = channel.call(request);
                    this.state.set(State::Sent { future });
                }
                StateProj::Sent { future } => {
                    let response = match ready!(future.poll(cx)) {
                        Ok(r) => r,
                        Err(e) => {
                            let outcome = if is_connect_error(&e) {
                                Outcome::ConnectFailure
                            } else {
                                Outcome::Failure
                            };
                            return Poll::Ready(Err(transport_error(this.call, e, outcome, true)));
                        }
                    };
                    let mut call = this.call.take().expect("polled after completion");
                    let (parts, body) = response.into_parts();
                    if grpc_status(&parts.headers).is_some() {
                        // Trailers-only: the headers are the trailers.
                        call.finish_with(&parts.headers);
                        return Poll::Ready(Ok(Response::from_parts(
                            parts,
                            ResponseBody::done(body),
                        )));
                    }
                    return Poll::Ready(Ok(Response::from_parts(
                        parts,
                        ResponseBody::new(body, call),
                    )));
                }
            }
        }
    }
}
