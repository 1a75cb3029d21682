//! Failing endpoints are ejected by their breaker, within the ejection budget,
//! and come back.

use std::time::Duration;

use orca_lb_client::{BalanceError, Balancer, BalancerConfig};
use orca_lb_core::{BreakerState, CircuitBreakerConfig, EjectionBudget, OpenReason};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::client::{self, Tally};
use orca_lb_tests::{wait_until, within};
use tonic::Code;

/// A config where the score does not steer (see [`client::unsteered`]), so
/// the breaker alone decides: what these tests are about.
fn breaker_config(consecutive: u32, base_ejection: Duration) -> BalancerConfig {
    client::unsteered(
        client::config().with_breaker(
            CircuitBreakerConfig::default()
                .with_consecutive_errors(consecutive)
                .with_base_ejection_time(base_ejection)
                .with_max_ejection_time(base_ejection * 4)
                .with_half_open_probes(1),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_is_ejected_and_gets_no_calls_while_open() {
    let bs = client::backends(&[("a", 1, 4), ("b", 1, 4), ("bad", 1, 4)]).await;
    bs[2].greeter().set_failing(Some(Code::Unavailable));
    // A long ejection: nothing can race it in this test.
    let b = client::balancer(breaker_config(3, Duration::from_secs(60)), &bs).await;

    let failures = client::eject(&b, &bs[2].url()).await;
    let bad = client::endpoint_state(&b, &bs[2].url());
    assert_eq!(bad.breaker, BreakerState::Open, "{bad:?}");
    assert!(matches!(
        bad.last_transition,
        Some((
            _,
            BreakerState::Open,
            Some(OpenReason::ConsecutiveErrors(3))
        ))
    ));
    assert_eq!(
        failures, 3,
        "ejected on exactly the third consecutive error"
    );
    assert_eq!(b.snapshot().ejected, 1);

    let entered = bs[2].greeter().entered();
    let tally = within("calls", client::drive(&b, 300, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(
        bs[2].greeter().entered(),
        entered,
        "no call reached the ejected backend"
    );
    assert_eq!(tally.total_ok(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_backend_comes_back_after_its_ejection_time() {
    let bs = client::backends(&[("a", 1, 4), ("flaky", 1, 4)]).await;
    bs[1].greeter().set_failing(Some(Code::Internal));
    let b = client::balancer(breaker_config(2, Duration::from_millis(200)), &bs).await;
    client::eject(&b, &bs[1].url()).await;

    // Healed: after the ejection time the breaker half-opens, a probe
    // succeeds, and the backend is back.
    bs[1].greeter().set_failing(None);
    let url = bs[1].url();
    let probe = b.clone();
    let mut calls = GreeterClient::new(b.clone());
    let deadline = tokio::time::Instant::now() + orca_lb_tests::WAIT_LIMIT;
    while client::endpoint_state(&probe, &url).breaker != BreakerState::Closed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {:?}",
            client::endpoint_state(&probe, &url)
        );
        calls.say_hello(HelloRequest::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tally = within("calls", client::drive(&b, 200, 4)).await;
    assert!(tally.ok("flaky") > 0, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_the_max_ejected_fraction() {
    let bs = client::backends(&[("a", 0, 4), ("b", 0, 4), ("c", 0, 4), ("d", 0, 4)]).await;
    for backend in &bs {
        backend.greeter().set_failing(Some(Code::Unavailable));
    }
    let config = (breaker_config(2, Duration::from_secs(60))).with_ejection(
        EjectionBudget::default()
            .with_max_ejected_fraction(0.5)
            .with_min_healthy_fraction(0.0),
    );
    let b = client::balancer(config, &bs).await;
    let mut client = GreeterClient::new(b.clone());
    let mut most = 0;
    for _ in 0..200 {
        let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        let ejected = b.snapshot().ejected;
        most = most.max(ejected);
        assert!(ejected <= 2, "{ejected} of 4 ejected");
    }
    assert_eq!(most, 2, "the budget is used up to its limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_mode_sends_to_ejected_backends_when_too_few_remain() {
    let bs = client::backends(&[("a", 0, 4), ("bad", 0, 4), ("c", 0, 4)]).await;
    bs[1].greeter().set_failing(Some(Code::Unavailable));
    let config = (breaker_config(2, Duration::from_secs(60))).with_ejection(
        EjectionBudget::default()
            .with_max_ejected_fraction(0.5)
            // With one of three out, fewer than 90 % remain: panic.
            .with_min_healthy_fraction(0.9),
    );
    let b = client::balancer(config, &bs).await;
    client::eject(&b, &bs[1].url()).await;
    assert_eq!(b.snapshot().ejected, 1, "{:#?}", b.snapshot());
    wait_until("panic mode", || b.snapshot().panic).await;
    let entered = bs[1].greeter().entered();
    let tally: Tally = within("calls", client::drive(&b, 300, 3)).await;
    assert!(
        bs[1].greeter().entered() > entered,
        "in panic mode the ejected backend is picked again"
    );
    assert!(!tally.failed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_loses_only_the_calls_in_flight_to_it() {
    let bs = client::backends(&[("a", 2, 4), ("b", 2, 4), ("doomed", 2, 4)]).await;
    // Out-of-band reports keep every estimate fresh, so no endpoint goes
    // without calls because its first report was slow.
    let config = client::config().with_oob_interval(Some(Duration::from_millis(20)));
    let b = client::balancer(config, &bs).await;
    let warm = within("warm-up", client::drive(&b, 120, 4)).await;
    assert!(warm.failed.is_empty());
    assert!(warm.ok("doomed") > 0);

    let mut bs = bs;
    let doomed = bs.pop().unwrap();
    let url = doomed.url();
    let entered = doomed.greeter().entered();
    // Enough calls (about 2 s of them) that the load reaches the doomed
    // backend even if a slow report on a busy machine makes the balancer
    // pass it over until that report has aged.
    const CALLS: usize = 4000;
    let load = {
        let b = b.clone();
        tokio::spawn(async move { client::drive(&b, CALLS, 4).await })
    };
    // Kill it while calls flow: once this load has reached it.
    wait_until("the load reaches the doomed backend", || {
        doomed.greeter().entered() >= entered + 4
    })
    .await;
    assert!(!load.is_finished(), "killed before the load ended");
    drop(doomed);
    let tally = within("calls", load).await.unwrap();
    // Four workers: at most four calls were in flight to it when it died,
    // and at most four more picked it before their failures steered the
    // others away (by the failure penalty, or by ejection on a refused
    // connection).
    assert!(
        tally.failed.len() <= 8,
        "{} failed: {:?}",
        tally.failed.len(),
        tally.failed
    );
    // A call that never reached it is UNAVAILABLE; one in flight when it
    // died has the code a tonic Channel gives a lost connection.
    for status in &tally.failed {
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Internal
            ),
            "{status:?}"
        );
    }
    assert_eq!(tally.total_ok() + tally.failed.len(), CALLS);
    let after = within("calls", client::drive(&b, 200, 4)).await;
    assert!(after.failed.is_empty(), "{:?}", after.failed);
    assert_eq!(after.ok("doomed"), 0);
    let dead = client::endpoint_state(&b, &url);
    assert!(dead.recent_failures >= 1, "{dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoints_is_unavailable_naming_the_target() {
    let b = Balancer::new(client::config(), tokio_stream::pending()).unwrap();
    let mut client = GreeterClient::new(b);
    let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "no endpoints for greeter: discovery has found none"
    );
    let source = std::error::Error::source(&status).expect("a source");
    let e = source
        .downcast_ref::<BalanceError>()
        .expect("a BalanceError");
    assert!(e.is_no_endpoints());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_fail_clearly_and_are_ejected() {
    // Two ports with nothing listening.
    let mut urls = Vec::new();
    for _ in 0..2 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        urls.push(format!("http://{}", l.local_addr().unwrap()));
    }
    let b = Balancer::from_uris(client::config(), &urls).unwrap();
    within("discovery", b.wait_for_endpoints(2)).await;
    let mut client = GreeterClient::new(b.clone());
    for _ in 0..6 {
        let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            urls.iter().any(|u| status.message().contains(u.as_str())),
            "names the endpoint: {}",
            status.message()
        );
    }
    let snapshot = b.snapshot();
    assert_eq!(
        snapshot.ejected, 1,
        "the budget never ejects the last endpoint"
    );
    assert!(snapshot.endpoints.iter().any(|e| matches!(
        e.last_transition,
        Some((_, BreakerState::Open, Some(OpenReason::ConnectFailed)))
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_bad_uris_are_refused_with_their_reason() {
    let bad =
        client::config().with_breaker(CircuitBreakerConfig::default().with_consecutive_errors(0));
    let err = Balancer::from_uris(bad, ["http://127.0.0.1:1"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid balancer config: breaker.consecutive_errors"),
        "{err}"
    );
    let err = Balancer::from_uris(client::config(), ["not a uri"]).unwrap_err();
    assert!(err.to_string().contains("\"not a uri\""), "{err}");
    let err = Balancer::from_uris(client::config(), ["127.0.0.1:80"]).unwrap_err();
    assert!(err.to_string().contains("scheme://host:port"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reporting_sustained_overload_is_ejected() {
    let bs = client::backends(&[("a", 1, 4), ("b", 1, 4), ("hot", 1, 4)]).await;
    // The application behind "hot" says it has five times the work it can do,
    // above the breaker's default threshold (3.0).
    bs[2].recorder().set_application_utilization(5.0).unwrap();
    let config = client::config().with_oob_interval(Some(Duration::from_millis(20)));
    let b = client::balancer(config, &bs).await;
    // Out-of-band reports alone carry the news: no call is needed.
    wait_until("the hot backend is ejected for overload", || {
        matches!(
            client::endpoint_state(&b, &bs[2].url()).last_transition,
            Some((_, BreakerState::Open, Some(OpenReason::Overload(_))))
        )
    })
    .await;
    let tally = within("calls", client::drive(&b, 200, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    // At most one half-open round of probes (3 calls) can fall in the run.
    assert!(tally.ok("hot") <= 3, "{tally:?}");
}
