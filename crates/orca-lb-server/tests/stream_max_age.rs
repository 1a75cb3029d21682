//! Streams ended at their max age: after the message in flight, UNAVAILABLE
//! with the report, jittered; streams without one run their course.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use orca_lb_server::{FixedSampler, LoadRecorder, ReportingLayer, ResponseBody, StreamingMethods};
use support::report;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

const PATH: &str = "/test.Feed/Watch";

/// A response body fed frame by frame through a channel; the default one
/// is empty.
#[derive(Default)]
struct ChannelBody(Option<mpsc::Receiver<Frame<Bytes>>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Some(rx) => rx.poll_recv(cx).map(|f| f.map(Ok)),
            None => Poll::Ready(None),
        }
    }
}

/// A streaming handler whose response body is fed by the test: each call
/// hands its sender over the channel.
#[derive(Clone)]
struct Feed(mpsc::UnboundedSender<mpsc::Sender<Frame<Bytes>>>);

impl Service<Request<()>> for Feed {
    type Response = Response<ChannelBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let (tx, rx) = mpsc::channel(16);
        self.0.send(tx).expect("the test holds the receiver");
        Box::pin(async move { Ok(Response::new(ChannelBody(Some(rx)))) })
    }
}

async fn layer(max_age: Option<Duration>) -> (ReportingLayer, LoadRecorder) {
    let mut builder = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.1, 0.1))
        .streaming_methods(StreamingMethods::new().with(PATH));
    if let Some(age) = max_age {
        builder = builder.max_stream_age(age);
    }
    builder.build().unwrap()
}

/// One gRPC message of `len` bytes, prefix included.
fn message(len: u32) -> Bytes {
    let mut m = vec![0u8];
    m.extend_from_slice(&len.to_be_bytes());
    m.extend(std::iter::repeat_n(1u8, len as usize));
    Bytes::from(m)
}

fn ok_trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    t
}

/// Opens a stream through the layer: its response body and the sender
/// that feeds it.
async fn open(
    svc: &mut orca_lb_server::Reporting<Feed>,
    senders: &mut mpsc::UnboundedReceiver<mpsc::Sender<Frame<Bytes>>>,
) -> (ResponseBody<ChannelBody>, mpsc::Sender<Frame<Bytes>>) {
    let request = Request::builder()
        .uri(PATH)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    let tx = senders.recv().await.expect("the handler ran");
    (response.into_body(), tx)
}

/// Reads the body to its end: the data bytes, and the trailers.
async fn read_to_end(body: &mut ResponseBody<ChannelBody>) -> (usize, Option<HeaderMap>) {
    let mut data = 0;
    while let Some(frame) = body.frame().await {
        match frame.unwrap().into_trailers() {
            Ok(t) => return (data, Some(t)),
            Err(f) => data += f.into_data().map_or(0, |d| d.len()),
        }
    }
    (data, None)
}

#[tokio::test(start_paused = true)]
async fn a_stream_past_its_max_age_ends_unavailable_after_the_message_in_flight() {
    let (layer, recorder) = layer(Some(Duration::from_secs(10))).await;
    let (feed, mut senders) = mpsc::unbounded_channel();
    let mut svc = layer.layer(Feed(feed));
    let (mut body, tx) = open(&mut svc, &mut senders).await;
    let opened = Instant::now();
    let deadline = body.max_age_deadline().expect("a stream with a max age");
    let age = deadline - opened;
    assert!(
        (Duration::from_secs(9)..=Duration::from_secs(11)).contains(&age),
        "max age within ±10 %: {age:?}"
    );
    assert_eq!(recorder.active_streams(), 1);

    // Whole messages every second until just before the deadline, then one
    // message cut in two around it: its second half comes 500 ms after the
    // deadline.
    let (sent_tx, sent_rx) = oneshot::channel();
    let producer = tokio::spawn(async move {
        let mut sent = 0usize;
        let whole = message(20);
        while Instant::now() + Duration::from_secs(1) < deadline - Duration::from_millis(100) {
            tx.send(Frame::data(whole.clone())).await.unwrap();
            sent += whole.len();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep_until(deadline - Duration::from_millis(100)).await;
        let cut = message(20);
        tx.send(Frame::data(cut.slice(..9))).await.unwrap();
        tokio::time::sleep_until(deadline + Duration::from_millis(500)).await;
        tx.send(Frame::data(cut.slice(9..))).await.unwrap();
        sent += cut.len();
        sent_tx.send(sent).unwrap();
        // Anything more must not be read: the body ended.
        let _ = tx.send(Frame::data(message(20))).await;
        tx.closed().await;
    });

    let (data, trailers) = tokio::time::timeout(Duration::from_secs(60), read_to_end(&mut body))
        .await
        .expect("the stream ends by its max age");
    let ended = Instant::now();
    let trailers = trailers.expect("the stream ends with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "14", "UNAVAILABLE");
    assert_eq!(
        trailers.get("grpc-message").unwrap(),
        "stream max age reached"
    );
    assert_eq!(
        trailers.get(orca_lb_proto::STREAM_ENDED_TRAILER).unwrap(),
        orca_lb_proto::STREAM_ENDED_MAX_AGE
    );
    let (load, _) = report(&trailers);
    assert!(load.named_metrics.contains_key("in_flight"), "{load:?}");
    // Every byte of the message in flight at the deadline, then the end.
    assert_eq!(data, sent_rx.await.unwrap());
    assert!(
        ended >= deadline + Duration::from_millis(500),
        "after the message"
    );
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none(), "nothing after the trailers");
    assert_eq!(recorder.active_streams(), 0);
    // Not an error of the server's.
    assert_eq!(recorder.report().eps(), 0.0);
    drop(body);
    tokio::time::timeout(Duration::from_secs(5), producer)
        .await
        .expect("the handler sees the stream closed")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn streams_that_end_first_or_have_no_max_age_end_as_their_handler_says() {
    for max_age in [Some(Duration::from_secs(10)), None] {
        let (layer, recorder) = layer(max_age).await;
        let (feed, mut senders) = mpsc::unbounded_channel();
        let mut svc = layer.layer(Feed(feed));
        let (mut body, tx) = open(&mut svc, &mut senders).await;
        let run_for = if max_age.is_some() { 5 } else { 100 };
        tokio::spawn(async move {
            for _ in 0..run_for {
                tx.send(Frame::data(message(3))).await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tx.send(Frame::trailers(ok_trailers())).await.unwrap();
        });
        let (data, trailers) =
            tokio::time::timeout(Duration::from_secs(200), read_to_end(&mut body))
                .await
                .expect("the stream ends when its handler ends it");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0", "{max_age:?}");
        assert!(trailers.get(orca_lb_proto::STREAM_ENDED_TRAILER).is_none());
        assert_eq!(data, run_for * 8, "{max_age:?}");
        assert_eq!(recorder.active_streams(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn streams_opened_together_get_max_ages_spread_over_the_jitter() {
    let (layer, _recorder) = layer(Some(Duration::from_secs(10))).await;
    let (feed, mut senders) = mpsc::unbounded_channel();
    let mut svc = layer.layer(Feed(feed));
    let opened = Instant::now();
    let mut ages = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..50 {
        let (body, tx) = open(&mut svc, &mut senders).await;
        ages.push((body.max_age_deadline().unwrap() - opened).as_secs_f64());
        keep.push((body, tx));
    }
    assert!(ages.iter().all(|a| (9.0..=11.0).contains(a)), "{ages:?}");
    // Spread over the range, not bunched (each half of the range is hit;
    // 50 draws all missing one quarter has odds below 1e-6).
    assert!(ages.iter().any(|&a| a < 9.5), "{ages:?}");
    assert!(ages.iter().any(|&a| a > 10.5), "{ages:?}");
}

#[tokio::test(start_paused = true)]
async fn a_zero_max_age_is_refused_by_name() {
    let err = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.1, 0.1))
        .max_stream_age(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid reporting config: max_stream_age must be greater than zero"
    );
}
