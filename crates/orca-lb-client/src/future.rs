//! The response future of [`Balancer`](crate::Balancer).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::call::CallGuard;
use crate::error::{BalanceError, boxed};
use crate::grpc_timeout::{self, Expired};
use crate::offered_call::{OfferedCall, handed_back};
use crate::shared::Shared;
use crate::unsent_body::Resendable;
use orca_lb_core::Outcome;
use orca_lb_proto::grpc_status;

pin_project! {
    /// Sends the call on the picked endpoint's connection and wraps the
    /// response so its trailers feed the balancer. A call that never reached
    /// the endpoint goes to another one, once, within the retry budget; a
    /// call its server handed back unserved goes to another one, within
    /// `BalancerConfig::hand_backs`. Either is sent with what is left of its
    /// `grpc-timeout`, or, with nothing left, ends with DEADLINE_EXCEEDED.
    pub struct ResponseFuture {
        #[pin]
        state: State,
        call: Option<CallGuard>,
        // The head of the call and the way back of its body, until it is
        // re-picked once; `None` when re-picks are off.
        resend: Option<Resendable>,
        // The whole request of a call offered for hand-back.
        offered: Option<OfferedCall>,
        // The call was re-picked: it is not re-picked again.
        repicked: bool,
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
            repicked: false,
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
            repicked: false,
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
/// channel and request of the next attempt, whose `grpc-timeout` is what is
/// left of the call's. A call whose timeout has run out is not sent again:
/// it ends with DEADLINE_EXCEEDED.
fn hand_on(
    call: &mut Option<CallGuard>,
    offered: &mut OfferedCall,
    headers: &http::HeaderMap,
) -> Result<(CallGuard, Channel, Request<Body>), BalanceError> {
    let mut handed = call.take().expect("an attempt in flight");
    handed.finish_handed_back(headers);
    let shared = handed.shared().clone();
    let now = tokio::time::Instant::now().into_std();
    let elapsed = now.saturating_duration_since(handed.call_start());
    let left = match grpc_timeout::left(offered.headers(), elapsed) {
        Ok(left) => left,
        Err(expired) => {
            // The attempt is over; this ends the call.
            handed.finish(Outcome::Failure, None);
            return Err(deadline_exceeded(&shared, expired, elapsed));
        }
    };
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
    let mut request = offered.attempt();
    grpc_timeout::set_left(request.headers_mut(), left);
    let channel = next.endpoint().channel().clone();
    Ok((next, channel, request))
}

/// The error of a call whose `grpc-timeout` ran out before it could be sent
/// again.
fn deadline_exceeded(shared: &Shared, expired: Expired, elapsed: Duration) -> BalanceError {
    BalanceError::DeadlineExceeded {
        target: shared.config.target.clone(),
        timeout: expired.timeout,
        elapsed,
    }
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
/// per call, within the balancer's retry budget, with what is left of its
/// `grpc-timeout`: returns the next attempt's channel and request, or
/// `None` if the call is not sent again. A call whose timeout has run out is
/// over: the error is its DEADLINE_EXCEEDED. Ends the failed attempt with
/// `outcome` first, so its breaker counts it.
fn try_repick(
    call: &mut Option<CallGuard>,
    resend: &mut Option<Resendable>,
    offered: &mut Option<OfferedCall>,
    repicked: &mut bool,
    handed: Option<Request<Body>>,
    error: &tonic::transport::Error,
    outcome: Outcome,
) -> Result<Option<(Channel, Request<Body>)>, BalanceError> {
    // Once per call: an offered call keeps its request after a re-pick.
    if *repicked || (handed.is_none() && !never_reached_server(error)) {
        return Ok(None);
    }
    let Some(failed) = call.as_mut() else {
        return Ok(None);
    };
    if !failed.shared().repick.enabled() {
        return Ok(None);
    }
    let shared = failed.shared().clone();
    let request = match (offered.as_ref(), resend.take(), handed) {
        // The whole request is kept: sent again as it was.
        (Some(offered), _, _) => Some(offered.request()),
        (None, Some(resend), Some(handed)) => resend.unwrap(handed),
        // The connection polled the body, so bytes of it may have gone:
        // never sent again.
        (None, Some(resend), None) => resend.take(),
        (None, None, _) => None,
    };
    let Some(mut request) = request else {
        return Ok(None);
    };
    if !shared.repick.try_take() {
        return Ok(None);
    }
    let now = tokio::time::Instant::now().into_std();
    let elapsed = now.saturating_duration_since(failed.call_start());
    if let Err(expired) = grpc_timeout::shorten(request.headers_mut(), elapsed) {
        shared.repick.give_back();
        failed.finish(outcome, None);
        return Err(deadline_exceeded(&shared, expired, elapsed));
    }
    failed.finish_attempt(outcome);
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
            *repicked = true;
            Ok(Some((channel, request)))
        }
        Err(_) => {
            shared.repick.give_back();
            Ok(None)
        }
    }
}

/// What a resent call keeps between attempts: its body for a re-pick, its
/// whole request if offered for hand-back, and whether it was re-picked.
type Kept<'a> = (
    &'a mut Option<Resendable>,
    &'a mut Option<OfferedCall>,
    &'a mut bool,
);

/// After an attempt failed with `error` at the transport (`sent`: once its
/// request was given to the connection; `handed`: the request, if it never
/// was): the next attempt's channel and request if the call is re-picked
/// (see [`try_repick`]), else the call's error, the attempt ended first.
fn next_attempt(
    call: &mut Option<CallGuard>,
    (resend, offered, repicked): Kept<'_>,
    handed: Option<Request<Body>>,
    error: tonic::transport::Error,
    sent: bool,
) -> Result<(Channel, Request<Body>), crate::BoxError> {
    let outcome = if is_connect_error(&error) {
        Outcome::ConnectFailure
    } else {
        Outcome::Failure
    };
    match try_repick(call, resend, offered, repicked, handed, &error, outcome) {
        Ok(Some(next)) => Ok(next),
        Err(expired) => Err(boxed(expired)),
        Ok(None) => Err(transport_error(call, error, outcome, sent)),
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
                        let (call, handed) = (&mut *this.call, request.take());
                        let attempt = (&mut *this.resend, &mut *this.offered, &mut *this.repicked);
                        let (channel, request) = next_attempt(call, attempt, handed, e, false)?;
                        this.state.set(State::Connecting {
                            channel,
                            request: Some(request),
                        });
                        continue;
                    }
                    let request = request.take().expect("polled after completion");
                    let future = channel.call(request);
                    this.state.set(State::Sent { future });
                }
                StateProj::Sent { future } => {
                    let response = match ready!(future.poll(cx)) {
                        Ok(r) => r,
                        Err(e) => {
                            let attempt =
                                (&mut *this.resend, &mut *this.offered, &mut *this.repicked);
                            let (channel, request) =
                                next_attempt(this.call, attempt, None, e, true)?;
                            this.state.set(State::Connecting {
                                channel,
                                request: Some(request),
                            });
                            continue;
                        }
                    };
                    if let Some(offered) = this.offered.as_mut()
                        && offered.was_offered()
                        && handed_back(response.headers())
                    {
                        let (next, channel, request) =
                            match hand_on(this.call, offered, response.headers()) {
                                Ok(next) => next,
                                Err(error) => {
                                    *this.offered = None;
                                    return Poll::Ready(Err(boxed(error)));
                                }
                            };
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};
    use orca_lb_proto::{HANDED_BACK_BUSY, HANDED_BACK_HEADER, TRAILER_KEY};

    use super::*;
    use crate::BalancerConfig;
    use crate::endpoint::Endpoint;

    /// A call to one lazily connected endpoint, as picked now, and its
    /// request offered for hand-back, sent with a `grpc-timeout` of 100 ms.
    fn offered_call() -> (CallGuard, OfferedCall) {
        let config = BalancerConfig::default();
        let now = tokio::time::Instant::now().into_std();
        let uri: http::Uri = "http://127.0.0.1:1".parse().unwrap();
        let channel = tonic::transport::Endpoint::from(uri.clone()).connect_lazy();
        let endpoint = Endpoint::new(uri.to_string(), uri, None, channel, &config, now, now);
        let shared = Arc::new(Shared::new(config, 1));
        let call = CallGuard::new(Arc::new(endpoint), shared, false, false, now);
        let mut request = Request::new(Body::empty());
        request
            .headers_mut()
            .insert("grpc-timeout", HeaderValue::from_static("100m"));
        let (first, offered) = OfferedCall::offer(request, 2);
        assert_eq!(first.headers()["grpc-timeout"], "100m", "sent as it came");
        (call, offered.expect("offered"))
    }

    /// A busy server's hand-back, with its report.
    fn handed_back_headers() -> HeaderMap {
        use base64::Engine;
        use prost::Message;
        let report = orca_lb_proto::pb::OrcaLoadReport {
            cpu_utilization: 0.9,
            ..Default::default()
        };
        let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(report.encode_to_vec());
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        headers.insert(
            HANDED_BACK_HEADER,
            HeaderValue::from_static(HANDED_BACK_BUSY),
        );
        headers.insert(TRAILER_KEY, HeaderValue::from_str(&text).unwrap());
        assert!(handed_back(&headers));
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn a_handed_back_call_goes_on_with_what_is_left_of_its_timeout() {
        let (call, mut offered) = offered_call();
        tokio::time::advance(Duration::from_millis(40)).await;
        let (next, _, request) =
            hand_on(&mut Some(call), &mut offered, &handed_back_headers()).expect("time left");
        assert_eq!(request.headers()["grpc-timeout"], "60000000n");

        // Handed back again, 59.999 ms later: a microsecond is left.
        tokio::time::advance(Duration::from_micros(59_999)).await;
        let (next, _, request) =
            hand_on(&mut Some(next), &mut offered, &handed_back_headers()).expect("time left");
        assert_eq!(request.headers()["grpc-timeout"], "1000n");
        assert!(!offered.was_offered(), "no hand-backs left");
        drop(next);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_handed_back_once_its_timeout_ran_out_ends_deadline_exceeded() {
        let (call, mut offered) = offered_call();
        tokio::time::advance(Duration::from_millis(100)).await;
        let error = hand_on(&mut Some(call), &mut offered, &handed_back_headers())
            .expect_err("no time left");
        match &error {
            BalanceError::DeadlineExceeded {
                timeout, elapsed, ..
            } => {
                assert_eq!(*timeout, Duration::from_millis(100));
                assert_eq!(*elapsed, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        assert!(error.is_deadline_exceeded());
        let status = tonic::Status::from(error);
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("100ms"), "{}", status.message());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_a_timeout_or_with_a_malformed_one_goes_on_as_it_came() {
        for value in [None, Some("soon")] {
            let (call, _) = offered_call();
            let mut request = Request::new(Body::empty());
            if let Some(value) = value {
                request
                    .headers_mut()
                    .insert("grpc-timeout", HeaderValue::from_static(value));
            }
            let (_, offered) = OfferedCall::offer(request, 1);
            let mut offered = offered.expect("offered");
            tokio::time::advance(Duration::from_secs(3600)).await;
            let (_, _, request) = hand_on(&mut Some(call), &mut offered, &handed_back_headers())
                .expect("no timeout to run out");
            assert_eq!(
                request
                    .headers()
                    .get("grpc-timeout")
                    .map(|v| v.to_str().unwrap()),
                value
            );
        }
    }
}
