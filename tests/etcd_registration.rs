//! Servers register in a real etcd and leave it: joining is seen within a
//! second, a graceful drain fails no call, a killed server is dropped when its
//! lease expires, a lost lease is replaced.

mod etcd_support;

use std::time::Duration;

use etcd_support::{
    Discovered, Etcd, GREETER, Load, Node, NodeConfig, calls_pass, keys_of, replay, within_a_second,
};
use orca_lb_client::Change;
use orca_lb_etcd::DrainConfig;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::{wait_until, within};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_join_and_are_picked_within_a_second() {
    let etcd = Etcd::start().await;
    let a = Node::start(&etcd, NodeConfig::named("a")).await;
    let b = Node::start(&etcd, NodeConfig::named("b")).await;

    // From nothing to calls on both: one read of the prefix.
    let started = tokio::time::Instant::now();
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(2)).await;
    let load = Load::start(&d.balancer, 4);
    within_a_second("a and b picked", || load.ok("a") > 0 && load.ok("b") > 0).await;
    assert!(started.elapsed() < Duration::from_secs(1));

    // A server registering while calls run: one watch event.
    let c = Node::start(&etcd, NodeConfig::named("c")).await;
    within_a_second("c picked after registering", || load.ok("c") > 0).await;

    let tally = load.stop().await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(d.keys(), keys_of(&[&a, &b, &c]));
    assert_eq!(replay(&d.changes_since(0)), keys_of(&[&a, &b, &c]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_drain_fails_no_call() {
    let etcd = Etcd::start().await;
    let slow = |name| NodeConfig {
        service_time: Duration::from_millis(20),
        ..NodeConfig::named(name)
    };
    let a = Node::start(&etcd, slow("a")).await;
    let b = Node::start(&etcd, slow("b")).await;
    let c = Node::start(&etcd, slow("c")).await;
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(3)).await;
    let load = Load::start(&d.balancer, 8);
    wait_until("calls on every node", || {
        load.ok("a") > 0 && load.ok("b") > 0 && load.ok("c") > 0
    })
    .await;

    // A health watcher sees a turn NOT_SERVING, then lets go (an open stream
    // would hold the drain until its deadline).
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", a.addr))
        .expect("uri")
        .connect()
        .await
        .expect("health reachable");
    let mut health = HealthClient::new(channel);
    let mut statuses = health
        .watch(HealthCheckRequest {
            service: GREETER.into(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(r)) = statuses.message().await {
            seen.push(r.status());
            if r.status() == ServingStatus::NotServing {
                break;
            }
        }
        seen
    });

    let a_key = a.key();
    let report = a.drain().await;
    assert!(report.deregister_error.is_none(), "{report:?}");
    assert!(report.finished, "calls in flight finished: {report:?}");
    // Deregistration reached the client before the listener closed.
    assert_eq!(d.keys(), keys_of(&[&b, &c]));
    let a_calls = load.ok("a");
    calls_pass(&load, 200).await;
    let tally = load.stop().await;

    assert!(tally.failed.is_empty(), "failed calls: {:?}", tally.failed);
    assert_eq!(tally.ok("a"), a_calls, "no call reached a after its drain");
    assert!(tally.ok("b") > 0 && tally.ok("c") > 0);
    let seen = within("health watcher", watcher).await.expect("watcher");
    assert_eq!(
        seen,
        [ServingStatus::Serving, ServingStatus::NotServing],
        "health turned NOT_SERVING during the drain"
    );
    assert_eq!(d.changes_since(0).last(), Some(&Change::Remove(a_key)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_cuts_calls_that_run_too_long() {
    let etcd = Etcd::start().await;
    let node = Node::start(
        &etcd,
        NodeConfig {
            service_time: Duration::from_secs(30),
            drain: DrainConfig::default()
                .with_propagation(Duration::from_millis(50))
                .with_deadline(Duration::from_millis(300)),
            ..NodeConfig::named("slow")
        },
    )
    .await;
    let mut client = GreeterClient::connect(format!("http://{}", node.addr))
        .await
        .expect("reachable");
    let call = tokio::spawn(async move { client.say_hello(HelloRequest::default()).await });
    wait_until("the call is in flight", || node.recorder.in_flight() == 1).await;

    let report = node.drain().await;
    assert!(!report.finished, "the 30 s call cannot finish: {report:?}");
    assert!(
        report.took < Duration::from_secs(5),
        "the deadline bounds the drain: {report:?}"
    );
    let result = within("the cut call ends", call).await.expect("call task");
    assert!(result.is_err(), "the cut call fails: {result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_is_dropped_after_its_lease_ttl() {
    let etcd = Etcd::start().await;
    let ttl = Duration::from_secs(2);
    let a = Node::start(
        &etcd,
        NodeConfig {
            ttl,
            ..NodeConfig::named("a")
        },
    )
    .await;
    let b = Node::start(&etcd, NodeConfig::named("b")).await;
    let c = Node::start(&etcd, NodeConfig::named("c")).await;
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(3)).await;
    let load = Load::start(&d.balancer, 4);
    wait_until("calls on every node", || {
        load.ok("a") > 0 && load.ok("b") > 0 && load.ok("c") > 0
    })
    .await;

    // No deregistration: connections drop and the lease is left to expire.
    let a_key = a.key();
    a.kill();
    let killed = tokio::time::Instant::now();
    wait_until("a's lease expires", || !d.keys().contains(&a_key)).await;
    let gone_after = killed.elapsed();
    let failures_until_gone = load.failures();
    let state_when_gone = format!("{:#?}", d.balancer.snapshot());
    calls_pass(&load, 500).await;
    let tally = load.stop().await;

    // The last renewal was at most a third of the TTL before the kill, and
    // etcd checks expiry every 500 ms.
    assert!(
        gone_after >= ttl / 2 && gone_after <= ttl + Duration::from_secs(2),
        "removed {gone_after:?} after the kill, TTL {ttl:?}"
    );
    assert!(
        failures_until_gone <= 20,
        "the breaker ejects the dead endpoint: {failures_until_gone} failures, the first {:?}\n\
         the balancer when the key expired: {state_when_gone}",
        tally.failed.first()
    );
    assert_eq!(
        tally.failed.len(),
        failures_until_gone,
        "no failure once the key expired"
    );
    assert!(tally.ok("b") > 0 && tally.ok("c") > 0);
    assert_eq!(d.keys(), keys_of(&[&b, &c]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lease_is_replaced() {
    let etcd = Etcd::start().await;
    let a = Node::start(
        &etcd,
        NodeConfig {
            ttl: Duration::from_secs(3),
            ..NodeConfig::named("a")
        },
    )
    .await;
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(1)).await;
    let first = a.registration().lease_id().expect("a lease");

    // Someone revokes the lease: the key goes, the registration notices at
    // its next renewal and registers again under a new lease.
    etcd.client().lease_revoke(first).await.expect("revoke");
    wait_until("a removed and registered again", || {
        // The changes are logged as discovery yields them, before the
        // balancer applies them: wait for the balancer too.
        a.registration().registrations() == 2 && d.change_count() == 3 && d.keys() == [a.key()]
    })
    .await;
    assert_eq!(a.registration().lease_losses(), 1);
    assert_ne!(a.registration().lease_id(), Some(first));
    let changes = d.changes_since(0);
    assert!(
        matches!(
            changes.as_slice(),
            [Change::Insert(k1, _), Change::Remove(k2), Change::Insert(k3, _)]
                if *k1 == a.key() && *k2 == a.key() && *k3 == a.key()
        ),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_under_a_live_lease_is_written_again() {
    let etcd = Etcd::start().await;
    let a = Node::start(
        &etcd,
        NodeConfig {
            ttl: Duration::from_secs(3),
            ..NodeConfig::named("a")
        },
    )
    .await;
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(1)).await;
    let lease = a.registration().lease_id().expect("a lease");

    // `etcdctl del` of the key: the lease lives on, renewals succeed.
    assert_eq!(etcd.client().delete(a.key()).await.expect("delete"), 1);
    wait_until("a removed and written again", || {
        // As above: the balancer applies the last change after it is logged.
        a.registration().key_restores() == 1 && d.change_count() == 3 && d.keys() == [a.key()]
    })
    .await;
    assert_eq!(a.registration().lease_id(), Some(lease), "same lease");
    assert_eq!(a.registration().registrations(), 1);
    assert_eq!(a.registration().lease_losses(), 0);
    let kv = etcd
        .client()
        .get(a.key())
        .await
        .unwrap()
        .expect("the key is back");
    assert_eq!(kv.lease, lease);
}
