//! Endpoints follow discovery: DNS re-resolution adds and removes them, and a
//! removed endpoint drains its calls.

use std::time::Duration;

use orca_lb_client::{Balancer, Change, DnsDiscovery};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::client::{self, config};
use orca_lb_tests::scripted_resolver::Scripted;
use orca_lb_tests::{wait_until, within};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// The endpoints picks may choose from (those draining left out).
fn keys(b: &Balancer) -> Vec<String> {
    b.snapshot()
        .endpoints
        .into_iter()
        .filter(|e| !e.draining)
        .map(|e| e.key)
        .collect()
}

/// The removed endpoints the snapshot still shows, with their calls in flight.
fn draining(b: &Balancer) -> Vec<(String, u32)> {
    b.snapshot()
        .endpoints
        .into_iter()
        .filter(|e| e.draining)
        .map(|e| (e.key, e.in_flight))
        .collect()
}

fn key(b: &Backend) -> String {
    format!("http://{}", b.addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_re_resolution_adds_and_removes_endpoints() {
    let bs = client::backends(&[("a", 0, 4), ("b", 0, 4), ("c", 0, 4)]).await;
    let resolver = Scripted::default();
    resolver.set(&[bs[0].addr(), bs[1].addr()]);
    let discovery = DnsDiscovery::new("greeter.test", 0)
        .interval(Duration::from_millis(20))
        .resolver(resolver.clone());
    let b = Balancer::new(config(), discovery.into_stream()).unwrap();
    within("two endpoints", b.wait_for_endpoints(2)).await;
    let mut expected = vec![key(&bs[0]), key(&bs[1])];
    expected.sort();
    assert_eq!(keys(&b), expected);

    // One name, a new address set: one leaves, one joins.
    resolver.set(&[bs[1].addr(), bs[2].addr()]);
    let mut expected = vec![key(&bs[1]), key(&bs[2])];
    expected.sort();
    wait_until("the new address set is applied", || keys(&b) == expected).await;

    let tally = within("calls", client::drive(&b, 200, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(tally.ok("a"), 0, "the removed endpoint gets no calls");
    assert!(tally.ok("b") > 0 && tally.ok("c") > 0, "{tally:?}");

    // A failed resolution keeps what is known: after three failed rounds
    // (and one more, so the third's changes would have been applied)...
    resolver.fail();
    let n = resolver.calls();
    wait_until("three failed resolutions", || resolver.calls() >= n + 4).await;
    assert_eq!(
        keys(&b),
        expected,
        "a DNS failure must not empty the balancer"
    );
    // ...and so does an empty answer.
    resolver.set(&[]);
    let n = resolver.calls();
    wait_until("three empty resolutions", || resolver.calls() >= n + 4).await;
    assert_eq!(keys(&b), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_resolver_finds_localhost() {
    let bs = client::backends(&[("local", 0, 4)]).await;
    let discovery =
        DnsDiscovery::new("localhost", bs[0].addr().port()).interval(Duration::from_millis(50));
    let b = Balancer::new(config(), discovery.into_stream()).unwrap();
    within("localhost resolves", b.wait_for_endpoints(1)).await;
    // localhost may resolve to ::1 too, where nothing listens: calls still
    // succeed once that endpoint is ejected or outscored.
    let mut client = GreeterClient::new(b.clone());
    let mut ok = 0;
    for _ in 0..50 {
        if client.say_hello(HelloRequest::default()).await.is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 40, "{ok} of 50 succeeded: {:#?}", b.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_endpoint_finishes_its_calls_in_flight() {
    let g = TestGreeter::new("leaving").gated();
    let leaving = Backend::spawn(BackendConfig {
        greeter: Some(g.clone()),
        ..BackendConfig::named("leaving")
    })
    .await
    .unwrap();
    let staying = client::backends(&[("staying", 0, 4)]).await;

    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(Change::Insert(
        key(&leaving),
        leaving.url().parse().unwrap(),
    ))
    .unwrap();
    let b = Balancer::new(config(), UnboundedReceiverStream::new(rx)).unwrap();
    within("one endpoint", b.wait_for_endpoints(1)).await;

    // A call is held in the handler of the only endpoint...
    let mut c = GreeterClient::new(b.clone());
    let held = tokio::spawn(async move { c.say_hello(HelloRequest::default()).await });
    within("the call arrives", g.wait_entered(1)).await;

    // ...when discovery replaces that endpoint.
    tx.send(Change::Insert(
        key(&staying[0]),
        staying[0].url().parse().unwrap(),
    ))
    .unwrap();
    tx.send(Change::Remove(key(&leaving))).unwrap();
    wait_until("the endpoint is removed", || keys(&b) == [key(&staying[0])]).await;
    assert_eq!(
        draining(&b),
        [(key(&leaving), 1)],
        "the removed endpoint shows as draining while its call runs"
    );

    let tally = within("calls", client::drive(&b, 50, 2)).await;
    assert_eq!(tally.ok("staying"), 50);
    assert_eq!(g.entered(), 1, "no new call goes to the removed endpoint");

    g.open_gate(1);
    let reply = within("the held call", held).await.unwrap().unwrap();
    assert_eq!(
        reply.get_ref().backend,
        "leaving",
        "it drained, it was not cut"
    );
    wait_until("the drained endpoint leaves the snapshot", || {
        draining(&b).is_empty()
    })
    .await;
    assert_eq!(keys(&b), [key(&staying[0])]);
}
