//! The reporting layer on a real server: its own out-of-band stream on the
//! README setup, and the cap on out-of-band subscribers.

use std::time::Duration;

use orca_lb_core::LoadReport;
use orca_lb_proto::pb::OrcaLoadReportRequest;
use orca_lb_proto::pb::open_rca_service_client::OpenRcaServiceClient;
use orca_lb_server::{FixedSampler, LoadRecorder, ReportingConfig, ReportingLayer};
use orca_lb_testkit::TestGreeter;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_tests::{greeter, wait_until, within};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

/// A server set up as the README shows: the layer with worker slots and no
/// streaming methods declared, the application's service and the
/// out-of-band service.
struct ReadmeServer {
    url: String,
    recorder: LoadRecorder,
    greeter: TestGreeter,
    stop: Option<oneshot::Sender<()>>,
}

impl ReadmeServer {
    async fn start(config: ReportingConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (layer, recorder) = ReportingLayer::builder()
            .config(config.with_min_oob_interval(Duration::from_millis(50)))
            .sampler(FixedSampler::new(0.1, 0.1))
            .build()
            .unwrap();
        let greeter = TestGreeter::new("readme").gated();
        let (tx, rx) = oneshot::channel::<()>();
        let router = Server::builder()
            .layer(layer)
            .add_service(GreeterServer::new(greeter.clone()))
            .add_service(recorder.oob_service());
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = rx.await;
        }));
        Self {
            url,
            recorder,
            greeter,
            stop: Some(tx),
        }
    }

    async fn oob_client(&self) -> OpenRcaServiceClient<Channel> {
        let channel = Endpoint::from_shared(self.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        OpenRcaServiceClient::new(channel)
    }
}

impl Drop for ReadmeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn request() -> OrcaLoadReportRequest {
    OrcaLoadReportRequest {
        report_interval: Some(Duration::from_millis(50).try_into().unwrap()),
        request_cost_names: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_subscribers_hold_no_worker_slot_and_are_not_queued_calls() {
    let server = ReadmeServer::start(ReportingConfig::default().with_capacity(Some(1))).await;
    // The only worker slot is busy.
    let mut client = greeter(server.url.clone()).await;
    let busy = tokio::spawn(async move {
        client
            .say_hello(HelloRequest {
                name: "busy".into(),
                ..Default::default()
            })
            .await
    });
    within("the busy call enters", server.greeter.wait_entered(1)).await;

    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut oob = server.oob_client().await;
        let mut stream = within("a subscription", oob.stream_core_metrics(request()))
            .await
            .unwrap()
            .into_inner();
        let first = within("the first report, with the slot busy", stream.message())
            .await
            .unwrap()
            .unwrap();
        LoadReport::try_from(first).unwrap();
        streams.push(stream);
    }
    assert_eq!(server.recorder.active_streams(), 20);
    assert_eq!(server.recorder.queue_depth(), 0, "no phantom queued calls");

    server.greeter.open_gate(1);
    within("the busy call", busy).await.unwrap().unwrap();
    wait_until("only the subscribers are in flight", || {
        server.recorder.in_flight() == 20
    })
    .await;
    // What clients read: nothing queued in any report, and, once the busy
    // call's end reaches the reports, every call in flight a stream. (Reports
    // sent while the busy call ran may still be on the way: one taken while
    // 19 subscribers and the busy call were in flight also says 20 in
    // flight.)
    within("a report after the busy call", async {
        loop {
            let pb = streams[0].message().await.unwrap().unwrap();
            let report = LoadReport::try_from(pb).unwrap();
            assert_eq!(report.queue_depth(), Some(0.0), "no phantom queued calls");
            if report.in_flight() == Some(20.0) && report.active_streams() == Some(20.0) {
                return;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_beyond_the_cap_are_refused_resource_exhausted() {
    let server = ReadmeServer::start(ReportingConfig::default().with_max_oob_subscribers(2)).await;
    let mut oob = server.oob_client().await;
    let first = oob.stream_core_metrics(request()).await.unwrap();
    let _second = oob.stream_core_metrics(request()).await.unwrap();
    let refused = oob.stream_core_metrics(request()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert_eq!(server.recorder.oob_subscribers(), 2);

    drop(first);
    wait_until("the first subscriber is gone", || {
        server.recorder.oob_subscribers() == 1
    })
    .await;
    oob.stream_core_metrics(request())
        .await
        .expect("room again");
}
