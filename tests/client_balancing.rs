//! Calls and streams go where the load is lowest.

use std::collections::HashMap;
use std::time::Duration;

use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_proto::StreamingMethods;
use orca_lb_test::pb::HelloRequest;
use orca_lb_test::pb::greeter_client::GreeterClient;
use orca_lb_test::{Backend, BackendConfig, GREETER_DESCRIPTOR_SET, ServiceTime};
use orca_lb_tests::within;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn hello() -> HelloRequest {
    HelloRequest {
        name: "b".into(),
        ..Default::default()
    }
}

async fn backends(specs: &[(&str, u64, usize)]) -> Vec<Backend> {
    let mut out = Vec::new();
    for &(name, ms, capacity) in specs {
        out.push(
            Backend::spawn(BackendConfig {
                capacity: Some(capacity),
                service_time: ServiceTime::Fixed(Duration::from_millis(ms)),
                ..BackendConfig::named(name)
            })
            .await
            .unwrap(),
        );
    }
    out
}

fn config() -> BalancerConfig {
    BalancerConfig {
        target: "greeter".into(),
        streaming: StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET).unwrap(),
        ..BalancerConfig::default()
    }
}

async fn balancer(bs: &[Backend]) -> Balancer {
    let b = Balancer::from_uris(config(), bs.iter().map(|b| b.url())).unwrap();
    within("endpoints discovered", b.wait_for_endpoints(bs.len())).await;
    b
}

/// Runs `calls` unary calls with `concurrency` workers; counts replies per backend.
async fn drive(b: &Balancer, calls: usize, concurrency: usize) -> HashMap<String, usize> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let per = calls / concurrency;
    for _ in 0..concurrency {
        let mut client = GreeterClient::new(b.clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                let reply = client.say_hello(hello()).await.unwrap();
                tx.send(reply.into_inner().backend).unwrap();
            }
        });
    }
    drop(tx);
    let mut counts = HashMap::new();
    while let Some(name) = rx.recv().await {
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_calls_through_the_balancer() {
    let bs = backends(&[("a", 0, 4), ("b", 0, 4), ("c", 0, 4)]).await;
    let b = balancer(&bs).await;
    let counts = within("calls", drive(&b, 300, 6)).await;
    assert_eq!(counts.values().sum::<usize>(), 300);
    // Equal, idle backends all get traffic.
    for name in ["a", "b", "c"] {
        assert!(counts.get(name).copied().unwrap_or(0) > 30, "{counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_away_from_a_slow_backend() {
    // "slow" takes 10x longer per call: by expected completion time it should
    // get far less than round robin's third.
    let bs = backends(&[("fast1", 2, 4), ("fast2", 2, 4), ("slow", 20, 4)]).await;
    let b = balancer(&bs).await;
    let counts = within("calls", drive(&b, 600, 8)).await;
    let slow = counts.get("slow").copied().unwrap_or(0);
    assert!(slow < 600 / 6, "slow got {slow} of 600: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_away_from_a_backend_reporting_a_deep_queue() {
    let bs = backends(&[("a", 2, 4), ("b", 2, 4), ("queued", 2, 4)]).await;
    // The application behind "queued" reports 40 calls waiting in its own queue.
    bs[2].recorder().set_queue_depth(40);
    let b = balancer(&bs).await;
    // Warm up so every endpoint has reported once, then measure.
    drive(&b, 60, 3).await;
    let counts = within("calls", drive(&b, 600, 6)).await;
    let queued = counts.get("queued").copied().unwrap_or(0);
    assert!(queued < 600 / 10, "queued got {queued} of 600: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_spread_by_their_count() {
    let bs = backends(&[("a", 0, 4), ("b", 0, 4), ("c", 0, 4)]).await;
    let b = balancer(&bs).await;
    let mut open = Vec::new();
    for i in 0..30 {
        let mut client = GreeterClient::new(b.clone());
        let (tx, rx) = mpsc::channel(1);
        tx.send(HelloRequest {
            name: i.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut replies = client
            .chat(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        within("first reply", replies.message())
            .await
            .unwrap()
            .unwrap();
        open.push((tx, replies));
    }
    let counts: Vec<usize> = bs.iter().map(|b| b.recorder().active_streams()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 30);
    for c in &counts {
        assert!((8..=12).contains(c), "streams per backend: {counts:?}");
    }
    let snapshot = b.snapshot();
    let local: u32 = snapshot.endpoints.iter().map(|e| e.streams).sum();
    assert_eq!(local, 30);
    drop(open);
}
