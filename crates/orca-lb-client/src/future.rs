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
use crate::offered_call::{OfferedCall, handed_back};
use crate::unsent_body::Resendable;
use orca_lb_core::Outcome;
use orca_lb_proto::grpc_status;

pin_project! {
    /// Sends the call on the picked endpoint's connection and wraps the
    /// response so its trailers feed the balancer. A call that never reached
    /// the endpoint goes to another one, once, within the retry budget; a
    /// call its server handed back unserved goes to another one, within
    /// `BalancerConfig::hand_backs`.
    pub struct ResponseFuture {
        #[pin]
        state: State,
        call: Option<CallGuard>,
        // The head of the call and the way back of its body, until it is
        // re-picked once; `None` when re-picks are off.
        resend: Option<Resendable>,
        // The whole request of a call offered for hand-back.
        offered: Option<OfferedCall>,
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
            resend: None,
            offered: None,
        }
    }

    /// Sends `request` for `call`, offered for up to `hand_backs` hand-backs
    /// if it can be.
    pub(crate) fn send(call: CallGuard, request: Request<Body>, hand_backs: u32) -> Self {
        let (request, offered) = if hand_backs > 0 {
            OfferedCall::offer(request, hand_backs)
        } else {
            (request, None)
        };
        let channel = call.endpoint().channel().clone();
        // An offered call keeps its whole request already.
        let (resend, request) = match offered {
            Some(_) => (None, request),
            None => resendable(&call, request),
        };
        Self {
            state: State::Connecting {
                channel,
                request: Some(request),
            },
            call: Some(call),
            resend,
            offered,
        }
    }
}

/// `request`, wrapped so its body comes back if never sent, when re-picks
/// are on.
fn resendable(call: &CallGuard, request: Request<Body>) -> (Option<Resendable>, Request<Body>) {
    if call.shared().repick.enabled() {
        let (resend, request) = Resendable::wrap(request);
        (Some(resend), request)
    } else {
        (None, request)
    }
}

/// Sends the call on to another endpoint after its server handed it back
/// unserved with these trailers-only `headers`: ends the attempt with the
/// report and no outcome, picks again passing over that endpoint (or, with
/// no other to pick, sends it there again, not offered), and returns the
/// channel and request of the next attempt.
fn hand_on(
    call: &mut Option<CallGuard>,
    offered: &mut OfferedCall,
    headers: &http::HeaderMap,
) -> (CallGuard, Channel, Request<Body>) {
    let mut handed = call.take().expect("an attempt in flight");
    handed.finish_handed_back(headers);
    let shared = handed.shared().clone();
    let now = tokio::time::Instant::now().into_std();
    let next = match crate::Balancer::repick(&shared, false, handed.endpoint(), now) {
        Ok(next) => next,
        // Nowhere else to go: the endpoint that handed it back serves it.
        Err(_) => {
            offered.exhaust();
            CallGuard::new(handed.endpoint().clone(), shared.clone(), false, false, now)
        }
    }
    .continuing(&handed);
    shared.record_hand_back();
    tracing::debug!(
        target_name = %shared.config.target,
        from = %handed.endpoint().key(),
        to = %next.endpoint().key(),
        "call handed back by a busy server: picked again"
    );
    let request = offered.attempt();
    let channel = next.endpoint().channel().clone();
    (next, channel, request)
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Ends the call with `outcome` and makes the caller's status: UNAVAILABLE
/// when the request never reached a server (not handed to the connection,
/// `sent` false, or [`never_reached_server`]), otherwise the code tonic's
/// `Channel` gives `source`.
fn transport_error(
    call: &mut Option<CallGuard>,
    source: tonic::transport::Error,
    outcome: Outcome,
    sent: bool,
) -> crate::BoxError {
    let endpoint = call
        .as_ref()
        .map(|c| c.endpoint().key().to_string())
        .unwrap_or_default();
    if let Some(mut c) = call.take() {
        c.finish(outcome, None);
    }
    let sent = sent && !never_reached_server(&source);
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

/// Whether an error on a call handed to the connection proves that no server
/// saw the call: the connection (TCP or TLS) could not be made; the HTTP/2
/// connection closed or was not ready before it took the request (hyper's
/// "canceled", only ever given to requests it never serialized); or the
/// server refused the stream before processing it (REFUSED_STREAM).
pub(crate) fn never_reached_server(e: &tonic::transport::Error) -> bool {
    if is_connect_error(e) {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(hyper) = err.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return true;
        }
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_reset()
                && h2.is_remote()
                && h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = err.source();
    }
    false
}

/// Sends the call to another endpoint when its attempt failed with `error`
/// without reaching a server and its body was never sent (`handed` is the
/// request when it was never given to the connection at all). At most once
/// per call, within the balancer's retry budget. Ends the failed attempt
/// with `outcome` first, so its breaker counts it.
fn try_repick(
    call: &mut Option<CallGuard>,
    resend: &mut Option<Resendable>,
    offered: &mut Option<OfferedCall>,
    handed: Option<Request<Body>>,
    error: &tonic::transport::Error,
    outcome: Outcome,
) -> Option<(Channel, Request<Body>)> {
    if handed.is_none() && !never_reached_server(error) {
        return None;
    }
    let failed = call.as_mut()?;
    if !failed.shared().repick.enabled() {
        return None;
    }
    let shared = failed.shared().clone();
    let request = match (offered.as_ref(), resend.take(), handed) {
        // The whole request is kept: sent again as it was.
        (Some(offered), _, _) => offered.request(),
        (None, Some(resend), Some(handed)) => resend.unwrap(handed)?,
        // The connection polled the body, so bytes of it may have gone:
        // never sent again.
        (None, Some(resend), None) => resend.take()?,
        (None, None, _) => return None,
    };
    if !shared.repick.try_take() {
        return None;
    }
    failed.finish_attempt(outcome);
    let now = tokio::time::Instant::now().into_std();
    match crate::Balancer::repick(&shared, failed.is_stream(), failed.endpoint(), now) {
        Ok(next) => {
            let next = next.continuing(failed);
            shared.repick.record();
            tracing::debug!(
                target_name = %shared.config.target,
                from = %failed.endpoint().key(),
                to = %next.endpoint().key(),
                error = %error,
                "call re-picked: it never reached the endpoint"
            );
            let channel = next.endpoint().channel().clone();
            *call = Some(next);
            Some((channel, request))
        }
        Err(_) => {
            shared.repick.give_back();
            None
        }
    }
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
                        let handed = request.take();
                        if let Some((channel, request)) =
                            try_repick(this.call, this.resend, this.offered, handed, &e, outcome)
                        {
                            this.state.set(State::Connecting {
                                channel,
                                request: Some(request),
                            });
                            continue;
                        }
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
                            if let Some((channel, request)) =
                                try_repick(this.call, this.resend, this.offered, None, &e, outcome)
                            {
                                this.state.set(State::Connecting {
                                    channel,
                                    request: Some(request),
                                });
                                continue;
                            }
                            return Poll::Ready(Err(transport_error(this.call, e, outcome, true)));
                        }
                    };
                    if let Some(offered) = this.offered.as_mut()
                        && offered.was_offered()
                        && handed_back(response.headers())
                    {
                        let (next, channel, request) =
                            hand_on(this.call, offered, response.headers());
                        *this.call = Some(next);
                        this.state.set(State::Connecting {
                            channel,
                            request: Some(request),
                        });
                        continue;
                    }
                    // Answered: nothing to send again.
                    *this.resend = None;
                    *this.offered = None;
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
