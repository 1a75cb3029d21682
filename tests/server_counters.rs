//! In-flight calls, active streams and queue depth are exact, and return to zero.

use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::{greeter, report_in, wait_until, within};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_are_counted_exactly() {
    let g = TestGreeter::new("c").gated();
    let b = Backend::spawn(BackendConfig {
        greeter: Some(g.clone()),
        ..BackendConfig::named("c")
    })
    .await
    .unwrap();
    let client = greeter(b.url()).await;

    let calls: Vec<_> = (0..50)
        .map(|i| {
            let mut c = client.clone();
            tokio::spawn(async move { c.say_hello(hello(&i.to_string())).await })
        })
        .collect();
    within("50 calls in the handler", g.wait_entered(50)).await;
    assert_eq!(b.recorder().in_flight(), 50);
    assert_eq!(b.recorder().active_streams(), 0);
    assert_eq!(
        b.recorder().queue_depth(),
        0,
        "no capacity set: nothing queues"
    );

    g.open_gate(50);
    let mut max_in_flight_seen = 0.0f64;
    for call in calls {
        let response = call.await.unwrap().unwrap();
        let report = report_in(response.metadata());
        max_in_flight_seen = max_in_flight_seen.max(report.in_flight().unwrap());
    }
    assert!(
        max_in_flight_seen < 50.0,
        "a report never counts its own call"
    );
    assert_eq!(b.recorder().in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_open_streams_are_counted_until_they_close() {
    let b = Backend::spawn(BackendConfig::named("s")).await.unwrap();
    let client = greeter(b.url()).await;

    let mut open = Vec::new();
    for i in 0..10 {
        let mut c = client.clone();
        let (tx, rx) = mpsc::channel(1);
        tx.send(hello(&i.to_string())).await.unwrap();
        let mut replies = c.chat(ReceiverStream::new(rx)).await.unwrap().into_inner();
        // One reply back proves the stream is open on the server.
        within("first reply", replies.message())
            .await
            .unwrap()
            .unwrap();
        open.push((tx, replies));
    }
    assert_eq!(b.recorder().active_streams(), 10);
    assert_eq!(b.recorder().in_flight(), 10);

    // A unary call made now sees the ten streams in its report.
    let mut c = client.clone();
    let report = report_in(c.say_hello(hello("u")).await.unwrap().metadata());
    assert_eq!(report.active_streams(), Some(10.0));
    assert_eq!(report.in_flight(), Some(10.0));

    // Close five cleanly (end of requests, then read to the end)...
    for (tx, mut replies) in open.drain(..5) {
        drop(tx);
        while replies.message().await.unwrap().is_some() {}
        let trailers = replies.trailers().await.unwrap().expect("trailers");
        assert!(report_in(&trailers).active_streams().unwrap() < 10.0);
    }
    assert_eq!(b.recorder().active_streams(), 5);
    // ...and drop five mid-stream.
    drop(open);
    wait_until("dropped streams are released", || {
        b.recorder().active_streams() == 0
    })
    .await;
    assert_eq!(b.recorder().in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streams_count_as_streams() {
    let b = Backend::spawn(BackendConfig::named("cs")).await.unwrap();
    let mut client = greeter(b.url()).await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(hello("a")).await.unwrap();
    let call = tokio::spawn(async move { client.collect_hellos(ReceiverStream::new(rx)).await });
    wait_until("the client stream is open", || {
        b.recorder().active_streams() == 1
    })
    .await;
    assert_eq!(b.recorder().in_flight(), 1);
    drop(tx);
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.get_ref().message, "hello, a");
    assert_eq!(b.recorder().active_streams(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_does_not_leak_a_stream() {
    let b = Backend::spawn(BackendConfig::named("d")).await.unwrap();
    let mut client = greeter(b.url()).await;
    // count = 0: one reply, then the server holds the stream open.
    let mut stream = client
        .say_hello_stream(hello("d"))
        .await
        .unwrap()
        .into_inner();
    within("first reply", stream.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.recorder().active_streams(), 1);
    drop(stream);
    drop(client);
    wait_until("the abandoned stream is released", || {
        b.recorder().active_streams() == 0 && b.recorder().in_flight() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_capacity_queue_and_are_reported_as_queue_depth() {
    let g = TestGreeter::new("q").gated();
    let b = Backend::spawn(BackendConfig {
        capacity: Some(2),
        greeter: Some(g.clone()),
        ..BackendConfig::named("q")
    })
    .await
    .unwrap();
    let client = greeter(b.url()).await;

    let calls: Vec<_> = (0..5)
        .map(|i| {
            let mut c = client.clone();
            tokio::spawn(async move { c.say_hello(hello(&i.to_string())).await })
        })
        .collect();
    within("two calls in the handler", g.wait_entered(2)).await;
    wait_until("three calls queue", || b.recorder().queue_depth() == 3).await;
    assert_eq!(g.entered(), 2, "the slots hold the rest back");
    assert_eq!(b.recorder().in_flight(), 5);

    // Streams are not held to the slots.
    let mut c = client.clone();
    let mut s = c.say_hello_stream(hello("s")).await.unwrap().into_inner();
    within("stream reply despite full slots", s.message())
        .await
        .unwrap()
        .unwrap();
    drop(s);

    g.open_gate(5);
    let mut depths = Vec::new();
    for call in calls {
        let report = report_in(call.await.unwrap().unwrap().metadata());
        depths.push(report.queue_depth().unwrap());
        assert_eq!(report.capacity(), Some(2.0));
    }
    assert!(depths.iter().all(|&d| d <= 3.0), "{depths:?}");
    assert_eq!(g.entered(), 5);
    assert_eq!(b.recorder().queue_depth(), 0);
    wait_until("all calls done", || b.recorder().in_flight() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_queue_adds_to_reported_depth() {
    let b = Backend::spawn(BackendConfig::named("aq")).await.unwrap();
    b.recorder().set_queue_depth(7);
    let mut client = greeter(b.url()).await;
    let report = report_in(client.say_hello(hello("x")).await.unwrap().metadata());
    assert_eq!(report.queue_depth(), Some(7.0));
    b.recorder().set_queue_depth(0);
    let report = report_in(client.say_hello(hello("x")).await.unwrap().metadata());
    assert_eq!(report.queue_depth(), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cut_off_or_abandoned_count_as_busy_and_failed() {
    // One slot: the first call holds it (the gate never opens), the second
    // waits in the queue until its deadline.
    let g = TestGreeter::new("dl").gated();
    let b = Backend::spawn(BackendConfig {
        capacity: Some(1),
        greeter: Some(g.clone()),
        ..BackendConfig::named("dl")
    })
    .await
    .unwrap();
    let client = greeter(b.url()).await;
    let before = b.recorder().report();
    assert_eq!(before.eps(), 0.0);

    let mut c = client.clone();
    let holder = tokio::spawn(async move { c.say_hello(hello("holder")).await });
    within("the first call holds the slot", g.wait_entered(1)).await;

    let mut c = client.clone();
    let mut request = tonic::Request::new(hello("queued"));
    request.set_timeout(std::time::Duration::from_millis(100));
    let status = within("the queued call's deadline", c.say_hello(request))
        .await
        .expect_err("it never gets the slot");
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    wait_until("the server drops the queued call", || {
        b.recorder().in_flight() == 1
    })
    .await;
    assert_eq!(g.entered(), 1, "the second call never left the queue");
    assert_eq!(b.recorder().queue_depth(), 0);
    let report = b.recorder().report();
    assert!(
        report.eps() > 0.0,
        "a call cut off in the queue is an error: {report:?}"
    );

    // The client gives up on the first call while its handler runs.
    holder.abort();
    wait_until("the server drops the abandoned call", || {
        b.recorder().in_flight() == 0
    })
    .await;
    let after = b.recorder().report();
    assert_eq!(after.eps(), after.qps(), "both calls failed: {after:?}");
    assert!(
        after.application_utilization() > 10.0 * before.application_utilization(),
        "the slot was busy while the abandoned handler ran: {after:?} vs {before:?}"
    );
}
