//! The per-call `endpoint-load-metrics-bin` report, on every kind of response.

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use orca_lb_core::named_metrics;
use orca_lb_server::{CallRecorder, FixedSampler};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::{greeter, report_in};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::Code;
use tower::ServiceExt;

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

async fn backend() -> Backend {
    Backend::spawn(BackendConfig {
        capacity: Some(4),
        sampler: FixedSampler::new(0.25, 0.5),
        ..BackendConfig::named("b0")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn unary_reply_carries_the_report_in_its_trailers() {
    let b = backend().await;
    let mut client = greeter(b.url()).await;
    let response = client.say_hello(hello("a")).await.unwrap();
    let report = report_in(response.metadata());

    assert_eq!(report.cpu_utilization(), 0.25);
    assert_eq!(report.mem_utilization(), 0.5);
    assert!(report.application_utilization() > 0.0, "{report:?}");
    assert!(report.qps() > 0.0, "the call itself counts: {report:?}");
    assert_eq!(report.eps(), 0.0);
    // The reporting call has finished: it is no longer in flight.
    assert_eq!(report.in_flight(), Some(0.0));
    assert_eq!(report.active_streams(), Some(0.0));
    assert_eq!(report.queue_depth(), Some(0.0));
    assert_eq!(report.capacity(), Some(4.0));
    assert!(report.service_time_ms().is_some_and(|ms| ms >= 0.0));
}

#[tokio::test]
async fn server_stream_trailers_carry_the_report() {
    let b = backend().await;
    let mut client = greeter(b.url()).await;
    let req = HelloRequest {
        count: 3,
        ..hello("s")
    };
    let mut stream = client.say_hello_stream(req).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(reply) = stream.message().await.unwrap() {
        assert_eq!(reply.backend, "b0");
        n += 1;
    }
    assert_eq!(n, 3);
    let trailers = stream.trailers().await.unwrap().expect("trailers");
    let report = report_in(&trailers);
    assert_eq!(report.active_streams(), Some(0.0));
    assert_eq!(report.in_flight(), Some(0.0));
}

#[tokio::test]
async fn client_stream_reply_carries_the_report() {
    let b = backend().await;
    let mut client = greeter(b.url()).await;
    let requests = tokio_stream::iter(vec![hello("x"), hello("y")]);
    let response = client.collect_hellos(requests).await.unwrap();
    assert_eq!(response.get_ref().message, "hello, x, y");
    let report = report_in(response.metadata());
    assert_eq!(report.active_streams(), Some(0.0));
}

#[tokio::test]
async fn bidi_stream_trailers_carry_the_report() {
    let b = backend().await;
    let mut client = greeter(b.url()).await;
    let requests = tokio_stream::iter(vec![hello("x"), hello("y")]);
    let mut stream = client.chat(requests).await.unwrap().into_inner();
    let mut names = Vec::new();
    while let Some(reply) = stream.next().await {
        names.push(reply.unwrap().message);
    }
    assert_eq!(names, ["hello, x", "hello, y"]);
    let report = report_in(&stream.trailers().await.unwrap().expect("trailers"));
    assert_eq!(report.in_flight(), Some(0.0));
}

#[tokio::test]
async fn unary_error_keeps_its_status_and_carries_the_report() {
    let b = backend().await;
    let mut client = greeter(b.url()).await;
    let req = HelloRequest {
        fail_with_code: Code::ResourceExhausted as u32,
        ..hello("e")
    };
    let status = client.say_hello(req).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "failure requested by the caller");
    let report = report_in(status.metadata());
    assert!(
        report.eps() > 0.0,
        "the failed call counts as an error: {report:?}"
    );
}

#[tokio::test]
async fn stream_error_after_messages_carries_the_report() {
    let b = backend().await;
    let mut client = greeter(b.url()).await;
    let req = HelloRequest {
        count: 2,
        fail_with_code: Code::Unavailable as u32,
        ..hello("e")
    };
    let mut stream = client.say_hello_stream(req).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert!(stream.message().await.unwrap().is_some());
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let report = report_in(status.metadata());
    assert!(report.eps() > 0.0);
}

/// Sends one unary call as raw HTTP/2 through a tonic `Channel`, to see which
/// frame the report travels in.
async fn raw_unary(
    b: &Backend,
    req: HelloRequest,
) -> (http::HeaderMap, Bytes, Option<http::HeaderMap>) {
    let channel = tonic::transport::Endpoint::from_shared(b.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let msg = req.encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(msg.len() as u32);
    frame.put_slice(&msg);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/orca_lb.testing.v1.Greeter/SayHello", b.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(frame.freeze())))
        .unwrap();
    let response = channel.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (parts.headers, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn trailers_only_error_has_the_report_in_its_single_headers_frame() {
    let b = backend().await;
    let req = HelloRequest {
        fail_with_code: Code::PermissionDenied as u32,
        ..hello("t")
    };
    let (headers, data, trailers) = raw_unary(&b, req).await;
    assert_eq!(headers.get("grpc-status").unwrap(), "7");
    assert!(data.is_empty(), "a trailers-only response has no body");
    assert!(trailers.is_none(), "and no second headers frame");
    // A whole, valid report, counting this failed call as an error.
    let report = report_in(&tonic::metadata::MetadataMap::from_headers(headers));
    assert!(report.eps() > 0.0, "{report:?}");
    assert!(report.qps() >= report.eps(), "{report:?}");
}

#[tokio::test]
async fn success_has_the_report_in_trailers_not_headers() {
    let b = backend().await;
    let (headers, data, trailers) = raw_unary(&b, hello("ok")).await;
    assert!(headers.get(orca_lb_proto::TRAILER_KEY).is_none());
    assert!(!data.is_empty());
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert!(trailers.get(orca_lb_proto::TRAILER_KEY).is_some());
}

#[tokio::test]
async fn per_call_and_server_wide_metrics_are_sent() {
    let greeter_svc = TestGreeter::new("m").with_hook(|request| {
        let rec = CallRecorder::of(request).expect("the layer adds a recorder");
        rec.record_request_cost("db_reads", 2.5).unwrap();
        rec.record_utilization("gpu", 0.75).unwrap();
        // Opaque named metrics may be negative.
        rec.record_named_metric("balance", -3.0).unwrap();
        rec.record_named_metric("shared", 2.0).unwrap();
    });
    let b = Backend::spawn(BackendConfig {
        greeter: Some(greeter_svc),
        ..BackendConfig::named("m")
    })
    .await
    .unwrap();
    b.recorder().set_named_metric("shared", 1.0).unwrap();
    b.recorder().set_named_metric("server_only", 9.0).unwrap();
    b.recorder().set_application_utilization(0.6).unwrap();

    let mut client = greeter(b.url()).await;
    let response = client.say_hello(hello("m")).await.unwrap();
    let report = report_in(response.metadata());
    assert_eq!(report.request_cost("db_reads"), Some(2.5));
    assert_eq!(report.utilization("gpu"), Some(0.75));
    assert_eq!(report.named_metric("balance"), Some(-3.0));
    assert_eq!(report.named_metric("server_only"), Some(9.0));
    assert_eq!(report.named_metric("shared"), Some(2.0), "per-call wins");
    assert_eq!(report.application_utilization(), 0.6);
    // orca-lb's own metrics are still there; zero counts are left out and
    // read as zero.
    assert_eq!(report.named_metric(named_metrics::IN_FLIGHT), Some(0.0));
    assert_eq!(report.named_metric(named_metrics::QUEUE_DEPTH), None);
    assert_eq!(report.queue_depth(), Some(0.0));
    assert_eq!(report.named_metric(named_metrics::ACTIVE_STREAMS), None);
    assert_eq!(report.active_streams(), Some(0.0));
    // The recorder's server-wide view holds no per-call entries, and
    // clearing the application's utilization brings back the layer's own.
    b.recorder().clear_application_utilization();
    let report = b.recorder().report();
    assert!(report.request_cost("db_reads").is_none());
    assert!(report.named_metric("balance").is_none());
    assert_eq!(report.named_metric("server_only"), Some(9.0));
    assert_ne!(report.application_utilization(), 0.6);
}
