//! Calls and streams go where the load is lowest.

use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::{client, within};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn counts(t: &client::Tally) -> &std::collections::HashMap<String, usize> {
    assert!(t.failed.is_empty(), "{:?}", t.failed);
    &t.ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_calls_through_the_balancer() {
    let bs = client::backends(&[("a", 1, 4), ("b", 1, 4), ("c", 1, 4)]).await;
    let b = client::balancer(client::config(), &bs).await;
    // Twelve callers, four slots per backend: no one backend can take them all.
    let tally = within("calls", client::drive(&b, 1200, 12)).await;
    let counts = counts(&tally);
    assert_eq!(counts.values().sum::<usize>(), 1200);
    // Every call went through the balancer, which counted each one at the
    // endpoint that served it, in flight no more.
    let snapshot = b.snapshot();
    for (backend, name) in bs.iter().zip(["a", "b", "c"]) {
        let e = snapshot
            .endpoints
            .iter()
            .find(|e| e.key == backend.url())
            .expect("endpoint known");
        let served = counts.get(name).copied().unwrap_or(0);
        assert_eq!(backend.greeter().entered(), served, "{name}");
        assert_eq!(e.responses, served as u64, "{name}: {e:?}");
        assert_eq!(e.in_flight, 0, "{name}: {e:?}");
    }
    // No backend takes most of the calls: twelve callers on four slots each
    // would queue there. (Equal shares are not the goal: the cheaper
    // endpoint wins a pick while it has free slots, and one whose first
    // reports were slow, as on a busy machine, gets little until they age.)
    for name in ["a", "b", "c"] {
        let n = counts.get(name).copied().unwrap_or(0);
        assert!(n < 1200 * 6 / 10, "{name}: {counts:?} {:#?}", b.snapshot());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_away_from_a_slow_backend() {
    // "slow" takes 10x longer per call: by expected completion time it should
    // get far less than round robin's third.
    let bs = client::backends(&[("fast1", 2, 4), ("fast2", 2, 4), ("slow", 20, 4)]).await;
    let b = client::balancer(client::config(), &bs).await;
    let tally = within("calls", client::drive(&b, 600, 8)).await;
    let counts = counts(&tally);
    let slow = counts.get("slow").copied().unwrap_or(0);
    assert!(slow < 600 / 6, "slow got {slow} of 600: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_away_from_a_backend_reporting_a_deep_queue() {
    let bs = client::backends(&[("a", 2, 4), ("b", 2, 4), ("queued", 2, 4)]).await;
    // The application behind "queued" reports 40 calls waiting in its own queue.
    bs[2].recorder().set_queue_depth(40);
    let b = client::balancer(client::config(), &bs).await;
    // Warm up so every endpoint has reported once, then measure.
    client::drive(&b, 60, 3).await;
    let tally = within("calls", client::drive(&b, 600, 6)).await;
    let counts = counts(&tally);
    let queued = counts.get("queued").copied().unwrap_or(0);
    assert!(queued < 600 / 10, "queued got {queued} of 600: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_spread_by_their_count() {
    let bs = client::backends(&[("a", 0, 4), ("b", 0, 4), ("c", 0, 4)]).await;
    let b = client::balancer(client::config(), &bs).await;
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
