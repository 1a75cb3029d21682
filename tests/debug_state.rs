//! The debug service, over a real gRPC connection, shows what a balancer
//! knows and decided: ejections with their reason and age, states, and
//! scores that follow reported load.

use std::time::Duration;

use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_core::CircuitBreakerConfig;
use orca_lb_debug::pb::balancer_debug_client::BalancerDebugClient;
use orca_lb_debug::pb::{self, GetStateRequest, WatchStateRequest};
use orca_lb_debug::{DebugServer, DebugService, render, serve_debug};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
use orca_lb_tests::{WAIT_LIMIT, client, greeter, wait_until, within};
use tonic::Code;
use tonic::transport::Channel;

/// Three backends: `a` fast, `deep` slow with a deep queue, `bad` failing
/// every call with UNAVAILABLE; a balancer over them registered with a
/// served debug service.
struct Scenario {
    backends: Vec<Backend>,
    server: DebugServer,
    /// The debug service only observes it: kept alive here.
    _balancer: Balancer,
}

const A: usize = 0;
const DEEP: usize = 1;
const BAD: usize = 2;

/// A config where the breaker alone reacts to failures (see
/// [`client::unsteered`]), the ejection outlasts the test, and out-of-band
/// reports keep every endpoint's load fresh.
fn config() -> BalancerConfig {
    client::unsteered(
        client::config()
            .with_breaker(
                CircuitBreakerConfig::default()
                    .with_consecutive_errors(3)
                    .with_base_ejection_time(Duration::from_secs(60))
                    .with_max_ejection_time(Duration::from_secs(240))
                    .with_half_open_probes(1),
            )
            .with_oob_interval(Some(Duration::from_millis(20))),
    )
}

async fn backend(name: &str, service_time: Duration) -> Backend {
    // No capacity: utilization is then the reported CPU (0), so the deep
    // queue below is shown without tripping the overload breaker.
    Backend::spawn(BackendConfig {
        service_time: ServiceTime::Fixed(service_time),
        ..BackendConfig::named(name)
    })
    .await
    .expect("backend starts")
}

/// Builds the scenario and drives it until `bad` is ejected.
async fn scenario() -> Scenario {
    let backends = vec![
        backend("a", Duration::from_millis(1)).await,
        // Slower than `a` by far more than a busy machine's scheduling
        // delays can make a 1 ms call.
        backend("deep", Duration::from_millis(60)).await,
        backend("bad", Duration::from_millis(1)).await,
    ];
    backends[BAD].greeter().set_failing(Some(Code::Unavailable));
    backends[DEEP].recorder().set_queue_depth(40);
    // One call to each healthy backend directly, so each reports a service
    // time out of band from the start.
    for b in &backends[..BAD] {
        greeter(b.url())
            .await
            .say_hello(HelloRequest::default())
            .await
            .expect("direct call");
    }
    let balancer = client::balancer(config(), &backends).await;

    // Sequential calls until the breaker ejects `bad`: exactly three failures.
    let failures = client::eject(&balancer, &backends[BAD].url()).await;
    assert_eq!(failures, 3, "{:#?}", balancer.snapshot());
    // Every healthy endpoint's load has arrived (out of band), the deep
    // queue included.
    wait_until("every load reported", || {
        let a = client::endpoint_state(&balancer, &backends[A].url());
        let deep = client::endpoint_state(&balancer, &backends[DEEP].url());
        a.service_time.is_some() && deep.service_time.is_some() && deep.queue_depth == Some(40.0)
    })
    .await;

    let debug = DebugService::new();
    debug.register("greeter", &balancer);
    let server = serve_debug("127.0.0.1:0", debug)
        .await
        .expect("debug server starts");
    Scenario {
        backends,
        server,
        _balancer: balancer,
    }
}

async fn debug_client(server: &DebugServer) -> BalancerDebugClient<Channel> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
            .expect("valid uri")
            .connect()
            .await
            .expect("debug server reachable");
    BalancerDebugClient::new(channel)
}

fn find<'a>(b: &'a pb::Balancer, url: &str) -> &'a pb::Endpoint {
    b.endpoints
        .iter()
        .find(|e| e.key == url)
        .unwrap_or_else(|| panic!("{url} in {b:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_state_shows_the_ejected_endpoint_its_reason_and_the_score_order() {
    let s = scenario().await;
    let state = within(
        "GetState",
        debug_client(&s.server)
            .await
            .get_state(GetStateRequest::default()),
    )
    .await
    .expect("GetState")
    .into_inner();

    assert_eq!(state.balancers.len(), 1, "{state:#?}");
    let b = &state.balancers[0];
    assert_eq!((b.name.as_str(), b.target.as_str()), ("greeter", "greeter"));
    assert_eq!(b.endpoints.len(), 3);
    assert_eq!(b.ejected, 1);
    assert!(!b.panic);

    let bad = find(b, &s.backends[BAD].url());
    assert_eq!(bad.state(), pb::EndpointState::Ejected, "{bad:#?}");
    assert!(!bad.eligible);
    assert!(bad.recent_failures >= 3, "{bad:#?}");
    let circuit = bad.circuit.as_ref().expect("circuit");
    assert_eq!(circuit.state(), pb::CircuitState::Open);
    assert_eq!(circuit.ejections, 1);
    let t = circuit.last_transition.as_ref().expect("a transition");
    assert_eq!(t.to(), pb::CircuitState::Open);
    let reason = t.reason.as_ref().expect("a reason");
    assert_eq!(reason.kind(), pb::open_reason::Kind::ConsecutiveErrors);
    assert_eq!(reason.value, Some(3.0));
    let age = Duration::try_from(t.age.expect("an age")).expect("non-negative age");
    assert!(age < WAIT_LIMIT * 2, "{age:?}");

    for i in [A, DEEP] {
        let e = find(b, &s.backends[i].url());
        assert_eq!(e.state(), pb::EndpointState::Ready, "{e:#?}");
        let circuit = e.circuit.as_ref().expect("circuit");
        assert_eq!(circuit.state(), pb::CircuitState::Closed);
        assert!(circuit.last_transition.is_none(), "{e:#?}");
        let signals = e.signals.as_ref().expect("signals");
        assert!(
            signals.reports > 0 && signals.report_age.is_some(),
            "{e:#?}"
        );
        assert_eq!(signals.invalid_reports, 0);
    }

    // The slow backend with the deep queue reports it, and costs the most.
    let score = |i: usize| {
        let e = find(b, &s.backends[i].url());
        e.score.as_ref().expect("score").total_seconds
    };
    let deep = find(b, &s.backends[DEEP].url());
    let signals = deep.signals.as_ref().expect("signals");
    assert_eq!(signals.queue_depth, Some(40.0));
    let service_time = signals.service_time_seconds.expect("reported service time");
    assert!(service_time > 0.050, "{deep:#?}");
    assert!(score(DEEP) > score(A), "{b:#?}");
    // Each score is the sum of its terms.
    for e in &b.endpoints {
        let sc = e.score.as_ref().expect("score");
        let sum = sc.base_seconds + sc.completion_seconds + sc.failure_seconds;
        assert!((sc.total_seconds - sum).abs() < 1e-9, "{sc:?}");
    }

    // The table the CLI prints names every endpoint and state.
    let table = render::table(&state);
    for backend in &s.backends {
        assert!(table.contains(&backend.url()), "{table}");
    }
    assert!(table.contains("ready"), "{table}");
    assert!(table.contains("open (3 consecutive errors, "), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_state_streams_states_at_the_interval() {
    let s = scenario().await;
    let mut stream = within(
        "WatchState",
        debug_client(&s.server)
            .await
            .watch_state(WatchStateRequest {
                interval: Some(Duration::from_millis(50).try_into().expect("small")),
                balancer: "greeter".into(),
            }),
    )
    .await
    .expect("WatchState")
    .into_inner();
    for _ in 0..3 {
        let state = within("a state", stream.message())
            .await
            .expect("stream open")
            .expect("a state");
        assert_eq!(state.balancers.len(), 1);
        assert_eq!(state.balancers[0].endpoints.len(), 3);
        let bad = find(&state.balancers[0], &s.backends[BAD].url());
        assert_eq!(bad.state(), pb::EndpointState::Ejected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_balancers_and_bad_intervals_are_refused() {
    let s = scenario().await;
    let mut client = debug_client(&s.server).await;
    let err = client
        .get_state(GetStateRequest {
            balancer: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("\"greeter\""), "{err}");
    let err = client
        .watch_state(WatchStateRequest {
            interval: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
            balancer: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_connecting_until_heard_from() {
    // A balancer that has made no call and takes no out-of-band reports.
    let bs = client::backends(&[("a", 1, 4)]).await;
    let balancer = client::balancer(client::config(), &bs).await;
    let debug = DebugService::new();
    debug.register("quiet", &balancer);
    let server = serve_debug("127.0.0.1:0", debug).await.expect("serves");
    let mut client = debug_client(&server).await;

    let state = client
        .get_state(GetStateRequest::default())
        .await
        .expect("GetState")
        .into_inner();
    let e = &state.balancers[0].endpoints[0];
    assert_eq!(e.state(), pb::EndpointState::Connecting, "{e:#?}");
    let signals = e.signals.as_ref().expect("signals");
    assert_eq!(signals.reports, 0);
    assert!(signals.report_age.is_none() && signals.utilization.is_none());

    GreeterClient::new(balancer.clone())
        .say_hello(HelloRequest::default())
        .await
        .expect("call");
    wait_until("the response is taken in", || {
        balancer.snapshot().endpoints[0].responses == 1
    })
    .await;
    let state = client
        .get_state(GetStateRequest::default())
        .await
        .expect("GetState")
        .into_inner();
    let e = &state.balancers[0].endpoints[0];
    assert_eq!(e.state(), pb::EndpointState::Ready, "{e:#?}");
    assert_eq!(e.recent_picks, 1);
    let signals = e.signals.as_ref().expect("signals");
    assert_eq!(signals.responses, 1);
    assert!(signals.latency_seconds.is_some() && signals.response_age.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_endpoint_serves_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = serve_debug("127.0.0.1:0", DebugService::new())
        .await
        .expect("serves");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
            .expect("valid uri")
            .connect()
            .await
            .expect("reachable");

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: pb::SERVICE_NAME.into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = within("reflection reply", responses.message())
        .await
        .expect("stream open")
        .expect("a reply");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&pb::SERVICE_NAME), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    // A debug service with nothing registered says so.
    let state = BalancerDebugClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
            .expect("valid uri")
            .connect()
            .await
            .expect("reachable"),
    )
    .get_state(GetStateRequest::default())
    .await
    .expect("GetState")
    .into_inner();
    assert!(state.balancers.is_empty());
    assert_eq!(render::table(&state), "no balancer registered\n");
    within("shutdown", server.shutdown())
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_does_not_keep_balancers_alive() {
    let bs = client::backends(&[("a", 1, 4)]).await;
    let kept = client::balancer(client::config(), &bs).await;
    let dropped = client::balancer(client::config(), &bs).await;
    let debug = DebugService::new();
    assert!(!debug.register("kept", &kept));
    assert!(!debug.register("dropped", &dropped));
    let weak = dropped.downgrade();
    let server = serve_debug("127.0.0.1:0", debug.clone())
        .await
        .expect("serves");
    let mut client = debug_client(&server).await;
    let names =
        |state: pb::State| -> Vec<String> { state.balancers.into_iter().map(|b| b.name).collect() };
    let state = client
        .get_state(GetStateRequest::default())
        .await
        .expect("GetState")
        .into_inner();
    assert_eq!(names(state), ["dropped", "kept"]);

    drop(dropped);
    // The balancer's own tasks hold it for a moment in each pass (they keep
    // weak handles and upgrade them to work); a registry that kept a strong
    // handle would keep it for good.
    wait_until("the registry holds no strong handle", || weak.is_dropped()).await;
    let state = client
        .get_state(GetStateRequest::default())
        .await
        .expect("GetState")
        .into_inner();
    assert_eq!(names(state), ["kept"]);
    let status = client
        .get_state(GetStateRequest {
            balancer: "dropped".into(),
        })
        .await
        .expect_err("gone");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("\"kept\""), "{status:?}");

    // Re-registering under a live name says it replaced one.
    assert!(debug.register("kept", &kept));
    assert!(debug.deregister("kept"));
    assert!(debug.names().is_empty());
}
