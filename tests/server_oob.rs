//! The out-of-band `OpenRcaService/StreamCoreMetrics` stream.

use std::time::Duration;

use orca_lb_core::LoadReport;
use orca_lb_proto::pb::OrcaLoadReportRequest;
use orca_lb_proto::pb::open_rca_service_client::OpenRcaServiceClient;
use orca_lb_proto::pb::open_rca_service_server::OpenRcaService;
use orca_lb_server::{FixedSampler, OrcaService, ReportingLayer};
use orca_lb_testkit::{Backend, BackendConfig};
use orca_lb_tests::{wait_until, within};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::{Code, Request};

fn request(interval: Option<Duration>) -> OrcaLoadReportRequest {
    OrcaLoadReportRequest {
        report_interval: interval.map(|d| d.try_into().unwrap()),
        request_cost_names: vec![],
    }
}

async fn service(min: Duration) -> OrcaService {
    let (_layer, recorder) = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.5, 0.25))
        .min_oob_interval(min)
        .build()
        .unwrap();
    OrcaService::new(recorder)
}

/// Times between the first `n` reports of a subscription, in virtual time.
async fn gaps(svc: &OrcaService, interval: Option<Duration>, n: usize) -> Vec<Duration> {
    let response = svc
        .stream_core_metrics(Request::new(request(interval)))
        .await
        .unwrap();
    let mut stream = response.into_inner();
    let start = Instant::now();
    let mut last = start;
    let mut out = Vec::new();
    for _ in 0..n {
        stream.next().await.unwrap().unwrap();
        let now = Instant::now();
        out.push(now - last);
        last = now;
    }
    out
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn first_report_at_once_then_at_the_requested_interval() {
    let svc = service(Duration::from_secs(1)).await;
    let g = gaps(&svc, Some(Duration::from_secs(5)), 4).await;
    assert_eq!(
        g,
        [
            Duration::ZERO,
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_secs(5)
        ]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn interval_below_the_minimum_is_clamped() {
    let svc = service(Duration::from_secs(2)).await;
    let g = gaps(&svc, Some(Duration::from_millis(100)), 3).await;
    assert_eq!(
        g,
        [
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(2)
        ]
    );
    // No interval at all: the minimum.
    let g = gaps(&svc, None, 2).await;
    assert_eq!(g, [Duration::ZERO, Duration::from_secs(2)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn negative_interval_is_invalid_argument() {
    let svc = service(Duration::from_secs(1)).await;
    let req = OrcaLoadReportRequest {
        report_interval: Some(prost_types_duration(-1, 0)),
        request_cost_names: vec![],
    };
    let status = svc
        .stream_core_metrics(Request::new(req))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("report_interval"),
        "{}",
        status.message()
    );
}

fn prost_types_duration(seconds: i64, nanos: i32) -> orca_lb_proto::prost_types::Duration {
    orca_lb_proto::prost_types::Duration { seconds, nanos }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stream_over_the_network_and_stop_when_the_client_leaves() {
    let b = Backend::spawn(BackendConfig {
        capacity: Some(3),
        sampler: FixedSampler::new(0.5, 0.25),
        min_oob_interval: Duration::from_millis(10),
        ..BackendConfig::named("oob")
    })
    .await
    .unwrap();
    b.recorder().set_named_metric("custom", 4.0).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(b.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OpenRcaServiceClient::new(channel);
    let mut stream = client
        .stream_core_metrics(request(Some(Duration::from_millis(20))))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        let pb = within("an OOB report", stream.message())
            .await
            .unwrap()
            .unwrap();
        let report = LoadReport::try_from(pb).expect("valid report");
        assert_eq!(report.cpu_utilization(), 0.5);
        assert_eq!(report.mem_utilization(), 0.25);
        assert_eq!(report.capacity(), Some(3.0));
        assert_eq!(report.named_metric("custom"), Some(4.0));
        assert!(report.application_utilization() > 0.0);
        assert!(
            report.as_raw().request_cost.is_empty(),
            "no per-call costs out of band"
        );
    }
    assert_eq!(b.recorder().oob_subscribers(), 1);

    // Many subscribers share the one tracker.
    let mut others = Vec::new();
    for _ in 0..20 {
        let mut c = client.clone();
        let mut s = c
            .stream_core_metrics(request(Some(Duration::from_secs(60))))
            .await
            .unwrap()
            .into_inner();
        within("first report", s.message()).await.unwrap().unwrap();
        others.push(s);
    }
    assert_eq!(b.recorder().oob_subscribers(), 21);

    drop(stream);
    drop(others);
    drop(client);
    wait_until("subscribers are released", || {
        b.recorder().oob_subscribers() == 0
    })
    .await;
}
