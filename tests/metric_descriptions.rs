//! Every metric orca-lb registers has a HELP text and, where it has one, its
//! unit, given to the recorder by the crate that registers it with no call
//! from the application.
//!
//! The descriptions are given once per process, to the recorder installed
//! then: this binary holds this one test, which installs its recorder as the
//! global one before anything else runs.

use std::collections::BTreeSet;

use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use orca_lb_client::{Balancer, BalancerConfig, DnsDiscovery};
use orca_lb_debug::DebugService;
use orca_lb_etcd::{EtcdClient, EtcdDiscovery, Registration, RegistrationConfig};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::{client, wait_until, within};

/// Every metric of every crate, as `docs/observability.md` lists them.
const ALL: &[&str] = &[
    "orca_lb_client_picks_total",
    "orca_lb_client_failures_total",
    "orca_lb_client_ejections_total",
    "orca_lb_client_reports_total",
    "orca_lb_client_invalid_reports_total",
    "orca_lb_client_oob_reports_dropped_total",
    "orca_lb_client_in_flight",
    "orca_lb_client_score_seconds",
    "orca_lb_client_breaker_state",
    "orca_lb_client_health_changes_total",
    "orca_lb_client_call_duration_seconds",
    "orca_lb_client_repicks_total",
    "orca_lb_client_hand_backs_total",
    "orca_lb_client_dns_failures_total",
    "orca_lb_client_zone_spill",
    "orca_lb_client_affinity_passed_on_total",
    "orca_lb_server_rejected_metrics_total",
    "orca_lb_server_dropped_metrics_total",
    "orca_lb_server_shed_calls_total",
    "orca_lb_server_refused_oob_subscribers_total",
    "orca_lb_debug_refused_watchers_total",
    "orca_lb_etcd_endpoints",
    "orca_lb_etcd_relists_total",
    "orca_lb_etcd_reconnects_total",
    "orca_lb_etcd_malformed_values_total",
    "orca_lb_etcd_registrations_total",
    "orca_lb_etcd_lease_losses_total",
    "orca_lb_etcd_keep_alive_failures_total",
    "orca_lb_etcd_key_restores_total",
];

/// An etcd address with nothing listening: bound, then released.
async fn no_etcd() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn every_registered_metric_has_a_description_and_unit() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the first recorder of this process");

    // Client and server: a balancer over a backend behind the reporting
    // layer, with one call through it.
    let backends = client::backends(&[("a", 1, 4)]).await;
    let balancer = client::balancer(client::config(), &backends).await;
    GreeterClient::new(balancer.clone())
        .say_hello(HelloRequest::default())
        .await
        .expect("a reply");
    // Health checking registers its counters with each endpoint.
    let mut health = client::config();
    health.target = "health".into();
    health.health_check = Some(orca_lb_client::HealthCheck::new(""));
    let _health = client::balancer(health, &backends).await;
    // Locality registers the spill gauge.
    let zoned =
        client::config()
            .with_target("zoned")
            .with_locality(orca_lb_client::LocalityConfig::new(
                orca_lb_client::Zone::new("a").unwrap(),
            ));
    let _zoned = client::balancer(zoned, &backends).await;
    // Affinity registers the passed-on counter with each endpoint.
    let keyed = client::config()
        .with_target("keyed")
        .with_affinity(orca_lb_client::AffinityConfig::metadata("x-user"));
    let _keyed = client::balancer(keyed, &backends).await;
    // DNS discovery registers its counter when its task starts.
    let _dns = Balancer::new(
        BalancerConfig::default().with_target("dns"),
        DnsDiscovery::new("localhost", 1).into_stream(),
    )
    .expect("valid config");
    // The debug service.
    let _debug = DebugService::new();
    // etcd discovery and registration, without an etcd: both register their
    // counters before they first reach it, and registration then fails.
    let etcd = EtcdClient::connect_lazy([no_etcd().await]).expect("a valid address");
    let _discovery = EtcdDiscovery::with_key_prefix(etcd.clone(), "/orca-lb/greeter/");
    let registration = within(
        "registration to fail",
        Registration::start(
            etcd,
            RegistrationConfig::new("greeter", "http://127.0.0.1:50051".parse().unwrap()),
        ),
    )
    .await;
    assert!(registration.is_err(), "no etcd listens there");

    let registered = || -> BTreeSet<String> {
        snapshotter
            .snapshot()
            .into_vec()
            .iter()
            .map(|(key, ..)| key.key().name().to_string())
            .collect()
    };
    wait_until("the DNS task registers its counter", || {
        registered().contains("orca_lb_client_dns_failures_total")
    })
    .await;

    let series = snapshotter.snapshot().into_vec();
    let names: BTreeSet<&str> = series.iter().map(|(key, ..)| key.key().name()).collect();
    assert_eq!(names, ALL.iter().copied().collect(), "registered metrics");
    for (key, unit, description, value) in &series {
        let name = key.key().name();
        let help = description
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has no description"));
        assert!(help.len() > 20 && help.ends_with('.'), "{name}: {help:?}");
        let expected = if name.ends_with("_seconds") {
            Some(Unit::Seconds)
        } else if name == "orca_lb_client_breaker_state" || name == "orca_lb_client_zone_spill" {
            // A 0-or-1 flag per state, a share from 0 to 1: no unit.
            None
        } else {
            Some(Unit::Count)
        };
        assert_eq!(*unit, expected, "{name}");
        if name.ends_with("_total") {
            assert!(matches!(value, DebugValue::Counter(_)), "{name}: {value:?}");
        }
    }
}
