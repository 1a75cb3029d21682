//! Hand-back: a unary call offered to a busy orca-lb server (every worker
//! slot taken, calls waiting) is answered at once, unserved, and the
//! balancer sends it to another endpoint; the last attempt is never offered,
//! and a server that claims to hand calls back costs one attempt at most.

use std::time::{Duration, Instant};

use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::client;
use orca_lb_tests::fault_server::{Fault, FaultServer, two_attempts};
use orca_lb_tests::{greeter, wait_until, within};
use tonic::Code;

/// A backend with one worker slot whose calls wait at a gate.
async fn one_slot(name: &str) -> Backend {
    Backend::spawn(BackendConfig {
        capacity: Some(1),
        greeter: Some(TestGreeter::new(name).gated()),
        ..BackendConfig::named(name)
    })
    .await
    .expect("backend starts")
}

/// Fills `backend` from another client: one call runs, one waits.
async fn fill(backend: &Backend) -> Vec<tokio::task::JoinHandle<Result<String, tonic::Status>>> {
    let mut held = Vec::new();
    for waiting in 0..2 {
        let mut c = greeter(backend.url()).await;
        held.push(tokio::spawn(async move {
            let reply = c.say_hello(HelloRequest::default()).await?;
            Ok(reply.into_inner().message)
        }));
        let recorder = backend.recorder().clone();
        let greeter = backend.greeter().clone();
        wait_until("the call runs or waits", || {
            greeter.entered() == 1 && recorder.queue_depth() == waiting
        })
        .await;
    }
    held
}

/// Two busy backends, each with a call running and one waiting, and a
/// balancer over both configured with `config`. One call through it ends
/// up waiting on one of them; returns the balancer's hand-backs by then and
/// the call's reply once the gates open.
async fn one_call_to_a_busy_fleet(config: BalancerConfig) -> (u64, String, usize) {
    let bs = [one_slot("a").await, one_slot("b").await];
    let mut held = Vec::new();
    for b in &bs {
        held.extend(fill(b).await);
    }
    let balancer = Balancer::from_uris(config, bs.iter().map(Backend::url)).unwrap();
    within("discovery", balancer.wait_for_endpoints(2)).await;

    let mut c = GreeterClient::new(balancer.clone());
    let call = tokio::spawn(async move { c.say_hello(HelloRequest::default()).await });
    let queued = || bs.iter().map(|b| b.recorder().queue_depth()).sum::<usize>();
    wait_until("the call waits on a backend", || queued() == 3).await;
    let hand_backs = balancer.snapshot().hand_backs;

    for b in &bs {
        b.greeter().open_gate(3);
    }
    let reply = within("the call", call).await.unwrap().expect("served");
    for h in held {
        within("the other calls", h).await.unwrap().expect("served");
    }
    let entered = bs.iter().map(|b| b.greeter().entered()).sum();
    (hand_backs, reply.into_inner().message, entered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_handed_back_by_a_busy_server_is_sent_on_once_and_served() {
    let (hand_backs, reply, entered) = one_call_to_a_busy_fleet(client::config()).await;
    // Both backends are busy: the first hands the call back, the second
    // (not offered it) queues it.
    assert_eq!(hand_backs, 1);
    assert!(reply.starts_with("hello"), "{reply}");
    assert_eq!(entered, 5, "the call ran once, beside the four others");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hand_backs_off_a_call_waits_where_it_was_picked() {
    let (hand_backs, reply, entered) =
        one_call_to_a_busy_fleet(client::config().with_hand_backs(0)).await;
    assert_eq!(hand_backs, 0);
    assert!(reply.starts_with("hello"), "{reply}");
    assert_eq!(entered, 5);
}

/// Two servers that hand back every call they are offered, and a balancer
/// over them that has found both.
async fn two_that_always_hand_back() -> ([FaultServer; 2], Balancer) {
    let liars = [
        FaultServer::spawn(Fault::HandBack(true)).await,
        FaultServer::spawn(Fault::HandBack(true)).await,
    ];
    let balancer =
        Balancer::from_uris(client::config(), liars.iter().map(FaultServer::url)).unwrap();
    within("discovery", balancer.wait_for_endpoints(2)).await;
    (liars, balancer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_always_hand_back_cost_one_attempt_more_at_most() {
    let (mut liars, balancer) = two_that_always_hand_back().await;
    let mut c = GreeterClient::new(balancer.clone());
    let status = within("the call", c.say_hello(HelloRequest::default()))
        .await
        .unwrap_err();
    // Handed back by the first, then sent to the second not offered: its
    // claim is an UNAVAILABLE like any other.
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(balancer.snapshot().hand_backs, 1);
    let attempts: usize = liars.iter_mut().map(FaultServer::calls).sum();
    assert_eq!(attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_back_without_a_report_is_not_taken() {
    let mut liar = FaultServer::spawn(Fault::HandBack(false)).await;
    let bs = client::backends(&[("a", 0, 8)]).await;
    // Unsteered: the liar keeps being picked however it answers.
    let config = client::unsteered(client::config());
    let balancer = Balancer::from_uris(config, [liar.url(), bs[0].url()]).unwrap();
    within("discovery", balancer.wait_for_endpoints(2)).await;
    let mut c = GreeterClient::new(balancer.clone());
    let mut failed = 0;
    for _ in 0..20 {
        match within("a call", c.say_hello(HelloRequest::default())).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                failed += 1;
            }
        }
    }
    // Every call the liar got failed there, and none was sent on.
    assert!(failed >= 1, "the liar was never picked");
    assert_eq!(failed, liar.calls());
    assert_eq!(balancer.snapshot().hand_backs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_handed_back_is_sent_on_with_what_is_left_of_its_timeout() {
    let (mut liars, balancer) = two_that_always_hand_back().await;
    let mut c = GreeterClient::new(balancer.clone());
    let mut request = tonic::Request::new(HelloRequest::default());
    let timeout = Duration::from_secs(5);
    request.set_timeout(timeout);
    let started = Instant::now();
    let status = within("the call", c.say_hello(request)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(balancer.snapshot().hand_backs, 1);

    let (first, second) = two_attempts(&mut liars, "5000000u");
    assert_eq!(first, timeout);
    // What was left when it was sent on: no more than the timeout less the
    // first attempt's round trip, no less than the timeout less the call.
    assert!(second < first, "{second:?} after {first:?}");
    let rounding = Duration::from_micros(1);
    assert!(second + took + rounding >= timeout, "{second:?}, {took:?}");
}
