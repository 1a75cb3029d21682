//! The balancer as a tower service: what `poll_ready` means, and tower's
//! timeout, concurrency limit and load shedding stacked around it.

use std::time::Duration;

use orca_lb_client::{Balancer, Change};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::{client, within};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn poll_ready_waits_for_discovery_and_is_woken_by_it() {
    let backend = Backend::spawn(BackendConfig::named("a")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut b = Balancer::new(client::config(), UnboundedReceiverStream::new(rx)).unwrap();
    // No endpoint yet: not ready (half the configured wait passes).
    let early = tokio::time::timeout(Duration::from_millis(500), b.ready()).await;
    assert!(early.is_err(), "ready with no endpoint");
    // Discovery adds one: ready at once.
    let url = backend.url();
    tx.send(Change::Insert(url.clone(), url.parse().unwrap()))
        .unwrap();
    let started = tokio::time::Instant::now();
    within("ready", b.ready()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn with_no_endpoint_poll_ready_waits_a_bounded_time_then_the_call_fails() {
    let b = Balancer::new(client::config(), tokio_stream::pending()).unwrap();
    let started = tokio::time::Instant::now();
    let mut client = GreeterClient::new(b);
    let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("no endpoints"), "{status:?}");
    assert_eq!(started.elapsed(), client::config().discovery_wait);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_concurrency_limit_and_load_shed_stack_around_the_balancer() {
    let greeter = TestGreeter::new("gated").gated();
    let backend = Backend::spawn(BackendConfig {
        greeter: Some(greeter.clone()),
        ..BackendConfig::named("gated")
    })
    .await
    .unwrap();
    let balancer = client::balancer(client::config(), std::slice::from_ref(&backend)).await;
    let stack = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(2)
        .timeout(Duration::from_secs(5))
        .service(balancer.clone());

    // Two calls take the two slots and wait in the handler.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut client = GreeterClient::new(stack.clone());
            tokio::spawn(async move { client.say_hello(HelloRequest::default()).await })
        })
        .collect();
    within("two calls in the handler", greeter.wait_entered(2)).await;

    // A third is shed at once, never sent.
    let status = GreeterClient::new(stack.clone())
        .say_hello(HelloRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(greeter.entered(), 2);

    greeter.open_gate(2);
    for call in held {
        let reply = within("held call", call).await.unwrap().unwrap();
        assert_eq!(reply.get_ref().backend, "gated");
    }

    // tower's timeout ends a call that takes too long; the balancer sees
    // it cancelled and frees its slot.
    let short = ServiceBuilder::new()
        .timeout(Duration::from_millis(50))
        .service(balancer.clone());
    let status = GreeterClient::new(short)
        .say_hello(HelloRequest::default())
        .await
        .unwrap_err();
    println!("tower timeout: {status:?}");
    assert!(status.message().contains("timed out"), "{status:?}");
    within("the slot is freed", async {
        while balancer.snapshot().endpoints[0].in_flight != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    greeter.open_gate(1);
}

#[test]
fn the_balancer_and_its_future_can_cross_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<Balancer>();
    send::<orca_lb_client::ResponseFuture>();
}
