//! Transparent re-pick: a call that never reached a server goes to another
//! endpoint, once, within the retry budget; a killed backend costs only the
//! calls in service on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orca_lb_client::Balancer;
use orca_lb_core::RetryBudget;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::child_backend::ChildBackend;
use orca_lb_tests::client::{self, drive};
use orca_lb_tests::fault_server::{Fault, FaultServer, two_attempts};
use orca_lb_tests::open_loop::{call_through, open_loop};
use orca_lb_tests::within;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// A port with nothing listening on it.
fn refusing_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_refusing_endpoint_goes_to_another_once() {
    let bs = client::backends(&[("a", 1, 8), ("b", 1, 8)]).await;
    let urls = [refusing_url(), bs[0].url(), bs[1].url()];

    // Re-picks off: the calls that go to the refusing endpoint fail.
    let off = Balancer::from_uris(
        client::config().with_transparent_retry(RetryBudget::off()),
        &urls,
    )
    .unwrap();
    within("discovery", off.wait_for_endpoints(3)).await;
    let tally = within("calls", drive(&off, 60, 1)).await;
    assert!(
        !tally.failed.is_empty(),
        "no call went to the refusing endpoint"
    );
    assert_eq!(off.snapshot().repicks, 0);

    // On (the default): they go to another endpoint and succeed.
    let on = Balancer::from_uris(client::config(), &urls).unwrap();
    within("discovery", on.wait_for_endpoints(3)).await;
    let tally = within("calls", drive(&on, 60, 1)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());
    assert!(on.snapshot().repicks >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_fleet_gets_no_more_repicks_than_the_budget() {
    let urls = [refusing_url(), refusing_url(), refusing_url()];
    let budget = RetryBudget::default()
        .with_ratio(0.1)
        .with_min_per_window(5)
        .with_window(Duration::from_secs(60));
    let b = Balancer::from_uris(client::config().with_transparent_retry(budget), &urls).unwrap();
    within("discovery", b.wait_for_endpoints(3)).await;
    let mut client = GreeterClient::new(b.clone());
    let calls = 200;
    for _ in 0..calls {
        let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let repicks = b.snapshot().repicks;
    // Re-picks count among the calls picked: at most 10 % of all picks, or
    // the minimum.
    let limit = budget.allowance(calls + repicks);
    println!("{calls} calls to a dead fleet: {repicks} re-picks (limit {limit})");
    assert!(repicks >= 1, "the budget's minimum allows some");
    assert!(repicks <= limit, "{repicks} re-picks over {limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_everywhere_is_repicked_once_with_what_is_left_of_its_timeout() {
    // Both refuse the stream unread: the call goes to the other once, and
    // no more, although it is offered for hand-back and so keeps its whole
    // request.
    let mut servers = [
        FaultServer::spawn(Fault::RefuseStream).await,
        FaultServer::spawn(Fault::RefuseStream).await,
    ];
    let b = Balancer::from_uris(client::config(), servers.iter().map(FaultServer::url)).unwrap();
    within("discovery", b.wait_for_endpoints(2)).await;
    let mut c = GreeterClient::new(b.clone());
    let mut request = tonic::Request::new(HelloRequest::default());
    let timeout = Duration::from_millis(1500);
    request.set_timeout(timeout);
    let started = std::time::Instant::now();
    let status = within("the call", c.say_hello(request)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(b.snapshot().repicks, 1);

    let (first, second) = two_attempts(&mut servers, "1500000u");
    assert_eq!(first, timeout);
    assert!(second < first, "{second:?} after {first:?}");
    let rounding = Duration::from_micros(1);
    assert!(second + took + rounding >= timeout, "{second:?}, {took:?}");
}

const RATE_PER_SEC: u64 = 500;
const RUN: Duration = Duration::from_secs(2);
const SERVICE_MS: u64 = 20;
const DEADLINE: Duration = Duration::from_secs(5);

fn four_backends() -> Vec<ChildBackend> {
    ChildBackend::spawn_fleet(env!("CARGO_BIN_EXE_orca-lb-test-backend"), 4, SERVICE_MS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_backend_in_four_fails_only_the_calls_in_service_on_it() {
    // The balancer.
    let mut backends = four_backends();
    let balancer = client::balancer_over_urls(backends.iter().map(|b| b.url().to_string())).await;
    let victim_key = backends[3].url().to_string();
    // On the victim: (calls in flight, calls sent to it so far).
    let on_victim = {
        let victim_key = victim_key.clone();
        move |b: &Balancer| {
            b.snapshot()
                .endpoints
                .iter()
                .find(|e| e.key == victim_key)
                .map_or((0, 0), |e| (e.in_flight as usize, e.recent_picks as usize))
        }
    };
    let in_service = Arc::new(AtomicUsize::new(0));
    let picks_at_kill = Arc::new(AtomicUsize::new(0));
    let run = {
        let b = balancer.clone();
        let in_service = in_service.clone();
        let picks_at_kill = picks_at_kill.clone();
        let on_victim = on_victim.clone();
        let victim = &mut backends[3];
        within(
            "balanced load",
            open_loop(
                RATE_PER_SEC,
                RUN,
                {
                    let client = GreeterClient::new(balancer.clone());
                    move || call_through(&client, DEADLINE)
                },
                move || {
                    let (before, picks_before) = on_victim(&b);
                    victim.kill();
                    // Calls sent to it between the count and its death were
                    // in service on it too.
                    let (after, picks_after) = on_victim(&b);
                    in_service.store(
                        before.max(after) + (picks_after - picks_before),
                        Ordering::SeqCst,
                    );
                    picks_at_kill.store(picks_after, Ordering::SeqCst);
                },
            ),
        )
        .await
    };
    let in_service = in_service.load(Ordering::SeqCst);
    // Calls sent to the dead backend before the client saw its connection
    // go: written to a socket whose peer was gone, they cannot be proven
    // unprocessed, so they fail rather than being sent again. (The run is
    // shorter than the 10 s window of `recent_picks`.)
    let sent_after_kill = on_victim(&balancer)
        .1
        .saturating_sub(picks_at_kill.load(Ordering::SeqCst));
    let repicks = balancer.snapshot().repicks;
    drop(backends);

    // tonic's own balanced Channel over the same kind of fleet.
    let backends = four_backends();
    let endpoints = backends
        .iter()
        .map(|b| Endpoint::from_shared(b.url().to_string()).unwrap());
    let channel = Channel::balance_list(endpoints);
    let mut backends = backends;
    let plain = {
        let victim = &mut backends[3];
        within(
            "plain load",
            open_loop(
                RATE_PER_SEC,
                RUN,
                {
                    let client = GreeterClient::new(channel);
                    move || call_through(&client, DEADLINE)
                },
                move || victim.kill(),
            ),
        )
        .await
    };
    drop(backends);

    println!(
        "kill -9 of 1 of 4 backends under {RATE_PER_SEC} calls/s ({SERVICE_MS} ms service): \
         balancer {} of {} calls failed ({in_service} in service on it, {sent_after_kill} sent to it \
         after, {repicks} re-picked), codes {:?}; \
         tonic balance_list Channel {} of {} failed, codes {:?}",
        run.failed.len(),
        run.calls,
        run.codes(),
        plain.failed.len(),
        plain.calls,
        plain.codes(),
    );
    for status in &run.failed {
        assert!(
            status.message().contains(&victim_key),
            "a failure on another backend: {status:?}"
        );
    }
    assert!(
        run.failed.len() <= in_service + sent_after_kill,
        "{} failed, {in_service} were in service on the killed backend, \
         {sent_after_kill} sent to it after",
        run.failed.len()
    );
    assert!(
        sent_after_kill <= plain.failed.len() / 2,
        "{sent_after_kill} calls went to the dead backend after its death, \
         against {} failed through tonic's Channel",
        plain.failed.len()
    );
    assert_eq!(run.hung, 0, "every call ends by its deadline");
}
