//! The balancer gives callers the status code tonic's `Channel` gives for the
//! same failure: only a call that never reached a server is UNAVAILABLE
//! ("safe to retry"); a client deadline, a reset or a lost connection after
//! the call was sent keep their own codes.

use std::time::Duration;

use orca_lb_client::{BalanceError, Balancer, EndpointTemplate};
use orca_lb_testkit::ServiceTime;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::corrupt::corrupt_greeter;
use orca_lb_tests::fault_server::{Fault, FaultServer};
use orca_lb_tests::{client, within};
use tonic::Code;
use tonic::transport::Endpoint;

/// The client's deadline where the deadline is the fault under test: short,
/// so the test is quick.
const DEADLINE_UNDER_TEST: Duration = Duration::from_millis(200);
/// The client's deadline where it is not: long enough that a slow machine
/// never turns the fault under test into CANCELLED.
const DEADLINE_ASIDE: Duration = Duration::from_secs(10);

fn request(deadline: Duration) -> tonic::Request<HelloRequest> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "fault".into(),
        ..Default::default()
    });
    // The fault server never enforces it.
    request.set_timeout(deadline);
    request
}

/// What a plain `Channel` and the balancer, each over `url`, give one call.
async fn side_by_side(url: &str, deadline: Duration) -> (tonic::Status, tonic::Status) {
    let channel = Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_lazy();
    let plain = within(
        "plain call",
        GreeterClient::new(channel).say_hello(request(deadline)),
    )
    .await
    .expect_err("the fault fails the call");

    let config = client::config().with_endpoint(EndpointTemplate::new(
        Endpoint::from_shared(url.to_string()).unwrap(),
    ));
    let balancer = Balancer::from_uris(config, [url]).unwrap();
    within("discovery", balancer.wait_for_endpoints(1)).await;
    let balanced = within(
        "balanced call",
        GreeterClient::new(balancer).say_hello(request(deadline)),
    )
    .await
    .expect_err("the fault fails the call");
    (plain, balanced)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_gives_the_codes_a_channel_gives() {
    let mut cases = Vec::new();
    for (name, fault, expected) in [
        ("client deadline", Fault::Hang, Some(Code::Cancelled)),
        (
            "server reset mid-call",
            Fault::ResetMidCall,
            Some(Code::Internal),
        ),
        ("server gone mid-call", Fault::GoneMidCall, None),
        (
            "stream refused",
            Fault::RefuseStream,
            Some(Code::Unavailable),
        ),
    ] {
        let mut server = FaultServer::spawn(fault).await;
        let deadline = match fault {
            Fault::Hang => DEADLINE_UNDER_TEST,
            _ => DEADLINE_ASIDE,
        };
        let (plain, balanced) = side_by_side(&server.url(), deadline).await;
        assert_eq!(server.calls(), 2, "{name}: both calls reached the server");
        cases.push((name, plain, balanced, expected));
    }
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", port.local_addr().unwrap());
    drop(port);
    let (plain, balanced) = side_by_side(&url, DEADLINE_ASIDE).await;
    cases.push((
        "connection refused",
        plain,
        balanced,
        Some(Code::Unavailable),
    ));

    for (name, plain, balanced, _) in &cases {
        println!(
            "{name:24} channel {:?}, balancer {:?}: {}",
            plain.code(),
            balanced.code(),
            balanced.message()
        );
    }
    for (name, plain, balanced, expected) in cases {
        assert_eq!(
            balanced.code(),
            plain.code(),
            "{name}: {balanced:?} vs {plain:?}"
        );
        if let Some(code) = expected {
            assert_eq!(plain.code(), code, "{name}: {plain:?}");
        }
        if name != "connection refused" && name != "stream refused" {
            assert_ne!(
                balanced.code(),
                Code::Unavailable,
                "{name}: sent, so not UNAVAILABLE"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_while_the_response_is_read_names_the_endpoint() {
    // A 1 MiB trailer: after the response headers came, the client's HTTP/2
    // layer closes the connection while it reads the trailers (too many
    // CONTINUATION frames, GOAWAY ENHANCE_YOUR_CALM).
    let huge = http::HeaderValue::from_str(&"A".repeat(1 << 20)).unwrap();
    let (url, server) = corrupt_greeter("huge", ServiceTime::default(), huge).await;
    let (plain, balanced) = side_by_side(&url, DEADLINE_ASIDE).await;
    println!(
        "1 MiB trailer: channel {:?}, balancer {:?}: {}",
        plain.code(),
        balanced.code(),
        balanced.message()
    );
    assert_eq!(balanced.code(), plain.code(), "{balanced:?} vs {plain:?}");
    assert_eq!(plain.code(), Code::ResourceExhausted, "{plain:?}");
    assert!(
        balanced.message().starts_with(&format!("endpoint {url}: ")),
        "{balanced:?}"
    );
    let source = std::error::Error::source(&balanced)
        .and_then(|s| s.downcast_ref::<BalanceError>())
        .unwrap_or_else(|| panic!("no BalanceError source: {balanced:?}"));
    assert!(source.is_transport(), "{source:?}");
    server.abort();
}
