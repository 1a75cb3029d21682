//! Backends the balancer does not control: what they send is checked,
//! bounded and logged without flooding.

use std::pin::Pin;
use std::time::{Duration, Instant};

use orca_lb_client::Balancer;
use orca_lb_proto::pb::OrcaLoadReport;
use orca_lb_testkit::ServiceTime;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::client::config;
use orca_lb_tests::corrupt::corrupt_greeter;
use orca_lb_tests::log_capture::SharedBuf;
use orca_lb_tests::{wait_until, within};
use prost::Message;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// A report with a NaN metric under an 8 KiB name full of terminal escapes.
fn hostile_report() -> http::HeaderValue {
    use base64::Engine;
    let name = "\u{1b}[2J\u{1b}[31mFAKE LOG LINE\n".repeat(8 * 1024 / 24);
    let pb = OrcaLoadReport {
        named_metrics: [(name, f64::NAN)].into(),
        ..Default::default()
    };
    let text = base64::engine::general_purpose::STANDARD.encode(pb.encode_to_vec());
    http::HeaderValue::from_str(&text).unwrap()
}

#[tokio::test]
async fn garbage_on_every_call_is_logged_once_then_summarised() {
    let logs = SharedBuf::default();
    let subscriber = logs.subscriber(tracing::Level::INFO);
    // This test's runtime is single-threaded: every task logs here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let interval = Duration::from_millis(100);
    let (url, server) = corrupt_greeter("corrupt", ServiceTime::default(), hostile_report()).await;
    let b = Balancer::from_uris(config().with_report_log_interval(interval), [&url]).unwrap();
    within("discovery", b.wait_for_endpoints(1)).await;
    let mut c = GreeterClient::new(b.clone());
    let calls = 300u64;
    let started = Instant::now();
    for _ in 0..calls {
        within("a call", c.say_hello(HelloRequest::default()))
            .await
            .expect("calls still succeed");
    }
    assert_eq!(b.snapshot().endpoints[0].invalid_reports, calls);

    // Every invalid report is accounted for: the first logged, the others
    // in summaries.
    let summarised = || {
        logs.lines("ignored invalid load reports")
            .iter()
            .map(|l| {
                let count = l.split("count=").nth(1).expect("a count");
                count.split(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum::<u64>()
    };
    wait_until("every invalid report summarised", || {
        summarised() == calls - 1
    })
    .await;
    let elapsed = started.elapsed();
    let first = logs.lines("ignored an invalid load report");
    let summaries = logs.lines("ignored invalid load reports");
    assert_eq!(first.len(), 1, "{first:?}");
    let bound = 2 + (elapsed.as_millis() / interval.as_millis()) as usize;
    assert!(
        summaries.len() <= bound,
        "{} summaries in {elapsed:?}",
        summaries.len()
    );
    let text = logs.text();
    for line in text.lines() {
        assert!(line.len() < 2048, "a line of {} bytes", line.len());
    }
    assert!(!text.contains('\u{1b}'), "raw escapes reached the log");
    assert!(
        !text.contains("\nFAKE LOG LINE"),
        "a forged line reached the log"
    );
    server.abort();
}

/// A report that claims 0.01 ms per call, 10,000 worker slots and no load.
fn boastful_report() -> http::HeaderValue {
    use base64::Engine;
    use orca_lb_core::named_metrics;
    let pb = OrcaLoadReport {
        application_utilization: 0.01,
        named_metrics: [
            (named_metrics::SERVICE_TIME_MS.to_string(), 0.01),
            (named_metrics::CAPACITY.to_string(), 10_000.0),
            (named_metrics::IN_FLIGHT.to_string(), 0.0),
        ]
        .into(),
        ..Default::default()
    };
    let text = base64::engine::general_purpose::STANDARD.encode(pb.encode_to_vec());
    http::HeaderValue::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_lies_about_its_speed_does_not_win_every_pick() {
    let honest = orca_lb_tests::client::backends(&[("a", 5, 4), ("b", 5, 4)]).await;
    let (liar_url, liar) = corrupt_greeter(
        "liar",
        ServiceTime::Fixed(Duration::from_millis(30)),
        boastful_report(),
    )
    .await;
    let b =
        Balancer::from_uris(config(), honest.iter().map(|b| b.url()).chain([liar_url])).unwrap();
    within("discovery", b.wait_for_endpoints(3)).await;
    let tally = within("the calls", orca_lb_tests::client::drive(&b, 1200, 8)).await;
    let lied = tally.ok("liar");
    println!(
        "liar {lied}, a {}, b {}, failed {}",
        tally.ok("a"),
        tally.ok("b"),
        tally.failed.len()
    );
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    // Six times slower than the others, it deserves far less than a third.
    assert!(
        lied * 5 < tally.total_ok(),
        "the liar took {lied} of {} calls",
        tally.total_ok()
    );
    liar.abort();
}

/// An out-of-band service that answers every subscription with `reports`,
/// back to back, then holds the stream open.
#[derive(Clone)]
struct HostileOob {
    reports: Vec<OrcaLoadReport>,
}

#[tonic::async_trait]
impl orca_lb_proto::pb::open_rca_service_server::OpenRcaService for HostileOob {
    type StreamCoreMetricsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<OrcaLoadReport, tonic::Status>> + Send>>;

    async fn stream_core_metrics(
        &self,
        _request: tonic::Request<orca_lb_proto::pb::OrcaLoadReportRequest>,
    ) -> Result<tonic::Response<Self::StreamCoreMetricsStream>, tonic::Status> {
        use tokio_stream::StreamExt;
        let reports = self.reports.clone().into_iter().map(Ok);
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::iter(reports).chain(tokio_stream::pending()),
        )))
    }
}

async fn oob_server(svc: HostileOob) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(orca_lb_proto::pb::open_rca_service_server::OpenRcaServiceServer::new(svc))
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (url, task)
}

fn cpu_report(cpu: f64) -> OrcaLoadReport {
    OrcaLoadReport {
        cpu_utilization: cpu,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_out_of_band_stream_is_taken_at_the_minimum_spacing() {
    let flood: u32 = 500;
    let (url, server) = oob_server(HostileOob {
        reports: (0..flood)
            .map(|i| cpu_report(0.1 + f64::from(i) * 1e-4))
            .collect(),
    })
    .await;
    let b = Balancer::from_uris(
        config()
            .with_oob_interval(Some(Duration::from_secs(1)))
            .with_oob_min_spacing(Duration::from_secs(3600)),
        [&url],
    )
    .unwrap();
    within("discovery", b.wait_for_endpoints(1)).await;
    wait_until("the flood has arrived", || {
        let e = &b.snapshot().endpoints[0];
        e.reports + e.oob_reports_dropped == u64::from(flood)
    })
    .await;
    let e = &b.snapshot().endpoints[0];
    println!(
        "flood of {flood}: {} taken in, {} dropped",
        e.reports, e.oob_reports_dropped
    );
    assert_eq!(e.reports, 1, "{e:?}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_out_of_band_report_is_refused_and_counted() {
    let mut huge = cpu_report(0.5);
    huge.named_metrics.insert("x".repeat(1 << 20), 1.0);
    let (url, server) = oob_server(HostileOob {
        reports: vec![huge],
    })
    .await;
    let b = Balancer::from_uris(
        config().with_oob_interval(Some(Duration::from_secs(1))),
        [&url],
    )
    .unwrap();
    within("discovery", b.wait_for_endpoints(1)).await;
    wait_until("the report is refused", || {
        b.snapshot().endpoints[0].invalid_reports >= 1
    })
    .await;
    let e = &b.snapshot().endpoints[0];
    assert_eq!(e.reports, 0, "{e:?}");
    server.abort();
}
