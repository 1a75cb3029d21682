//! `CallRecorder::of` when something between the layer and the handler runs
//! the handler's code on another task: a tower `Buffer`, whose worker task
//! calls the wrapped service (and hands its future back to the caller's
//! task), or a service that serves each call on a task it spawns.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use orca_lb_server::{CallRecorder, FixedSampler, ReportingConfig, ReportingLayer};
use orca_lb_testkit::TestGreeter;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use parking_lot::Mutex;
use prost::Message;
use support::{grpc_call, report};
use tower::ServiceExt;
use tower::buffer::Buffer;
use tower_layer::Layer;

async fn layer(config: ReportingConfig) -> ReportingLayer {
    let (layer, _) = ReportingLayer::builder()
        .config(config)
        .sampler(FixedSampler::new(0.5, 0.25))
        .build()
        .unwrap();
    layer
}

/// A trailers-only gRPC OK.
fn ok() -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    response
        .headers_mut()
        .insert("grpc-status", HeaderValue::from_static("0"));
    response
}

/// Records `db_reads` = 3 into `recorder` if there is one, and says whether
/// there was.
fn record(recorder: Option<CallRecorder>) -> bool {
    recorder.is_some_and(|r| r.record_request_cost("db_reads", 3.0).is_ok())
}

/// The `db_reads` request cost of the report in `headers`, if it has one.
fn db_reads(headers: &http::HeaderMap) -> Option<f64> {
    report(headers).0.request_cost.get("db_reads").copied()
}

#[tokio::test]
async fn behind_a_buffer_a_handler_that_asks_in_its_future_finds_its_recorder() {
    let layer = layer(ReportingConfig::default()).await;
    // The buffer hands the handler's future back to the layer's task, which
    // polls it with the call current.
    let handler = tower::service_fn(|request: Request<()>| async move {
        assert!(record(CallRecorder::of_http(&request)));
        Ok::<_, Infallible>(ok())
    });
    let svc = layer.layer(Buffer::new(handler, 8));
    let response = svc.oneshot(grpc_call()).await.unwrap();
    assert_eq!(db_reads(response.headers()), Some(3.0));
}

/// A `SayHello` request as tonic's server hands it on: one uncompressed
/// gRPC frame.
fn say_hello() -> Request<Full<Bytes>> {
    let message = HelloRequest {
        name: "you".into(),
        ..Default::default()
    };
    let mut frame = Vec::new();
    frame.put_u8(0);
    frame.put_u32(u32::try_from(message.encoded_len()).unwrap());
    message.encode(&mut frame).unwrap();
    Request::post("/orca_lb.testing.v1.Greeter/SayHello")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(Bytes::from(frame)))
        .unwrap()
}

#[tokio::test]
async fn behind_a_buffer_a_tonic_handler_finds_its_recorder() {
    let layer = layer(ReportingConfig::default()).await;
    let found = Arc::new(Mutex::new(Vec::new()));
    let seen = found.clone();
    // tonic's generated service runs the handler in the future it returns.
    let greeter = TestGreeter::new("g").with_hook(move |request| {
        seen.lock().push(record(CallRecorder::of(request)));
    });
    let svc = layer.layer(Buffer::new(GreeterServer::new(greeter), 8));
    let response = svc.oneshot(say_hello()).await.unwrap();
    let body = response.into_body().collect().await.unwrap();
    let trailers = body.trailers().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(*found.lock(), [true]);
    assert_eq!(db_reads(trailers), Some(3.0));
}

/// What [`ok`] answers with, at once.
type Answer = std::future::Ready<Result<Response<Empty<Bytes>>, Infallible>>;

/// A `Buffer` over a handler that asks for its recorder in `call` (which the
/// buffer's worker task runs), records in it, and pushes to `found` whether
/// it found it.
fn buffered_asking_in_call(found: &Arc<Mutex<Vec<bool>>>) -> Buffer<Request<()>, Answer> {
    let seen = found.clone();
    let handler = tower::service_fn(move |request: Request<()>| {
        seen.lock().push(record(CallRecorder::of_http(&request)));
        std::future::ready(Ok::<_, Infallible>(ok()))
    });
    Buffer::new(handler, 8)
}

/// A tonic greeter that records in its recorder and pushes to `found`
/// whether it found it, behind a service that serves each call on a task it
/// spawns.
fn greeter_on_a_task_of_its_own(
    found: &Arc<Mutex<Vec<bool>>>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<tonic::body::Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    let seen = found.clone();
    let greeter = GreeterServer::new(TestGreeter::new("g").with_hook(move |request| {
        seen.lock().push(record(CallRecorder::of(request)));
    }));
    tower::service_fn(move |request: Request<Full<Bytes>>| {
        let greeter = greeter.clone();
        async move {
            tokio::spawn(greeter.oneshot(request))
                .await
                .expect("the call's task ends")
        }
    })
}

/// The trailers of a tonic response, checked for an OK status.
async fn ok_trailers(
    response: Response<impl http_body::Body<Error: std::fmt::Debug>>,
) -> http::HeaderMap {
    let body = response.into_body().collect().await.unwrap();
    let trailers = body.trailers().expect("trailers").clone();
    assert_eq!(trailers["grpc-status"], "0");
    trailers
}

// The only test here whose handlers miss their recorder: the warning is
// logged once per process.
#[tokio::test]
async fn by_default_a_handler_run_on_another_task_finds_no_recorder_and_it_is_logged_once() {
    let (logs, _guard) = support::Logs::capture();
    let layer = layer(ReportingConfig::default()).await;
    let found = Arc::new(Mutex::new(Vec::new()));
    let svc = layer.layer(buffered_asking_in_call(&found));
    let response = svc.clone().oneshot(grpc_call()).await.unwrap();
    assert_eq!(db_reads(response.headers()), None, "nothing recorded");
    let response = svc.oneshot(grpc_call()).await.unwrap();
    assert_eq!(db_reads(response.headers()), None, "nothing recorded");

    let svc = layer.layer(greeter_on_a_task_of_its_own(&found));
    let trailers = ok_trailers(svc.oneshot(say_hello()).await.unwrap()).await;
    assert_eq!(db_reads(&trailers), None, "nothing recorded");
    assert_eq!(*found.lock(), [false, false, false]);

    let warnings: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN") && l.contains("call_recorder_in_extensions"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", logs.lines());
}

#[tokio::test]
async fn with_the_recorder_in_the_extensions_a_handler_run_on_another_task_finds_it() {
    let config = ReportingConfig::default().with_call_recorder_in_extensions(true);
    let layer = layer(config).await;
    let found = Arc::new(Mutex::new(Vec::new()));
    let svc = layer.layer(buffered_asking_in_call(&found));
    for _ in 0..3 {
        let response = svc.clone().oneshot(grpc_call()).await.unwrap();
        assert_eq!(db_reads(response.headers()), Some(3.0));
    }

    let svc = layer.layer(greeter_on_a_task_of_its_own(&found));
    let trailers = ok_trailers(svc.oneshot(say_hello()).await.unwrap()).await;
    assert_eq!(db_reads(&trailers), Some(3.0));
    assert_eq!(*found.lock(), [true, true, true, true]);
}

#[tokio::test]
async fn with_the_recorder_in_the_extensions_a_task_the_handler_spawns_finds_it() {
    let config = ReportingConfig::default().with_call_recorder_in_extensions(true);
    let layer = layer(config).await;
    // The handler hands the whole request to a task, which asks.
    let handler = tower::service_fn(|request: Request<()>| async move {
        let found = tokio::spawn(async move { record(CallRecorder::of_http(&request)) })
            .await
            .unwrap();
        assert!(found);
        Ok::<_, Infallible>(ok())
    });
    let response = layer.layer(handler).oneshot(grpc_call()).await.unwrap();
    assert_eq!(db_reads(response.headers()), Some(3.0));
}

#[tokio::test]
async fn a_recorder_found_in_a_request_kept_past_its_call_refuses_records_and_is_not_reused() {
    let config = ReportingConfig::default().with_call_recorder_in_extensions(true);
    let layer = layer(config).await;
    let kept = Arc::new(Mutex::new(None));
    let keep = kept.clone();
    let first = tower::service_fn(move |request: Request<()>| {
        *keep.lock() = Some(request);
        std::future::ready(Ok::<_, Infallible>(ok()))
    });
    let response = layer.layer(first).oneshot(grpc_call()).await.unwrap();
    assert_eq!(db_reads(response.headers()), None);
    let request = kept.lock().take().expect("kept");
    let late = CallRecorder::of_http(&request).expect("in the request");
    assert_eq!(
        late.record_request_cost("late", 1.0),
        Err(orca_lb_server::RecordError::CallEnded)
    );
    // The next call on this thread gets a recorder of its own: the kept one
    // still refuses while that call runs.
    let second = tower::service_fn(move |request: Request<()>| {
        let late = late.clone();
        async move {
            assert!(record(CallRecorder::of_http(&request)));
            assert_eq!(
                late.record_request_cost("late", 1.0),
                Err(orca_lb_server::RecordError::CallEnded)
            );
            Ok::<_, Infallible>(ok())
        }
    });
    let response = layer.layer(second).oneshot(grpc_call()).await.unwrap();
    let (pb, _) = report(response.headers());
    assert_eq!(pb.request_cost.get("db_reads"), Some(&3.0));
    assert!(!pb.request_cost.contains_key("late"));
    drop(request);
}
