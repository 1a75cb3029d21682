//! The client's metrics as a recorder sees them: one call-duration sample per
//! completed unary call, the breaker's state as one series per state, and
//! health changes counted by the state entered.
//!
//! Each test records into its own `DebuggingRecorder`, set as the default of
//! the test's thread: the tests run on single-threaded runtimes, so the
//! balancer's and the backends' tasks record there too, and tests do not see
//! each other's series.

use std::time::Duration;

use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use orca_lb_client::{Balancer, HealthCheck, HealthState};
use orca_lb_core::CircuitBreakerConfig;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_tests::{WAIT_LIMIT, client, within};
use tokio_stream::StreamExt;
use tonic::Code;

/// Every series a recorder holds, as of one snapshot: taking a snapshot
/// resets counters and gauges and empties histograms, so a test reads all it
/// needs from one.
type Series = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

fn label<'a>(key: &'a CompositeKey, name: &str) -> Option<&'a str> {
    key.key()
        .labels()
        .find(|l| l.key() == name)
        .map(|l| l.value())
}

/// The value of the series `name` whose labels include every pair of
/// `labels`; panics if there is not exactly one.
fn value<'a>(series: &'a Series, name: &str, labels: &[(&str, &str)]) -> &'a DebugValue {
    let found: Vec<&DebugValue> = series
        .iter()
        .filter(|(key, ..)| {
            key.key().name() == name && labels.iter().all(|&(k, v)| label(key, k) == Some(v))
        })
        .map(|(.., value)| value)
        .collect();
    assert_eq!(found.len(), 1, "series {name} {labels:?}: {found:?}");
    found[0]
}

/// The `orca_lb_client_breaker_state` series of `endpoint`, as
/// (closed, open, half_open).
fn breaker_states(series: &Series, endpoint: &str) -> (f64, f64, f64) {
    let state = |state: &str| match value(
        series,
        "orca_lb_client_breaker_state",
        &[("endpoint", endpoint), ("state", state)],
    ) {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("breaker state is not a gauge: {other:?}"),
    };
    (state("closed"), state("open"), state("half_open"))
}

#[tokio::test]
async fn call_duration_gets_one_sample_per_completed_unary_call() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    // Every call takes at least the backends' 2 ms of service time.
    let backends = client::backends(&[("a", 2, 4), ("b", 2, 4)]).await;
    let config = client::config().with_target("timed");
    let balancer = client::balancer(config, &backends).await;
    let mut greeter = GreeterClient::new(balancer.clone());

    let (mut ok, mut failed) = (0, 0);
    for i in 0..20 {
        // Every fourth call fails: a status ends a call as well as a reply.
        let request = HelloRequest {
            fail_with_code: if i % 4 == 0 { Code::NotFound as u32 } else { 0 },
            ..HelloRequest::default()
        };
        match within("a unary call", greeter.say_hello(request)).await {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                failed += 1;
            }
        }
    }
    assert_eq!((ok, failed), (15, 5));
    // A stream through the same balancer is not a call of the histogram.
    let request = HelloRequest {
        count: 3,
        ..HelloRequest::default()
    };
    let mut replies = within("a stream", greeter.say_hello_stream(request))
        .await
        .expect("stream opens")
        .into_inner();
    let mut received = 0;
    while let Some(reply) = within("a reply", replies.next()).await {
        reply.expect("a reply");
        received += 1;
    }
    assert_eq!(received, 3);

    let series = snapshotter.snapshot().into_vec();
    let DebugValue::Histogram(samples) = value(
        &series,
        "orca_lb_client_call_duration_seconds",
        &[("target_name", "timed")],
    ) else {
        panic!("call duration is not a histogram");
    };
    assert_eq!(samples.len(), 20, "{samples:?}");
    for s in samples {
        let seconds = s.into_inner();
        assert!(
            (0.002..WAIT_LIMIT.as_secs_f64()).contains(&seconds),
            "a call of 2 ms or more recorded as {seconds} s"
        );
    }
}

#[tokio::test]
async fn breaker_state_series_flip_on_ejection() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    let backends = client::backends(&[("a", 1, 4), ("b", 1, 4), ("bad", 1, 4)]).await;
    backends[2].greeter().set_failing(Some(Code::Unavailable));
    let config = client::unsteered(
        client::config().with_target("flipping").with_breaker(
            CircuitBreakerConfig::default()
                .with_consecutive_errors(2)
                // Ejected for the rest of the test: nothing flips it back.
                .with_base_ejection_time(Duration::from_secs(600))
                .with_max_ejection_time(Duration::from_secs(600)),
        ),
    );
    let balancer = client::balancer(config, &backends).await;
    let bad = backends[2].url();

    // Registered closed when the endpoint was added.
    let before = snapshotter.snapshot().into_vec();
    for backend in &backends {
        assert_eq!(breaker_states(&before, &backend.url()), (1.0, 0.0, 0.0));
    }

    client::eject(&balancer, &bad).await;

    // Set by the transition itself (and by every maintenance pass since).
    let after = snapshotter.snapshot().into_vec();
    assert_eq!(breaker_states(&after, &bad), (0.0, 1.0, 0.0));
    let ejections = value(
        &after,
        "orca_lb_client_ejections_total",
        &[("target_name", "flipping"), ("endpoint", &bad)],
    );
    assert_eq!(ejections, &DebugValue::Counter(1));
}

#[tokio::test]
async fn a_re_picked_call_is_one_sample() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    let backends = client::backends(&[("a", 1, 8), ("b", 1, 8)]).await;
    // Nothing listens on the first: a call picked there never reaches a
    // server and goes to another endpoint (re-picks are on by default).
    let refusing = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let urls = [refusing, backends[0].url(), backends[1].url()];
    let config = client::unsteered(client::config().with_target("repicking"));
    let balancer = Balancer::from_uris(config, &urls).expect("valid config");
    within("discovery", balancer.wait_for_endpoints(3)).await;
    let mut greeter = GreeterClient::new(balancer.clone());
    // Each call draws the refusing endpoint with a chance of about one in
    // three until it is ejected: 60 calls leave no room for chance.
    for _ in 0..60 {
        within("a unary call", greeter.say_hello(HelloRequest::default()))
            .await
            .expect("re-picked to a live endpoint");
    }
    let repicks = balancer.snapshot().repicks;
    assert!(repicks >= 1, "no call went to the refusing endpoint");

    let series = snapshotter.snapshot().into_vec();
    let DebugValue::Histogram(samples) = value(
        &series,
        "orca_lb_client_call_duration_seconds",
        &[("target_name", "repicking")],
    ) else {
        panic!("call duration is not a histogram");
    };
    assert_eq!(samples.len(), 60, "{repicks} re-picks");
    assert_eq!(
        value(
            &series,
            "orca_lb_client_repicks_total",
            &[("target_name", "repicking")]
        ),
        &DebugValue::Counter(repicks)
    );
}

#[tokio::test]
async fn every_health_change_is_counted_by_the_state_entered() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    let mut backend_config = orca_lb_testkit::BackendConfig::named("a");
    backend_config.health = true;
    let backend = orca_lb_testkit::Backend::spawn(backend_config)
        .await
        .unwrap();
    let health = backend.health().expect("a health service").clone();
    let mut config = client::config();
    config.target = "health".into();
    config.health_check = Some(HealthCheck::new(""));
    let balancer = client::balancer(config, std::slice::from_ref(&backend)).await;
    let url = backend.url();
    let is = |state: HealthState| {
        let balancer = balancer.clone();
        move || balancer.snapshot().endpoints[0].health == Some(state)
    };
    orca_lb_tests::wait_until("serving", is(HealthState::Serving)).await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    orca_lb_tests::wait_until("not serving", is(HealthState::NotServing)).await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    orca_lb_tests::wait_until("serving again", is(HealthState::Serving)).await;

    let series: Series = snapshotter.snapshot().into_vec();
    let count = |state: &str| match value(
        &series,
        "orca_lb_client_health_changes_total",
        &[("endpoint", url.as_str()), ("state", state)],
    ) {
        DebugValue::Counter(n) => *n,
        other => panic!("not a counter: {other:?}"),
    };
    assert_eq!(
        ["unknown", "serving", "not_serving", "unimplemented"].map(count),
        [0, 2, 1, 0]
    );
}
