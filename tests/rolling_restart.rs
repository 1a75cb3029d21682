//! A rolling restart behind a static list: each backend in turn is drained
//! (`orca_lb_server::Drain`) and replaced on the same port, under steady
//! unary load and with streams open on every backend. Health checking tells
//! the balancer to stop picking a draining backend before its listener
//! closes, so no unary call fails; the open streams hold until the drain's
//! deadline and then end with UNAVAILABLE (the drain's layer).

use std::net::SocketAddr;
use std::time::Duration;

use orca_lb_client::{Balancer, HealthCheck, HealthState};
use orca_lb_server::{Drain, DrainConfig};
use orca_lb_testkit::TestGreeter;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_tests::client::config;
use orca_lb_tests::open_loop::{OpenLoop, call_through};
use orca_lb_tests::{wait_until, within};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Server;
use tonic_health::ServingStatus;

/// The health service name the servers report and the balancer watches.
const SERVICE: &str = "helloworld.Greeter";
const BACKENDS: usize = 4;
const STREAMS: usize = 100;
const RATE: u64 = 500;
const GRACE: Duration = Duration::from_millis(300);
const DEADLINE: Duration = Duration::from_millis(1500);

/// One generation of a backend: its server task and the drain that ends it.
struct Generation {
    drain: Drain,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn serve(listener: TcpListener, name: &str) -> Generation {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    let mut c = DrainConfig::default();
    c.grace = GRACE;
    c.deadline = DEADLINE;
    let drain = Drain::new(c).health(health, [SERVICE]);
    let server = tokio::spawn(
        Server::builder()
            .layer(drain.layer())
            .add_service(health_service)
            .add_service(GreeterServer::new(TestGreeter::new(name)))
            .serve_with_incoming_shutdown(drain.incoming(listener), drain.signal()),
    );
    Generation { drain, server }
}

/// How an open stream ended: the backend it was on, its end (`None`: the
/// server ended it with OK), and when.
type StreamEnd = (String, Result<(), Code>, Instant);

/// Opens a stream that holds until its server goes away; reports its first
/// reply's backend on `opened`, and its end on `ended`.
async fn open_stream(
    balancer: &Balancer,
    opened: mpsc::UnboundedSender<String>,
    ended: mpsc::UnboundedSender<StreamEnd>,
) {
    let mut client = GreeterClient::new(balancer.clone());
    let mut stream = client
        .say_hello_stream(HelloRequest::default())
        .await
        .expect("stream opens")
        .into_inner();
    let first = stream.message().await.expect("a reply").expect("a reply");
    let backend = first.backend;
    opened.send(backend.clone()).unwrap();
    tokio::spawn(async move {
        let end = loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(status) => break Err(status.code()),
            }
        };
        let _ = ended.send((backend, end, Instant::now()));
    });
}

fn health_of(b: &Balancer, url: &str) -> Option<HealthState> {
    b.snapshot()
        .endpoints
        .iter()
        .find(|e| e.key == url)
        .and_then(|e| e.health)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_behind_a_static_list_fails_no_call() {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut running = Vec::new();
    for i in 0..BACKENDS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        running.push(Some(serve(listener, &format!("b{i}")).await));
    }
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let mut c = config();
    c.health_check = Some(HealthCheck::new(SERVICE));
    let balancer = Balancer::from_uris(c, &urls).unwrap();
    within("discovery", balancer.wait_for_endpoints(BACKENDS)).await;
    wait_until("every backend serving", || {
        urls.iter()
            .all(|u| health_of(&balancer, u) == Some(HealthState::Serving))
    })
    .await;

    // Streams, spread over the backends by the balancer.
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    for _ in 0..STREAMS {
        within(
            "a stream opens",
            open_stream(&balancer, opened_tx.clone(), ended_tx.clone()),
        )
        .await;
    }
    let mut per_backend = vec![0usize; BACKENDS];
    for _ in 0..STREAMS {
        let name = opened.recv().await.unwrap();
        per_backend[name[1..].parse::<usize>().unwrap()] += 1;
    }
    assert!(per_backend.iter().all(|&n| n > 0), "{per_backend:?}");

    // Steady unary load throughout.
    let client = GreeterClient::new(balancer.clone());
    let load = OpenLoop::start(
        RATE,
        Duration::from_secs(10),
        Duration::from_secs(60),
        move || call_through(&client, Duration::from_secs(5)),
    );
    load.wait_calls(200).await;

    drop(ended_tx);
    for i in 0..BACKENDS {
        let Generation { drain, server } = running[i].take().unwrap();
        let started = Instant::now();
        let report = within("the drain", drain.run(server)).await;
        // Streams were open on it: they held it until the deadline.
        assert!(!report.finished, "{report:?}");
        // Each of its streams ended with the cut, not before, and with the
        // documented status (the others are still open: only its own end).
        let cut_not_before = started + GRACE + DEADLINE;
        for _ in 0..per_backend[i] {
            let (backend, end, at) = within("a stream's end", ended.recv()).await.unwrap();
            assert_eq!(
                backend,
                format!("b{i}"),
                "a stream on another backend ended"
            );
            assert!(
                at >= cut_not_before,
                "{backend} ended before its drain's deadline"
            );
            assert_eq!(end, Err(Code::Unavailable), "{backend}");
        }
        // The replacement, on the same port.
        let listener = TcpListener::bind(addrs[i])
            .await
            .expect("the port is free again");
        let name = format!("b{i}-2");
        running[i] = Some(serve(listener, &name).await);
        wait_until("the replacement serving", || {
            health_of(&balancer, &urls[i]) == Some(HealthState::Serving)
        })
        .await;
        wait_until("the replacement answering calls", || load.ok(&name) > 0).await;
    }
    let run = load.stop().await;
    // The streams cut on each backend failed (and were seen to, before its
    // replacement started) while its health kept it out of picks: they
    // eject no replacement.
    let ejections: Vec<u32> = balancer
        .snapshot()
        .endpoints
        .iter()
        .map(|e| e.ejections)
        .collect();
    println!(
        "rolling restart of {BACKENDS} backends under {RATE} calls/s with {STREAMS} streams: \
         {} of {} unary calls failed {:?}, {} hung, {} re-picked; ejections per endpoint \
         {ejections:?}",
        run.failed.len(),
        run.calls,
        run.codes(),
        run.hung,
        balancer.snapshot().repicks,
    );
    assert_eq!(ejections, [0; BACKENDS]);
    assert!(
        run.failed.is_empty(),
        "{} failed: {:?}",
        run.failed.len(),
        run.codes()
    );
    assert_eq!(run.hung, 0);
    assert!(run.calls >= 1000, "{run:?}");

    // Every stream was accounted for above.
    assert!(within("the last stream task", ended.recv()).await.is_none());

    for generation in running.into_iter().flatten() {
        generation.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_still_open_at_the_deadline_ends_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let greeter = TestGreeter::new("held").gated();
    let mut c = DrainConfig::default();
    c.grace = Duration::ZERO;
    c.deadline = Duration::from_millis(200);
    let drain = Drain::new(c);
    // With the reporting layer, on either side of the drain's.
    let (reporting, _) = orca_lb_server::ReportingLayer::builder().build().unwrap();
    let server = tokio::spawn(
        Server::builder()
            .layer(drain.layer())
            .layer(reporting)
            .layer(drain.layer())
            .add_service(GreeterServer::new(greeter.clone()))
            .serve_with_incoming_shutdown(drain.incoming(listener), drain.signal()),
    );
    let mut client = orca_lb_tests::greeter(url).await;
    // A unary call held in its handler, and a stream under way.
    let call = {
        let mut client = client.clone();
        tokio::spawn(async move { client.say_hello(HelloRequest::default()).await })
    };
    within("the call enters its handler", greeter.wait_entered(1)).await;
    let mut stream = client
        .say_hello_stream(HelloRequest::default())
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("a first reply");

    let report = within("the drain", drain.run(server)).await;
    assert!(!report.finished, "{report:?}");
    let status = within("the held call", call).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "server draining: deadline passed");
    let status = within("the stream's end", stream.message())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "server draining: deadline passed");
}
