//! Reports the balancer cannot trust are ignored, counted and logged; servers
//! that send none, or none out of band, still work.

use std::time::Duration;

use orca_lb_client::Balancer;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{Backend, BackendConfig, ServiceTime, TestGreeter};
use orca_lb_tests::client::{self, config};
use orca_lb_tests::corrupt::corrupt_greeter;
use orca_lb_tests::{wait_until, within};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_trailers_are_ignored_and_counted() {
    // Not base64; and base64 of an OrcaLoadReport with mem_utilization = NaN
    // (field 2, fixed64 0x7ff8000000000000).
    for garbage in ["%%% not base64 %%%", "EQAAAAAAAPh/"] {
        let (url, server) = corrupt_greeter(
            "corrupt",
            ServiceTime::default(),
            http::HeaderValue::from_static(garbage),
        )
        .await;
        let b = Balancer::from_uris(config(), [&url]).unwrap();
        within("discovery", b.wait_for_endpoints(1)).await;
        let mut c = GreeterClient::new(b.clone());
        for _ in 0..5 {
            let reply = c.say_hello(HelloRequest::default()).await.unwrap();
            assert_eq!(reply.get_ref().backend, "corrupt", "calls still succeed");
        }
        let e = &b.snapshot().endpoints[0];
        assert_eq!(e.invalid_reports, 5, "{garbage}: {e:?}");
        assert_eq!(e.reports, 0, "never trusted");
        assert_eq!(e.breaker, orca_lb_core::BreakerState::Closed);
        server.abort();
    }
}

/// A plain tonic server named `name` whose calls take `work`: no reporting
/// layer, no OOB service.
async fn plain_server(name: &str, work: Duration) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let greeter = TestGreeter::new(name).with_service_time(ServiceTime::Fixed(work));
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(GreeterServer::new(greeter))
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await
            .unwrap();
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_without_reports_are_balanced_on_observed_latency() {
    // Two plain servers, one 20 times slower than the other. Nothing reports:
    // what the balancer knows of their speed it learns from its own calls.
    let (fast_url, fast) = plain_server("fast", Duration::from_millis(1)).await;
    let (slow_url, slow) = plain_server("slow", Duration::from_millis(20)).await;
    let cfg = config().with_oob_interval(Some(Duration::from_millis(20)));
    let b = Balancer::from_uris(cfg, [&fast_url, &slow_url]).unwrap();
    within("discovery", b.wait_for_endpoints(2)).await;
    let tally = within("calls", client::drive(&b, 400, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    // Round robin, or a balancer blind to latency, splits them evenly; on
    // observed latency the slow server takes a small share.
    assert!(
        tally.ok("fast") >= 4 * tally.ok("slow"),
        "fast {} slow {}",
        tally.ok("fast"),
        tally.ok("slow")
    );
    let snapshot = b.snapshot();
    let endpoint = |url: &str| {
        snapshot
            .endpoints
            .iter()
            .find(|e| e.key == url)
            .unwrap_or_else(|| panic!("{url} in {snapshot:#?}"))
    };
    let (f, s) = (endpoint(&fast_url), endpoint(&slow_url));
    for e in [f, s] {
        assert_eq!(e.reports, 0, "{e:?}");
        assert_eq!(
            e.invalid_reports, 0,
            "a missing trailer is normal, not invalid: {e:?}"
        );
    }
    assert!(
        s.cost.service_time > f.cost.service_time,
        "the slow server is known to be slower: {f:?} {s:?}"
    );
    fast.abort();
    slow.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_reports_arrive_without_calls() {
    let bs = vec![
        Backend::spawn(BackendConfig::named("x")).await.unwrap(),
        Backend::spawn(BackendConfig::named("y")).await.unwrap(),
    ];
    bs[0].recorder().set_queue_depth(9);
    let cfg = config().with_oob_interval(Some(Duration::from_millis(20)));
    let b = client::balancer(cfg, &bs).await;
    wait_until("reports from both", || {
        b.snapshot().endpoints.iter().all(|e| e.reports >= 3)
    })
    .await;
    let snapshot = b.snapshot();
    let x = snapshot
        .endpoints
        .iter()
        .find(|e| e.key == bs[0].url())
        .unwrap();
    assert!(x.queue_depth.unwrap() > 8.0, "{x:?}");
    assert_eq!(x.recent_picks, 0, "no call was made");
}
