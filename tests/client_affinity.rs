//! Session affinity: calls with the same key go to the same backend while
//! its load allows, move off a backend that is ejected or loaded past the
//! bound, and come back once it recovers; calls without a key spread as
//! before; a bad affinity config is refused when the balancer is built.
//!
//! Where a key lands is worked out with the same ring the balancer builds
//! (`HashRing` over the endpoint keys, in key order), so each test knows
//! which backend owns which key. Every wait polls the balancer's own state
//! (in-flight counts, breaker states) until it holds; nothing depends on
//! how long a step takes.

use std::time::Duration;

use orca_lb_client::{AffinityConfig, AffinityKey, Balancer, BalancerConfig, BuildError, CallKey};
use orca_lb_core::{BreakerState, CircuitBreakerConfig, HashRing, key_hash};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::{client, wait_until, within};
use tonic::Code;

const HEADER: &str = "x-user";

fn config() -> BalancerConfig {
    client::unsteered(client::config())
        .with_target("affinity")
        .with_affinity(AffinityConfig::metadata(HEADER))
}

/// The backend name that answers one call with affinity key `key` in the
/// `x-user` metadata entry.
async fn call_keyed(b: &Balancer, key: &str) -> String {
    let mut request = tonic::Request::new(HelloRequest::default());
    request
        .metadata_mut()
        .insert(HEADER, key.parse().expect("ascii key"));
    let reply = within(
        "keyed call",
        GreeterClient::new(b.clone()).say_hello(request),
    )
    .await;
    reply.expect("call succeeds").into_inner().backend
}

/// The same with the key as a [`CallKey`] extension.
async fn call_with_extension(b: &Balancer, key: &'static str) -> String {
    let mut request = tonic::Request::new(HelloRequest::default());
    request.extensions_mut().insert(CallKey::new(key));
    let reply = within(
        "keyed call",
        GreeterClient::new(b.clone()).say_hello(request),
    )
    .await;
    reply.expect("call succeeds").into_inner().backend
}

/// A key whose first choice on the balancer's ring is the backend at
/// `url`, among `urls`.
fn key_owned_by(urls: &[String], url: &str) -> String {
    let mut sorted = urls.to_vec();
    sorted.sort();
    let ring = HashRing::new(sorted.iter().map(String::as_str), 100);
    (0..)
        .map(|k| format!("user-{k}"))
        .find(|k| sorted[ring.owner(key_hash(k.as_bytes())).unwrap()] == url)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_goes_to_the_same_backend_and_unkeyed_calls_spread() {
    let bs = client::backends(&[("a", 1, 8), ("b", 1, 8), ("c", 1, 8), ("d", 1, 8)]).await;
    let b = client::balancer(config(), &bs).await;

    let mut homes = std::collections::HashSet::new();
    for k in 0..20 {
        let key = format!("user-{k}");
        let first = call_keyed(&b, &key).await;
        for _ in 0..4 {
            assert_eq!(call_keyed(&b, &key).await, first, "{key}");
        }
        homes.insert(first);
    }
    assert!(homes.len() >= 3, "20 keys on {homes:?}");
    // A key set by the application lands where the same metadata key does.
    let by_metadata = call_keyed(&b, "tenant-7").await;
    for _ in 0..5 {
        assert_eq!(call_with_extension(&b, "tenant-7").await, by_metadata);
    }

    // Every endpoint owns a share of the ring, and keyed calls are counted.
    let snapshot = b.snapshot();
    let shares: f64 = snapshot.endpoints.iter().map(|e| e.ring_share).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
    assert!(snapshot.endpoints.iter().all(|e| e.ring_share > 0.1));
    let keyed: u64 = snapshot.endpoints.iter().map(|e| e.keyed_calls).sum();
    assert_eq!(keyed, 20 * 5 + 6);
    assert!(snapshot.endpoints.iter().all(|e| e.passed_on == 0));

    // Without a key: the ordinary pick, spread over every backend.
    let tally = within("calls", client::drive(&b, 400, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    for name in ["a", "b", "c", "d"] {
        assert!(tally.ok(name) > 20, "{tally:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_move_off_an_ejected_backend_and_come_back() {
    let bs = client::backends(&[("a", 1, 8), ("b", 1, 8), ("c", 1, 8), ("d", 1, 8)]).await;
    let urls: Vec<String> = bs.iter().map(Backend::url).collect();
    let breaker = CircuitBreakerConfig::default()
        .with_consecutive_errors(2)
        .with_base_ejection_time(Duration::from_millis(200))
        .with_max_ejection_time(Duration::from_millis(800))
        .with_half_open_probes(1);
    let b = client::balancer(config().with_breaker(breaker), &bs).await;
    let key = key_owned_by(&urls, &urls[0]);
    assert_eq!(call_keyed(&b, &key).await, "a");

    bs[0].greeter().set_failing(Some(Code::Unavailable));
    client::eject(&b, &urls[0]).await;
    // Ejected: the key goes to one other backend, always the same.
    let elsewhere = call_keyed(&b, &key).await;
    assert_ne!(elsewhere, "a");
    for _ in 0..10 {
        assert_eq!(call_keyed(&b, &key).await, elsewhere);
    }
    // An ejected owner did not pass its key on because of load.
    assert_eq!(client::endpoint_state(&b, &urls[0]).passed_on, 0);

    // Healed and closed again (unkeyed calls carry the probe): back home.
    bs[0].greeter().set_failing(None);
    let mut calls = GreeterClient::new(b.clone());
    while client::endpoint_state(&b, &urls[0]).breaker != BreakerState::Closed {
        let _ = within("call", calls.say_hello(HelloRequest::default())).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..10 {
        assert_eq!(call_keyed(&b, &key).await, "a");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_move_off_a_loaded_backend_and_come_back() {
    // The owner holds its calls until the test lets them go: one call in
    // flight there puts it at the bound of an otherwise idle fleet.
    let mut bs = vec![
        Backend::spawn(BackendConfig {
            capacity: Some(8),
            greeter: Some(TestGreeter::new("slow").gated()),
            ..BackendConfig::named("slow")
        })
        .await
        .expect("backend starts"),
    ];
    bs.extend(client::backends(&[("b", 1, 8), ("c", 1, 8), ("d", 1, 8)]).await);
    let urls: Vec<String> = bs.iter().map(Backend::url).collect();
    let b = client::balancer(config(), &bs).await;
    let key = key_owned_by(&urls, &urls[0]);

    // The first call takes the owner's slot under the bound, and hangs.
    let held = tokio::spawn({
        let b = b.clone();
        let key = key.clone();
        async move { call_keyed(&b, &key).await }
    });
    wait_until("a call in flight on the owner", || {
        client::endpoint_state(&b, &urls[0]).in_flight == 1
    })
    .await;

    // Loaded: the key's calls go to the next backend on the ring.
    let next = call_keyed(&b, &key).await;
    assert_ne!(next, "slow");
    for _ in 0..9 {
        assert_eq!(call_keyed(&b, &key).await, next);
    }
    let owner = client::endpoint_state(&b, &urls[0]);
    assert_eq!(owner.passed_on, 10, "{owner:?}");

    // Load gone: the key is home again.
    bs[0].greeter().open_gate(100);
    assert_eq!(within("held call", held).await.unwrap(), "slow");
    wait_until("the owner idle", || {
        client::endpoint_state(&b, &urls[0]).in_flight == 0
    })
    .await;
    for _ in 0..5 {
        assert_eq!(call_keyed(&b, &key).await, "slow");
    }
    assert_eq!(client::endpoint_state(&b, &urls[0]).passed_on, 10);
}

#[tokio::test]
async fn a_bad_affinity_config_is_refused_at_construction() {
    let cases = [
        (AffinityConfig::metadata(""), "affinity.key"),
        (AffinityConfig::metadata("X-User"), "affinity.key"),
        (
            AffinityConfig::metadata("x-user").with_epsilon(0.0),
            "affinity.epsilon",
        ),
        (
            AffinityConfig::metadata("x-user").with_epsilon(-1.0),
            "affinity.epsilon",
        ),
        (
            AffinityConfig::metadata("x-user").with_epsilon(f64::NAN),
            "affinity.epsilon",
        ),
        (
            AffinityConfig::new(AffinityKey::Application).with_virtual_nodes(0),
            "affinity.virtual_nodes",
        ),
    ];
    for (affinity, field) in cases {
        let config = client::config().with_affinity(affinity.clone());
        match Balancer::from_uris(config, ["http://127.0.0.1:1"]) {
            Err(BuildError::Config(e)) => assert_eq!(e.field(), field, "{affinity:?}: {e}"),
            other => panic!("{affinity:?} accepted: {:?}", other.map(|_| ())),
        }
    }
    let err = client::config()
        .with_affinity(AffinityConfig::metadata("x-user").with_epsilon(0.0))
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid balancer config: affinity.epsilon: invalid affinity config: epsilon = 0 must be greater than 0"
    );
}
