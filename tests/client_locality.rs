//! Locality: calls stay in the client's zone while it is lightly loaded,
//! spill over to the other zone when its servers report high utilization,
//! and come back when it recovers.
//!
//! Every wait polls the balancer's own state (its spill share) until it
//! holds, then asserts on calls sent after: nothing depends on how long a
//! step takes. With the spill at exactly 0 or 1, where every pick goes is
//! certain.
//!
//! The test records into its own `DebuggingRecorder`, the default of its
//! single-threaded runtime, as `client_metrics.rs` does.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use orca_lb_client::{Balancer, LocalityConfig, Zone};
use orca_lb_tests::{client, wait_until, within};

/// Calls served per zone: (zone a, zone b).
fn by_zone(t: &client::Tally) -> (usize, usize) {
    assert!(t.failed.is_empty(), "{:?}", t.failed);
    (t.ok("a1") + t.ok("a2"), t.ok("b1") + t.ok("b2"))
}

#[tokio::test]
async fn calls_stay_local_spill_under_load_and_come_back() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    let bs = client::backends(&[("a1", 1, 8), ("a2", 1, 8), ("b1", 1, 8), ("b2", 1, 8)]).await;
    // A known, light load everywhere (not the machine's CPU).
    for b in &bs {
        b.recorder().set_application_utilization(0.1).unwrap();
    }
    let zone_a = Zone::new("a").unwrap();
    // Out-of-band reports: a zone that gets no calls still reports.
    let config = client::config()
        .with_target("zoned")
        .with_oob_interval(Duration::from_millis(20))
        .with_locality(LocalityConfig::new(zone_a.clone()));
    let zones = ["a", "a", "b", "b"];
    let balancer = Balancer::from_zoned_uris(config, bs.iter().map(|b| b.url()).zip(zones))
        .expect("valid config");
    within("endpoints discovered", balancer.wait_for_endpoints(4)).await;

    let snapshot = balancer.snapshot();
    assert_eq!(snapshot.local_zone.as_ref(), Some(&zone_a));
    for e in &snapshot.endpoints {
        let backend = bs.iter().position(|b| b.url() == e.key).unwrap();
        assert_eq!(e.zone.as_ref().map(Zone::as_str), Some(zones[backend]));
    }

    // Light load: every call stays in zone a.
    let tally = within("calls", client::drive(&balancer, 200, 4)).await;
    assert_eq!(by_zone(&tally), (200, 0), "{:#?}", balancer.snapshot());
    assert_eq!(balancer.snapshot().spill, 0.0);

    // Zone a reports itself nearly full: calls start to leave it...
    for b in &bs[..2] {
        b.recorder().set_application_utilization(0.95).unwrap();
    }
    wait_until("half the calls spill", || balancer.snapshot().spill >= 0.5).await;
    let tally = within("calls", client::drive(&balancer, 200, 4)).await;
    let (_, remote) = by_zone(&tally);
    assert!(remote >= 60, "{remote} of 200 spilled: {tally:?}");
    // ...until all of them do.
    wait_until("every call spills", || balancer.snapshot().spill == 1.0).await;
    let tally = within("calls", client::drive(&balancer, 200, 4)).await;
    assert_eq!(by_zone(&tally), (0, 200));
    let series = snapshotter.snapshot().into_vec();
    let gauge: Vec<f64> = series
        .iter()
        .filter(|(key, ..)| key.key().name() == "orca_lb_client_zone_spill")
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "target_name" && l.value() == "zoned")
        })
        .map(|(.., value)| match value {
            DebugValue::Gauge(v) => v.into_inner(),
            other => panic!("zone spill is not a gauge: {other:?}"),
        })
        .collect();
    assert_eq!(gauge, [1.0], "the gauge shows the spill");

    // Zone a recovers: calls come back, gradually, then all of them.
    for b in &bs[..2] {
        b.recorder().set_application_utilization(0.1).unwrap();
    }
    wait_until("calls come back", || balancer.snapshot().spill == 0.0).await;
    let tally = within("calls", client::drive(&balancer, 200, 4)).await;
    assert_eq!(by_zone(&tally), (200, 0));
}

#[tokio::test]
async fn with_no_local_endpoint_eligible_calls_go_elsewhere() {
    let bs = client::backends(&[("a1", 1, 4), ("b1", 1, 4)]).await;
    // The client's zone has no endpoint at all.
    let config = client::config().with_locality(LocalityConfig::new(Zone::new("c").unwrap()));
    let balancer = Balancer::from_zoned_uris(config, [(bs[0].url(), "a"), (bs[1].url(), "b")])
        .expect("valid config");
    within("endpoints discovered", balancer.wait_for_endpoints(2)).await;
    let tally = within("calls", client::drive(&balancer, 100, 2)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(tally.ok("a1") + tally.ok("b1"), 100);
    wait_until("the spill is whole", || balancer.snapshot().spill == 1.0).await;
}

#[tokio::test]
async fn a_bad_zone_is_refused_naming_the_endpoint() {
    let err =
        Balancer::from_zoned_uris(client::config(), [("http://127.0.0.1:1", "a\nb")]).unwrap_err();
    assert!(
        matches!(&err, orca_lb_client::BuildError::InvalidZone { uri, .. } if uri == "http://127.0.0.1:1"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "invalid zone for endpoint \"http://127.0.0.1:1\": invalid zone: unprintable character at 1"
    );
}
