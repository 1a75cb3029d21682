//! The reporting layer on an axum router that serves plain HTTP routes beside
//! gRPC: only gRPC calls are counted, queued and reported.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use orca_lb_server::{FixedSampler, LoadRecorder, ReportingLayer};
use orca_lb_testkit::TestGreeter;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_tests::{greeter, report_in, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// One HTTP/1.1 GET on its own connection: the status line and the whole
/// response as text.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    (status, response)
}

/// A server with one worker slot: the greeter (gated) over gRPC, `/healthz`
/// and `/slow` (which waits until released) over plain HTTP, all behind one
/// reporting layer.
struct Server {
    addr: SocketAddr,
    greeter: TestGreeter,
    recorder: LoadRecorder,
    slow_entered: mpsc::UnboundedReceiver<()>,
    release_slow: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server() -> Server {
    let (layer, recorder) = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.2, 0.3))
        .capacity(1)
        .build()
        .unwrap();
    let greeter = TestGreeter::new("mixed").gated();
    let (entered_tx, slow_entered) = mpsc::unbounded_channel();
    let release_slow = Arc::new(Notify::new());
    let release = release_slow.clone();
    let router = tonic::service::Routes::new(GreeterServer::new(greeter.clone()))
        .into_axum_router()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/slow",
            get(move || {
                let entered = entered_tx.clone();
                let release = release.clone();
                async move {
                    let _ = entered.send(());
                    release.notified().await;
                    "done"
                }
            }),
        )
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Server {
        addr,
        greeter,
        recorder,
        slow_entered,
        release_slow,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_routes_are_served_but_not_counted_or_reported() {
    let mut s = server().await;

    let (status, response) = within("GET /healthz", http_get(s.addr, "/healthz")).await;
    assert!(status.contains(" 200 "), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    assert!(
        !response
            .to_ascii_lowercase()
            .contains(orca_lb_proto::TRAILER_KEY),
        "a plain HTTP response carries no load report: {response}"
    );

    // A plain request held open in its handler is not a call in flight.
    let slow = tokio::spawn(http_get(s.addr, "/slow"));
    within("/slow entered", s.slow_entered.recv())
        .await
        .unwrap();
    assert_eq!(s.recorder.in_flight(), 0, "a plain HTTP request is no call");

    // A gRPC call through the same router is counted while it runs and
    // reports; the held plain request is not in its report.
    let mut client = greeter(format!("http://{}", s.addr)).await;
    let call = tokio::spawn(async move { client.say_hello(HelloRequest::default()).await });
    within("the gRPC call in the handler", s.greeter.wait_entered(1)).await;
    assert_eq!(s.recorder.in_flight(), 1);
    s.greeter.open_gate(1);
    let response = within("the gRPC call", call).await.unwrap().unwrap();
    let report = report_in(response.metadata());
    assert_eq!(
        report.in_flight().unwrap_or(0.0),
        0.0,
        "the plain request held open is not counted in the report"
    );

    s.release_slow.notify_one();
    let (status, _) = within("/slow", slow).await.unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(s.recorder.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_routes_never_wait_for_a_worker_slot() {
    let s = server().await;
    // The only worker slot is taken by a gRPC call held in its handler.
    let mut client = greeter(format!("http://{}", s.addr)).await;
    let call = tokio::spawn(async move { client.say_hello(HelloRequest::default()).await });
    within("the gRPC call in the handler", s.greeter.wait_entered(1)).await;
    assert_eq!(s.recorder.in_flight(), 1);

    // Plain requests are answered at once: neither queued behind the call
    // (which would hang until the gate opens) nor shed as RESOURCE_EXHAUSTED.
    for _ in 0..20 {
        let (status, response) = within("GET /healthz", http_get(s.addr, "/healthz")).await;
        assert!(status.contains(" 200 "), "{response}");
        assert!(!response.contains("grpc-status"), "{response}");
    }
    assert_eq!(s.recorder.queue_depth(), 0);
    assert_eq!(s.recorder.in_flight(), 1);

    s.greeter.open_gate(1);
    within("the gRPC call", call).await.unwrap().unwrap();
}
