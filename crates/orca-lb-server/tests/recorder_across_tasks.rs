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
async fn behind_a_buffer_a_handler_that_asks_in_call_finds_no_recorder() {
    let layer = layer(ReportingConfig::default()).await;
    let found = Arc::new(Mutex::new(Vec::new()));
    let seen = found.clone();
    // The buffer's worker task runs the handler's `call`, outside the layer.
    let handler = tower::service_fn(move |request: Request<()>| {
        seen.lock().push(record(CallRecorder::of_http(&request)));
        std::future::ready(Ok::<_, Infallible>(ok()))
    });
    let svc = layer.layer(Buffer::new(handler, 8));
    let response = svc.oneshot(grpc_call()).await.unwrap();
    assert_eq!(*found.lock(), [false]);
    assert_eq!(db_reads(response.headers()), None, "nothing recorded");
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

#[tokio::test]
async fn a_tonic_handler_run_on_a_task_of_its_own_finds_no_recorder() {
    let layer = layer(ReportingConfig::default()).await;
    let found = Arc::new(Mutex::new(Vec::new()));
    let seen = found.clone();
    let greeter = GreeterServer::new(TestGreeter::new("g").with_hook(move |request| {
        seen.lock().push(record(CallRecorder::of(request)));
    }));
    // A service between the layer and the handler that serves each call on
    // a task it spawns.
    let spawning = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let greeter = greeter.clone();
        async move {
            tokio::spawn(greeter.oneshot(request))
                .await
                .expect("the call's task ends")
        }
    });
    let response = layer.layer(spawning).oneshot(say_hello()).await.unwrap();
    let body = response.into_body().collect().await.unwrap();
    let trailers = body.trailers().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(*found.lock(), [false]);
    assert_eq!(db_reads(trailers), None, "nothing recorded");
}
