//! A unary call offered to its server for hand-back: the whole request, kept
//! so that it can be sent to another endpoint if the server answers it
//! unserved (see `orca_lb_proto::HANDED_BACK_HEADER`).
//!
//! Only a request whose body is already complete is offered: the body is
//! read ahead without waiting (a generated client's unary request is one
//! encoded message, there at once), and if it is not all there at once, is
//! larger than [`MAX_OFFERED_BODY`], or ends in trailers or an error, the
//! request goes out as it came, with what was read put back in front.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request};
use http_body::{Body as HttpBody, Frame, SizeHint};
use orca_lb_proto::{HANDED_BACK_BUSY, HANDED_BACK_HEADER, MAY_HAND_BACK_HEADER};
use tonic::Status;
use tonic::body::Body;

use crate::unsent_body::copy;

/// The largest request body a call is offered with: the copy kept to send
/// it again costs no more than this.
pub(crate) const MAX_OFFERED_BODY: usize = 64 * 1024;

/// A call offered for hand-back: what it takes to send it again, and how
/// many more times it may be offered.
pub(crate) struct OfferedCall {
    parts: Parts,
    body: Bytes,
    /// Hand-backs left after the attempt in flight.
    left: u32,
    /// The attempt in flight was offered.
    offered: bool,
}

impl std::fmt::Debug for OfferedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferedCall")
            .field("uri", &self.parts.uri)
            .field("body_len", &self.body.len())
            .field("left", &self.left)
            .field("offered", &self.offered)
            .finish()
    }
}

impl OfferedCall {
    /// Offers `request`, which may be handed back `hand_backs` times (at
    /// least 1), if its body is complete and small enough: returns the
    /// request to send, marked with [`MAY_HAND_BACK_HEADER`], and the offer.
    /// Otherwise the request to send is `request` unmarked, its body whole.
    pub(crate) fn offer(
        request: Request<Body>,
        hand_backs: u32,
    ) -> (Request<Body>, Option<OfferedCall>) {
        debug_assert!(hand_backs > 0);
        let (parts, body) = request.into_parts();
        match read_ahead(body) {
            ReadAhead::Whole(body) => {
                let mut offered = OfferedCall {
                    parts,
                    body,
                    left: hand_backs,
                    offered: false,
                };
                let request = offered.attempt();
                (request, Some(offered))
            }
            ReadAhead::Partial(body) => (Request::from_parts(parts, Body::new(body)), None),
        }
    }

    /// The request for the next attempt, offered again while hand-backs are
    /// left.
    pub(crate) fn attempt(&mut self) -> Request<Body> {
        self.offered = self.left > 0;
        self.left = self.left.saturating_sub(1);
        self.request()
    }

    /// The request of the attempt in flight, again: for an attempt that
    /// never reached its server.
    pub(crate) fn request(&self) -> Request<Body> {
        let mut parts = copy(&self.parts);
        if self.offered {
            parts
                .headers
                .insert(MAY_HAND_BACK_HEADER, HeaderValue::from_static("1"));
        }
        let body = Body::new(Prefixed::whole(self.body.clone()));
        Request::from_parts(parts, body)
    }

    /// The head of the call as its caller made it.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// No more hand-backs: the next attempt is the last.
    pub(crate) fn exhaust(&mut self) {
        self.left = 0;
    }

    /// Whether the attempt in flight was offered: only then may its server
    /// hand it back.
    pub(crate) fn was_offered(&self) -> bool {
        self.offered
    }
}

/// Whether a response's headers say its server handed the call back: a
/// trailers-only `UNAVAILABLE` with the [`HANDED_BACK_HEADER`] and a valid
/// load report, which says how busy the server is and so makes the
/// balancer send it fewer calls. A hand-back without one is not taken: the
/// caller gets the `UNAVAILABLE`, and the endpoint's breaker counts it, so
/// that a server that claims to be busy without saying how cannot bounce
/// calls at no cost to itself.
pub(crate) fn handed_back(headers: &HeaderMap) -> bool {
    headers
        .get(HANDED_BACK_HEADER)
        .is_some_and(|v| v.as_bytes() == HANDED_BACK_BUSY.as_bytes())
        && orca_lb_proto::grpc_status(headers) == Some(tonic::Code::Unavailable)
        && crate::report::report_in(headers).is_some_and(|r| r.is_ok())
}

enum ReadAhead {
    /// The body, all of it, data only and small enough to keep.
    Whole(Bytes),
    /// What was read, and the rest after it.
    Partial(Prefixed),
}

/// Reads `body` as far as it goes without waiting, up to
/// [`MAX_OFFERED_BODY`] bytes.
fn read_ahead(mut body: Body) -> ReadAhead {
    let mut cx = Context::from_waker(Waker::noop());
    let mut read: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0;
    loop {
        let next = match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => {
                let data = joined.map_or_else(|| read.unwrap_or_default(), BytesMut::freeze);
                return ReadAhead::Whole(data);
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    len += data.len();
                    match (&mut read, &mut joined) {
                        (None, None) => read = Some(data),
                        (Some(first), None) => {
                            let mut all = BytesMut::with_capacity(first.len() + data.len());
                            all.extend_from_slice(first);
                            all.extend_from_slice(&data);
                            read = None;
                            joined = Some(all);
                        }
                        (_, Some(all)) => all.extend_from_slice(&data),
                    }
                    if len <= MAX_OFFERED_BODY {
                        continue;
                    }
                    None
                }
                Err(frame) => Some(Ok(frame)),
            },
            Poll::Ready(Some(Err(status))) => Some(Err(status)),
            Poll::Pending => None,
        };
        let data = joined.map(BytesMut::freeze).or(read);
        return ReadAhead::Partial(Prefixed {
            data,
            next,
            rest: Some(body),
        });
    }
}

/// A body that yields `data`, then `next`, then what `rest` yields.
struct Prefixed {
    data: Option<Bytes>,
    next: Option<Result<Frame<Bytes>, Status>>,
    rest: Option<Body>,
}

impl Prefixed {
    /// A body of `data` only.
    fn whole(data: Bytes) -> Self {
        Self {
            data: (!data.is_empty()).then_some(data),
            next: None,
            rest: None,
        }
    }
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(next) = self.next.take() {
            return Poll::Ready(Some(next));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
            && self.next.is_none()
            && self.rest.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self.data.as_ref().map_or(0, |d| d.len() as u64);
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint);
        if self.next.is_some() {
            // A frame of unknown size is still to come.
            hint = SizeHint::new();
        }
        let mut total = SizeHint::new();
        total.set_lower(hint.lower() + ahead);
        if let Some(upper) = hint.upper() {
            total.set_upper(upper + ahead);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A body that yields these frames in turn, `None` meaning one
    /// `Pending` (waking at once).
    struct Scripted(VecDeque<Option<Result<Frame<Bytes>, Status>>>);

    impl HttpBody for Scripted {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            match self.0.pop_front() {
                Some(Some(frame)) => Poll::Ready(Some(frame)),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    fn data(s: &'static [u8]) -> Option<Result<Frame<Bytes>, Status>> {
        Some(Ok(Frame::data(Bytes::from_static(s))))
    }

    fn request(frames: Vec<Option<Result<Frame<Bytes>, Status>>>) -> Request<Body> {
        let mut request = Request::new(Body::new(Scripted(frames.into())));
        *request.uri_mut() = "/greeter.Greeter/SayHello".parse().unwrap();
        request.headers_mut().insert("x-test", "1".parse().unwrap());
        request
    }

    async fn collect(request: Request<Body>) -> Result<Bytes, Status> {
        Ok(request.into_body().collect().await?.to_bytes())
    }

    fn offered(request: &Request<Body>) -> bool {
        request.headers().contains_key(MAY_HAND_BACK_HEADER)
    }

    #[tokio::test]
    async fn a_complete_body_is_offered_and_sent_whole_each_attempt() {
        let (first, offer) = OfferedCall::offer(request(vec![data(b"he"), data(b"llo")]), 2);
        let mut offer = offer.expect("offered");
        assert!(offered(&first));
        assert_eq!(first.headers()["x-test"], "1");
        assert_eq!(collect(first).await.unwrap(), "hello");

        // Handed back: one more offered attempt, then one sent plainly.
        assert!(offer.was_offered());
        let second = offer.attempt();
        assert!(offered(&second));
        assert!(offer.was_offered());
        assert_eq!(collect(second).await.unwrap(), "hello");
        let third = offer.attempt();
        assert!(!offered(&third), "no hand-backs left");
        assert!(!offer.was_offered());
        assert_eq!(third.uri().path(), "/greeter.Greeter/SayHello");
        assert_eq!(collect(third).await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn a_body_not_there_at_once_goes_out_unoffered_and_whole() {
        let (sent, offer) = OfferedCall::offer(request(vec![data(b"he"), None, data(b"llo")]), 1);
        assert!(offer.is_none());
        assert!(!offered(&sent));
        assert_eq!(collect(sent).await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn a_body_too_large_to_keep_goes_out_unoffered_and_whole() {
        let big = vec![7u8; MAX_OFFERED_BODY];
        let frames = vec![
            Some(Ok(Frame::data(Bytes::from(big)))),
            data(b"!"),
            data(b"tail"),
        ];
        let (sent, offer) = OfferedCall::offer(request(frames), 1);
        assert!(offer.is_none());
        let body = collect(sent).await.unwrap();
        assert_eq!(body.len(), MAX_OFFERED_BODY + 5);
        assert_eq!(&body[MAX_OFFERED_BODY..], b"!tail");
    }

    #[tokio::test]
    async fn a_body_error_read_ahead_reaches_the_connection_in_order() {
        let frames = vec![data(b"he"), Some(Err(Status::internal("boom")))];
        let (sent, offer) = OfferedCall::offer(request(frames), 1);
        assert!(offer.is_none());
        let mut body = sent.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "he");
        let error = body.frame().await.unwrap().unwrap_err();
        assert_eq!(error.message(), "boom");
    }

    #[tokio::test]
    async fn an_empty_body_is_offered() {
        let (sent, offer) = OfferedCall::offer(request(vec![]), 1);
        assert!(offer.is_some());
        assert!(sent.body().is_end_stream());
        assert_eq!(collect(sent).await.unwrap(), "");
    }

    #[test]
    fn a_hand_back_needs_the_busy_value_unavailable_and_a_valid_report() {
        use base64::Engine;
        use prost::Message;
        let encode = |pb: orca_lb_proto::pb::OrcaLoadReport| {
            let bytes = pb.encode_to_vec();
            let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
            HeaderValue::from_str(&text).unwrap()
        };
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        headers.insert(
            orca_lb_proto::TRAILER_KEY,
            encode(orca_lb_proto::pb::OrcaLoadReport {
                cpu_utilization: 0.5,
                ..Default::default()
            }),
        );
        assert!(!handed_back(&headers), "no header");
        headers.insert(HANDED_BACK_HEADER, HeaderValue::from_static("other"));
        assert!(!handed_back(&headers), "another value");
        headers.insert(
            HANDED_BACK_HEADER,
            HeaderValue::from_static(HANDED_BACK_BUSY),
        );
        assert!(handed_back(&headers));

        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(!handed_back(&headers), "not UNAVAILABLE");
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        headers.insert(
            orca_lb_proto::TRAILER_KEY,
            encode(orca_lb_proto::pb::OrcaLoadReport {
                cpu_utilization: f64::NAN,
                ..Default::default()
            }),
        );
        assert!(!handed_back(&headers), "an invalid report");
        headers.remove(orca_lb_proto::TRAILER_KEY);
        assert!(!handed_back(&headers), "no report");
    }
}
