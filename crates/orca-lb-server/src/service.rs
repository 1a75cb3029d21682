//! The service that tracks each call and reports load in its trailers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tokio::sync::futures::OwnedNotified;
use tonic::server::NamedService;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::call_recorder::CallRecorder;
use crate::current_call::{LayeredCall, OwnedCall, Serving};
use crate::future::ResponseFuture;
use crate::grpc_request::is_grpc;
use crate::in_flight_call::InFlightCall;
use crate::shed::Shed;
use crate::tracker::{LoadTracker, OOB_METHOD};

/// Tracks the load of the service it wraps and sends an ORCA
/// `OrcaLoadReport` with every response: in the trailers, or in the headers
/// of a trailers-only response. Made by [`ReportingLayer`](crate::ReportingLayer).
///
/// Requests that are not gRPC calls (their `content-type` is not
/// `application/grpc...`) pass through untouched: plain HTTP routes served
/// beside gRPC are not counted and get no report.
///
/// With worker slots, a unary call that finds `max_queue_depth` calls waiting,
/// or waits `max_queue_wait` for a slot, is answered `RESOURCE_EXHAUSTED`; one
/// its client offers for hand-back that finds every slot taken and
/// `hand_back_queue_depth` calls waiting is handed back `UNAVAILABLE`. With
/// [`backpressure`](crate::ReportingConfig::backpressure), `poll_ready` is
/// pending while the queue is full; otherwise it is the wrapped service's.
#[derive(Debug)]
pub struct Reporting<S> {
    inner: S,
    tracker: Arc<LoadTracker>,
    /// With backpressure, while the queue is full: woken when a call leaves it.
    queue_space: Option<Pin<Box<OwnedNotified>>>,
}

impl<S: Clone> Clone for Reporting<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.tracker.clone())
    }
}

impl<S> Reporting<S> {
    pub(crate) fn new(inner: S, tracker: Arc<LoadTracker>) -> Self {
        Self {
            inner,
            tracker,
            queue_space: None,
        }
    }

    /// Pending while backpressure is on and the layer's queue is full.
    fn poll_queue_space(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.tracker.config.backpressure || self.tracker.slots.is_none() {
            return Poll::Ready(());
        }
        loop {
            if !self.tracker.queue_full() {
                self.queue_space = None;
                return Poll::Ready(());
            }
            let tracker = &self.tracker;
            let notified = self
                .queue_space
                .get_or_insert_with(|| Box::pin(tracker.queue_space.clone().notified_owned()));
            // Registered before the second look, so a call leaving the queue
            // in between still wakes this one.
            notified.as_mut().enable();
            if !self.tracker.queue_full() {
                self.queue_space = None;
                return Poll::Ready(());
            }
            ready!(notified.as_mut().poll(cx));
            self.queue_space = None;
        }
    }

    /// Calls the wrapped service with the call's recorder current, for a
    /// service that asks for it in `call` rather than in its future.
    fn call_inner<ReqBody>(
        &mut self,
        request: Request<ReqBody>,
        recorder: &mut Option<CallRecorder>,
    ) -> S::Future
    where
        S: Service<Request<ReqBody>>,
    {
        let _serving = Serving::enter(recorder);
        self.inner.call(request)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Reporting<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_queue_space(cx));
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if !is_grpc(&request) {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        let now = tokio::time::Instant::now().into_std();
        let stream = self.tracker.streaming.contains(request.uri().path());
        let mut recorder = self.tracker.config.call_recorder.then(|| {
            let recorder = CallRecorder::new(&self.tracker);
            if self.tracker.config.call_recorder_in_extensions {
                // For handlers that run on another task: one box per call.
                request.extensions_mut().insert(OwnedCall(recorder.clone()));
            } else {
                // No size, so boxing it in the extensions allocates nothing.
                request.extensions_mut().insert(LayeredCall);
            }
            recorder
        });
        let mut guard = InFlightCall::start(self.tracker.clone(), stream);
        if stream && request.uri().path() != OOB_METHOD {
            guard.set_max_age(self.tracker.config.max_stream_age);
        }

        let slots = if stream {
            None
        } else {
            self.tracker.slots.as_ref()
        };
        match slots {
            None => {
                guard.begin_service(None, now);
                let future = self.call_inner(request, &mut recorder);
                ResponseFuture::running(future, guard, recorder)
            }
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    guard.begin_service(Some(permit), now);
                    let future = self.call_inner(request, &mut recorder);
                    ResponseFuture::running(future, guard, recorder)
                }
                Err(_) if self.tracker.hands_back() && offers_hand_back(&request) => {
                    ResponseFuture::refused(Shed::HandBack, guard)
                }
                Err(_) if self.tracker.queue_full() => {
                    ResponseFuture::refused(Shed::QueueFull, guard)
                }
                Err(_) => {
                    // Wait for a slot. The ready service goes with the call
                    // (its readiness was reserved for this request); a clone
                    // takes its place.
                    guard.enqueue(now);
                    let clone = self.inner.clone();
                    let service = std::mem::replace(&mut self.inner, clone);
                    ResponseFuture::queued(slots.clone(), service, request, guard, recorder)
                }
            },
        }
    }
}

/// Whether the call's client offers it to be handed back.
fn offers_hand_back<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(orca_lb_proto::MAY_HAND_BACK_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
}

impl<S: NamedService> NamedService for Reporting<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full};
    use tower_layer::Layer;

    use super::*;
    use crate::{FixedSampler, ReportingLayer};

    /// A handler that answers with a gRPC OK in its trailers and says whether
    /// it found a `CallRecorder`; with a `cost`, it records it as the
    /// request cost `db_reads`, and with `kept`, it keeps its recorder there.
    #[derive(Clone, Default)]
    struct Probe {
        cost: Option<f64>,
        kept: Option<Arc<parking_lot::Mutex<Option<CallRecorder>>>>,
    }

    impl Service<Request<()>> for Probe {
        type Response = Response<http_body_util::combinators::BoxBody<bytes::Bytes, Infallible>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<()>) -> Self::Future {
            let recorder = CallRecorder::of_http(&req);
            let recorder = recorder.as_ref();
            if let (Some(recorder), Some(cost)) = (recorder, self.cost) {
                recorder.record_request_cost("db_reads", cost).unwrap();
            }
            if let (Some(recorder), Some(kept)) = (recorder, &self.kept) {
                *kept.lock() = Some(recorder.clone());
            }
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let found = if recorder.is_some() { "found" } else { "none" };
            let body = Full::new(bytes::Bytes::from(found))
                .with_trailers(std::future::ready(Some(Ok(trailers))))
                .boxed();
            std::future::ready(Ok(Response::new(body)))
        }
    }

    /// The decoded bytes of the report a call through `svc` gets.
    async fn report_of<S>(svc: &mut S) -> Vec<u8>
    where
        S: Service<
                Request<()>,
                Response = Response<
                    crate::ResponseBody<
                        http_body_util::combinators::BoxBody<bytes::Bytes, Infallible>,
                    >,
                >,
            >,
        S::Error: std::fmt::Debug,
    {
        use base64::Engine;
        let response = svc.call(request("application/grpc")).await.unwrap();
        let collected = response.into_body().collect().await.unwrap();
        let value = collected.trailers().unwrap()[orca_lb_proto::TRAILER_KEY].clone();
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(value.as_bytes())
            .unwrap()
    }

    fn mentions(report: &[u8], name: &str) -> bool {
        report.windows(name.len()).any(|w| w == name.as_bytes())
    }

    #[tokio::test]
    async fn a_reused_recorder_carries_nothing_from_its_last_call() {
        let (layer, _) = ReportingLayer::builder()
            .sampler(FixedSampler::new(0.1, 0.1))
            .build()
            .unwrap();
        // One thread: the second call gets the first call's recorder back.
        let mut recording = layer.layer(Probe {
            cost: Some(3.0),
            kept: None,
        });
        assert!(mentions(&report_of(&mut recording).await, "db_reads"));
        let mut silent = layer.layer(Probe::default());
        for _ in 0..3 {
            let report = report_of(&mut silent).await;
            assert!(!mentions(&report, "db_reads"), "{report:?}");
        }
    }

    #[tokio::test]
    async fn a_value_recorded_after_the_report_went_out_is_refused() {
        let (layer, _) = ReportingLayer::builder()
            .sampler(FixedSampler::new(0.1, 0.1))
            .build()
            .unwrap();
        let kept = Arc::new(parking_lot::Mutex::new(None));
        let mut svc = layer.layer(Probe {
            cost: Some(1.0),
            kept: Some(kept.clone()),
        });
        assert!(mentions(&report_of(&mut svc).await, "db_reads"));
        let late = kept.lock().take().expect("kept");
        assert_eq!(
            late.record_request_cost("late", 1.0),
            Err(crate::RecordError::CallEnded)
        );
        // The kept recorder was not handed to the next call.
        let mut silent = layer.layer(Probe::default());
        let report = report_of(&mut silent).await;
        assert!(!mentions(&report, "db_reads") && !mentions(&report, "late"));
        drop(late);
        drop(layer);
    }

    fn request(content_type: &str) -> Request<()> {
        Request::builder()
            .method("POST")
            .uri("/orca_lb.testing.v1.Greeter/SayHello")
            .header(http::header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
    }

    async fn call(layer: &ReportingLayer) -> (String, bool) {
        call_with(layer, "application/grpc").await
    }

    async fn call_with(layer: &ReportingLayer, content_type: &str) -> (String, bool) {
        let mut svc = layer.layer(Probe::default());
        let response = svc.call(request(content_type)).await.unwrap();
        let collected = response.into_body().collect().await.unwrap();
        let has_report = collected
            .trailers()
            .is_some_and(|t| t.contains_key(orca_lb_proto::TRAILER_KEY));
        let text = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
        (text, has_report)
    }

    #[tokio::test]
    async fn the_call_recorder_can_be_turned_off_and_reports_still_go_out() {
        let (on, _) = ReportingLayer::builder()
            .sampler(FixedSampler::new(0.1, 0.1))
            .build()
            .unwrap();
        assert_eq!(call(&on).await, ("found".to_string(), true));
        let (off, _) = ReportingLayer::builder()
            .sampler(FixedSampler::new(0.1, 0.1))
            .call_recorder(false)
            .build()
            .unwrap();
        assert_eq!(call(&off).await, ("none".to_string(), true));
    }

    #[tokio::test]
    async fn requests_that_are_not_grpc_pass_through_uncounted() {
        let (layer, recorder) = ReportingLayer::builder()
            .sampler(FixedSampler::new(0.1, 0.1))
            .build()
            .unwrap();
        // The handler's trailers go out as they are: no report, no recorder.
        assert_eq!(
            call_with(&layer, "application/json").await,
            ("none".to_string(), false)
        );
        let mut svc = layer.layer(Probe::default());
        let pending = svc.call(request("text/html"));
        assert_eq!(recorder.in_flight(), 0, "a plain HTTP request is no call");
        drop(pending);
        // A gRPC call through the same layer is counted and reported.
        let pending = svc.call(request("application/grpc+proto"));
        assert_eq!(recorder.in_flight(), 1);
        drop(pending);
        assert_eq!(recorder.in_flight(), 0);
        assert_eq!(call(&layer).await, ("found".to_string(), true));
    }
}
