//! Faults under load: each fault hits a running fleet while open-loop load
//! (a fixed call rate, not waiting for replies) goes through a `Balancer`.
//! Each test prints what the load lost and asserts the allowance written
//! beside it: what the fault may cost, and why.
//!
//! A frozen backend with HTTP/2 keepalive: its connection is declared dead
//! by the keepalive, not by call deadlines (the last test).
//!
//! Covered elsewhere, not repeated here: kill -9 of one backend of four under
//! 500 calls/s (`client_repick.rs`, `kill_9_of_one_backend_in_four_...`) and
//! 20 out-of-band subscribers on one server (`server_oob.rs`).
//!
//! The tests take a lock so that one fault runs at a time: the allowances
//! assume the fleet's timings, not those of a machine running four loads.

mod etcd_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_support::{Discovered, Etcd, Node, NodeConfig, keys_of};
use orca_lb_client::{
    Balancer, BalancerConfig, DnsDiscovery, EndpointSnapshot, EndpointTemplate, HealthCheck,
    HealthState,
};
use orca_lb_core::BreakerState;
use orca_lb_proto::pb::OrcaLoadReport;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{Backend, TestGreeter};
use orca_lb_tests::child_backend::ChildBackend;
use orca_lb_tests::client::{self, config};
use orca_lb_tests::corrupt::Corrupt;
use orca_lb_tests::fault_server::{Fault, FaultServer};
use orca_lb_tests::log_capture::SharedBuf;
use orca_lb_tests::open_loop::{LoadRun, OpenLoop, call_through};
use orca_lb_tests::scripted_resolver::Scripted;
use orca_lb_tests::{wait_until, within};
use prost::Message;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};

/// Calls started per second.
const RATE: u64 = 200;
/// The deadline every call carries.
const DEADLINE: Duration = Duration::from_secs(1);
/// A call still running this long after it started hangs: three deadlines.
const HANG_LIMIT: Duration = Duration::from_secs(3);
/// The load stops by itself after this, whatever the test does.
const MAX_RUN: Duration = Duration::from_secs(30);
/// Service time of the test backends.
const SERVICE_MS: u64 = 5;

/// One fault at a time (see the module documentation).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Open-loop load through `balancer`: [`RATE`] calls a second, each with
/// [`DEADLINE`].
fn load_through(balancer: &Balancer) -> OpenLoop {
    let client = GreeterClient::new(balancer.clone());
    OpenLoop::start(RATE, HANG_LIMIT, MAX_RUN, move || {
        call_through(&client, DEADLINE)
    })
}

/// What `balancer` shows of the endpoint `key`.
fn endpoint(balancer: &Balancer, key: &str) -> EndpointSnapshot {
    let snapshot = balancer.snapshot();
    snapshot
        .endpoints
        .iter()
        .find(|e| e.key == key)
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint {key} in {snapshot:#?}"))
}

/// The calls that may fail when one endpoint of `endpoints` stops
/// answering, with picks that the score does not steer
/// ([`client::unsteered`]): the endpoint gets at most its share of the
/// calls, one in `endpoints` (fewer once the calls stuck there make it a
/// thousand times costlier than the others), until the failures that eject
/// it have waited out their
/// deadline, which takes a deadline plus the few picks it needs for them
/// (a second is left for that and for a loaded machine). Each ejection then
/// ends with at most `half_open_probes` probes, which fail while it is still
/// broken.
fn stalled_endpoint_allowance(config: &BalancerConfig, endpoints: usize, ejections: u32) -> usize {
    let until_ejected = DEADLINE + Duration::from_secs(1);
    let its_share = (RATE as f64 * until_ejected.as_secs_f64() / endpoints as f64) as usize;
    its_share + (config.breaker.half_open_probes * ejections) as usize
}

/// Checks that every failed call of `run` failed on `key` with one of
/// `codes`, and that none hung.
fn assert_failures_only_on(run: &LoadRun, key: &str, codes: &[Code]) {
    assert_eq!(run.hung, 0, "calls ran past their deadline: {run:?}");
    for status in &run.failed {
        assert!(
            codes.contains(&status.code()) && status.message().contains(key),
            "a call failed other than on {key} with {codes:?}: {status:?}"
        );
    }
}

/// The smallest number of endpoints picks could choose from (those draining
/// left out), sampled until stopped.
struct FewestEndpoints {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(usize, usize)>,
}

impl FewestEndpoints {
    fn sample(balancer: &Balancer) -> FewestEndpoints {
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (balancer, stop) = (balancer.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut fewest, mut samples) = (usize::MAX, 0);
                while !stop.load(Ordering::SeqCst) {
                    let snapshot = balancer.snapshot();
                    let n = snapshot.endpoints.iter().filter(|e| !e.draining).count();
                    fewest = fewest.min(n);
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (fewest, samples)
            })
        };
        FewestEndpoints { stop, task }
    }

    /// The fewest endpoints seen, and in how many samples.
    async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        within("the sampler stops", self.task)
            .await
            .expect("sampler")
    }
}

/// Four test backends in their own processes, `b0` to `b3`.
fn four_child_backends() -> Vec<ChildBackend> {
    ChildBackend::spawn_fleet(env!("CARGO_BIN_EXE_orca-lb-test-backend"), 4, SERVICE_MS)
}

/// A balancer with `config` over `backends`, once it has discovered them.
async fn balancer_over(config: BalancerConfig, backends: &[ChildBackend]) -> Balancer {
    let balancer =
        Balancer::from_uris(config, backends.iter().map(ChildBackend::url)).expect("valid config");
    within("discovery", balancer.wait_for_endpoints(backends.len())).await;
    balancer
}

/// What a call to a frozen backend fails with: CANCELLED for the client's
/// own deadline, as tonic's `Channel` reports it (`docs/balancing.md`);
/// DEADLINE_EXCEEDED from a server that woke up late; UNAVAILABLE for a
/// connection given up on.
const STALLED: [Code; 3] = [Code::Cancelled, Code::DeadlineExceeded, Code::Unavailable];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_backend_is_ejected_then_probed_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let backends = four_child_backends();
    // Picks the score does not steer: the breaker alone keeps calls away
    // from the frozen backend (for the score, see the next test).
    let config = client::unsteered(config());
    let balancer = balancer_over(config.clone(), &backends).await;
    let (victim, key) = (&backends[3], backends[3].url().to_string());
    let load = load_through(&balancer);
    load.wait_calls(RATE as usize / 2).await;

    // SIGSTOP: connections stay open, requests are buffered, nothing answers.
    let frozen_at = tokio::time::Instant::now();
    victim.freeze();
    wait_until("the frozen backend is ejected", || {
        endpoint(&balancer, &key).breaker == BreakerState::Open
    })
    .await;
    let ejected_after = frozen_at.elapsed();
    let failed_by_ejection = load.failures();

    // SIGCONT: once its ejection time is over, probes find it answering.
    victim.thaw();
    wait_until("the thawed backend is probed back to closed", || {
        endpoint(&balancer, &key).breaker == BreakerState::Closed
    })
    .await;
    let answered = load.ok("b3");
    wait_until("the thawed backend answers calls again", || {
        load.ok("b3") >= answered + 10
    })
    .await;
    let run = load.stop().await;
    let e = endpoint(&balancer, &key);
    let allowance = stalled_endpoint_allowance(&config, backends.len(), e.ejections);
    println!(
        "SIGSTOP of 1 of 4 backends under {RATE} calls/s, {DEADLINE:?} deadlines, unsteered \
         picks: {} of {} calls failed {:?} (allowance {allowance}), {} hung; ejected \
         {ejected_after:?} after the freeze with {failed_by_ejection} failed, {} ejection(s); \
         after SIGCONT probed back to closed, then answered {} calls",
        run.failed.len(),
        run.calls,
        run.codes(),
        run.hung,
        e.ejections,
        run.ok("b3") - answered,
    );
    assert_failures_only_on(&run, &key, &STALLED);
    assert!(
        run.failed.len() >= config.breaker.consecutive_errors as usize,
        "the ejection needs that many failures: {:?}",
        run.failed
    );
    assert!(
        run.failed.len() <= allowance,
        "{} failed, allowance {allowance}",
        run.failed.len()
    );
    assert!(e.ejections >= 1, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_score_a_frozen_backend_is_avoided_after_its_first_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let backends = four_child_backends();
    let balancer = balancer_over(config(), &backends).await;
    let (victim, key) = (&backends[3], backends[3].url().to_string());
    let load = load_through(&balancer);
    load.wait_calls(RATE as usize / 2).await;

    victim.freeze();
    wait_until("a call to the frozen backend timed out", || {
        load.failures() >= 1
    })
    .await;
    // A second more of calls.
    load.wait_calls(RATE as usize).await;
    // Taken while the load runs: a call picked for it since the last
    // deadline would be in flight there.
    let e = endpoint(&balancer, &key);
    let run = load.stop().await;
    // Calls in flight there age past its service time, which raises its
    // cost (the in-flight age floor) long before the first of them times
    // out; that timeout's error penalty does the rest. At most its share of
    // the calls over one deadline may go there.
    let allowance = (RATE as f64 * DEADLINE.as_secs_f64() / backends.len() as f64) as usize;
    println!(
        "SIGSTOP of 1 of 4 backends under {RATE} calls/s, {DEADLINE:?} deadlines, default \
         score: {} of {} calls failed {:?} (allowance {allowance}), {} hung; then no pick for \
         a second: breaker {:?}, {} ejection(s), score {:.3} s against a fleet median \
         service time of {:.3} s",
        run.failed.len(),
        run.calls,
        run.codes(),
        run.hung,
        e.breaker,
        e.ejections,
        e.cost.completion + e.cost.failure + e.cost.base,
        e.cost.service_time,
    );
    assert_failures_only_on(&run, &key, &STALLED);
    assert!(
        run.failed.len() <= allowance,
        "{} failed, allowance {allowance}",
        run.failed.len()
    );
    assert_eq!(e.in_flight, 0, "it was picked again: {e:?}");
}

/// HTTP/2 keepalive of the test below: a ping after this long without a
/// frame from the server...
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
/// ... unanswered this long declares the connection dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadlines far beyond the hang limit: only the keepalive can end a call
/// stuck on a frozen backend before it counts as hung.
const LONG_DEADLINE: Duration = Duration::from_secs(60);
const KEEPALIVE_HANG_LIMIT: Duration = Duration::from_secs(8);

/// Opens a server stream through `balancer` that holds until the server
/// goes away; returns the backend that answered and the stream.
async fn held_stream(
    balancer: &Balancer,
) -> (String, tonic::Streaming<orca_lb_testkit::pb::HelloReply>) {
    let mut client = GreeterClient::new(balancer.clone());
    let mut stream = within(
        "a stream opens",
        client.say_hello_stream(HelloRequest::default()),
    )
    .await
    .expect("stream opens")
    .into_inner();
    let first = within("its first reply", stream.message())
        .await
        .expect("a reply")
        .expect("a reply");
    (first.backend, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_declares_a_frozen_backends_connection_dead() {
    let _one = ONE_AT_A_TIME.lock().await;
    let backends = ChildBackend::spawn_fleet_with_health(
        env!("CARGO_BIN_EXE_orca-lb-test-backend"),
        4,
        SERVICE_MS,
    );
    let mut config = config();
    // Health checking: the watch stream dies with the connection, and the
    // endpoint is not picked until a new one answers.
    config.health_check = Some(HealthCheck::new(""));
    config.endpoint = EndpointTemplate::from_fn(|uri: &http::Uri| {
        Ok::<_, std::convert::Infallible>(
            Endpoint::from(uri.clone())
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true),
        )
    });
    let balancer = balancer_over(config, &backends).await;
    let (victim, key) = (&backends[3], backends[3].url().to_string());
    wait_until("every backend serving", || {
        backends
            .iter()
            .all(|b| endpoint(&balancer, b.url()).health == Some(HealthState::Serving))
    })
    .await;
    // Streams spread over the fleet, all held open.
    let (mut on_victim, mut elsewhere) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let (backend, stream) = held_stream(&balancer).await;
        if backend == "b3" {
            on_victim.push(stream);
        } else {
            elsewhere.push(stream);
        }
    }
    assert!(!on_victim.is_empty(), "no stream went to the victim");
    let client = GreeterClient::new(balancer.clone());
    let load = OpenLoop::start(RATE, KEEPALIVE_HANG_LIMIT, MAX_RUN, move || {
        call_through(&client, LONG_DEADLINE)
    });
    load.wait_calls(RATE as usize / 2).await;

    // SIGSTOP: connections stay open, nothing answers, not even pings.
    victim.freeze();
    // The streams on it end with the connection, not with a deadline
    // (they have none).
    let mut stream_codes = Vec::new();
    for mut stream in on_victim {
        let end = within("a stream on the frozen backend ends", stream.message()).await;
        stream_codes.push(end.expect_err("the connection died").code());
    }
    // Its connection is declared dead: the health stream broke with it, and
    // no new one answers.
    wait_until("the frozen backend's health is unknown", || {
        endpoint(&balancer, &key).health == Some(HealthState::Unknown)
    })
    .await;
    // New streams go elsewhere.
    for _ in 0..20 {
        let (backend, _stream) = held_stream(&balancer).await;
        assert_ne!(backend, "b3", "a new stream went to the frozen backend");
    }
    load.wait_calls(RATE as usize).await;
    let run = load.stop().await;
    victim.thaw();
    drop(elsewhere);
    println!(
        "SIGSTOP of 1 of 4 backends under {RATE} calls/s with {LONG_DEADLINE:?} deadlines, \
         keepalive {KEEPALIVE_INTERVAL:?} + {KEEPALIVE_TIMEOUT:?}: {} of {} calls failed {:?}, \
         {} hung; streams on it ended {stream_codes:?}",
        run.failed.len(),
        run.calls,
        run.codes(),
        run.hung,
    );
    // No call waited for its deadline: the keepalive ended those stuck on
    // the frozen backend, and only those.
    assert_failures_only_on(
        &run,
        &key,
        // UNAVAILABLE: the connection went away under the call (UNKNOWN
        // if it had its response headers). Not CANCELLED: no deadline
        // passed.
        &[Code::Unavailable, Code::Unknown],
    );
    assert!(
        !run.failed.is_empty(),
        "calls were in flight on the frozen backend"
    );
}

fn addrs(fleet: &[Backend]) -> Vec<SocketAddr> {
    fleet.iter().map(Backend::addr).collect()
}

fn dns_keys(fleet: &[Backend]) -> Vec<String> {
    let mut keys: Vec<String> = fleet
        .iter()
        .map(|b| format!("http://{}", b.addr()))
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_dns_rotation_under_load_loses_no_call() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fleet_a = client::backends(&[
        ("a0", SERVICE_MS, 8),
        ("a1", SERVICE_MS, 8),
        ("a2", SERVICE_MS, 8),
        ("a3", SERVICE_MS, 8),
    ])
    .await;
    let fleet_b = client::backends(&[
        ("b0", SERVICE_MS, 8),
        ("b1", SERVICE_MS, 8),
        ("b2", SERVICE_MS, 8),
        ("b3", SERVICE_MS, 8),
    ])
    .await;
    let resolver = Scripted::default();
    resolver.set(&addrs(&fleet_a));
    let discovery = DnsDiscovery::new("greeter.test", 0)
        .interval(Duration::from_millis(20))
        .resolver(resolver.clone());
    let balancer = Balancer::new(config(), discovery.into_stream()).expect("valid config");
    within("fleet A discovered", balancer.wait_for_endpoints(4)).await;
    let sampler = FewestEndpoints::sample(&balancer);
    let load = load_through(&balancer);
    load.wait_calls(RATE as usize / 2).await;

    // Every address changes in one step.
    resolver.set(&addrs(&fleet_b));
    let rotated = || {
        let snapshot = balancer.snapshot();
        let mut keys: Vec<String> = snapshot.endpoints.iter().map(|e| e.key.clone()).collect();
        keys.sort();
        keys == dns_keys(&fleet_b) && snapshot.endpoints.iter().all(|e| !e.draining)
    };
    wait_until("fleet A removed and drained", rotated).await;
    let from_a = |run: &dyn Fn(&str) -> usize| -> usize {
        ["a0", "a1", "a2", "a3"].iter().map(|n| run(n)).sum()
    };
    let a_at_rotation = from_a(&|n| load.ok(n));
    load.wait_calls(RATE as usize / 2).await;
    let run = load.stop().await;
    let (fewest, samples) = sampler.stop().await;
    let per_backend: BTreeMap<&str, usize> = ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"]
        .into_iter()
        .map(|n| (n, run.ok(n)))
        .collect();
    println!(
        "full DNS rotation (4 backends to 4 others) under {RATE} calls/s: {} of {} calls failed \
         {:?}, {} hung; fewest endpoints in {samples} samples: {fewest}; replies {per_backend:?}",
        run.failed.len(),
        run.calls,
        run.codes(),
        run.hung,
    );
    assert!(run.failed.is_empty(), "{:?}", run.failed);
    assert_eq!(run.hung, 0);
    assert_eq!(
        from_a(&|n| run.ok(n)),
        a_at_rotation,
        "a call went to fleet A after its removal"
    );
    for b in ["b0", "b1", "b2", "b3"] {
        assert!(run.ok(b) > 0, "{b} got no call: {per_backend:?}");
    }
    // The new addresses are inserted before the old are removed.
    assert!(fewest >= 4, "only {fewest} endpoints at one point");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_and_restarted_under_load_loses_no_call() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut etcd = Etcd::start().await;
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let node_config = NodeConfig {
            service_time: Duration::from_millis(SERVICE_MS),
            ..NodeConfig::named(name)
        };
        nodes.push(Node::start(&etcd, node_config).await);
    }
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(3)).await;
    let registered = keys_of(&nodes.iter().collect::<Vec<_>>());
    let sampler = FewestEndpoints::sample(&d.balancer);
    let load = load_through(&d.balancer);
    load.wait_calls(RATE as usize / 2).await;

    // etcd dies: a second of calls on the last known set.
    let reconnects = d.stats.reconnects();
    etcd.kill();
    load.wait_calls(RATE as usize).await;
    let failed_while_down = load.failures();
    let keys_while_down = d.keys();

    // etcd comes back on the same data: discovery resumes.
    etcd.restart().await;
    wait_until("discovery reconnected", || {
        d.stats.reconnects() > reconnects
    })
    .await;
    let late = Node::start(
        &etcd,
        NodeConfig {
            service_time: Duration::from_millis(SERVICE_MS),
            ..NodeConfig::named("d")
        },
    )
    .await;
    wait_until(
        "the node registered after the restart answers calls",
        || load.ok("d") >= 10,
    )
    .await;
    let run = load.stop().await;
    let (fewest, samples) = sampler.stop().await;
    println!(
        "etcd killed for {} calls then restarted, under {RATE} calls/s: {} of {} calls failed \
         {:?} ({failed_while_down} while etcd was down), {} hung; fewest endpoints in {samples} \
         samples: {fewest}; replies a {} b {} c {} d (registered after the restart) {}",
        RATE,
        run.failed.len(),
        run.calls,
        run.codes(),
        run.hung,
        run.ok("a"),
        run.ok("b"),
        run.ok("c"),
        run.ok("d"),
    );
    assert_eq!(keys_while_down, registered, "the last known set is kept");
    assert!(run.failed.is_empty(), "{:?}", run.failed);
    assert_eq!(run.hung, 0);
    assert!(fewest >= 3, "only {fewest} endpoints at one point");
    assert!(d.keys().contains(&late.key()), "{:?}", d.keys());
}

/// How a hostile backend misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Its trailer report is not base64.
    Undecodable,
    /// Its trailer report carries NaN and infinite values.
    NotFinite,
    /// Its trailer report is about 40 KiB (54 KiB as base64).
    Large,
    /// Its trailer report is 1 MiB.
    Huge,
    /// Its out-of-band stream sends reports as fast as the connection takes
    /// them.
    OobFlood,
    /// It accepts calls and never answers.
    Silent,
}

impl Hostile {
    /// Whether the fault may cost calls: those that reach it before it is
    /// ejected (see [`stalled_endpoint_allowance`]).
    fn may_fail_calls(self) -> bool {
        matches!(self, Hostile::Huge | Hostile::Silent)
    }

    /// What its failed calls may fail with: a silent backend's, as a
    /// frozen one's ([`STALLED`]); a huge trailer makes the client's HTTP/2
    /// layer close the connection (GOAWAY ENHANCE_YOUR_CALM, too many
    /// CONTINUATION frames), which fails the calls on it with
    /// RESOURCE_EXHAUSTED.
    fn failure_codes(self) -> Vec<Code> {
        match self {
            Hostile::Huge => vec![Code::ResourceExhausted, Code::Unavailable],
            _ => STALLED.to_vec(),
        }
    }

    /// How long the load runs: long enough, where calls may fail, to see the
    /// ejection and the first probes.
    fn run(self) -> Duration {
        if self.may_fail_calls() {
            Duration::from_millis(2500)
        } else {
            Duration::from_secs(1)
        }
    }
}

fn header(report: &OrcaLoadReport) -> http::HeaderValue {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(report.encode_to_vec());
    http::HeaderValue::from_str(&text).expect("base64 is a valid header value")
}

/// A report with `n` named metrics of 60-character names: about 72 bytes each.
fn report_with_metrics(n: usize) -> OrcaLoadReport {
    OrcaLoadReport {
        cpu_utilization: 0.5,
        named_metrics: (0..n)
            .map(|i| (format!("m{i:07}{}", "x".repeat(52)), 0.5))
            .collect(),
        ..Default::default()
    }
}

/// An out-of-band service that streams reports as fast as the connection
/// takes them, without end.
#[derive(Debug, Clone, Copy)]
struct FloodingOob;

#[tonic::async_trait]
impl orca_lb_proto::pb::open_rca_service_server::OpenRcaService for FloodingOob {
    type StreamCoreMetricsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<OrcaLoadReport, tonic::Status>> + Send>,
    >;

    async fn stream_core_metrics(
        &self,
        _request: tonic::Request<orca_lb_proto::pb::OrcaLoadReportRequest>,
    ) -> Result<tonic::Response<Self::StreamCoreMetricsStream>, tonic::Status> {
        let reports = (0u64..).map(|i| {
            Ok(OrcaLoadReport {
                cpu_utilization: 0.1 + (i % 1000) as f64 * 1e-4,
                ..Default::default()
            })
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(reports))))
    }
}

/// The hostile backend of `kind`, named "hostile", on 127.0.0.1: its url and
/// what stops it.
async fn hostile_backend(kind: Hostile) -> (String, Box<dyn std::any::Any + Send>) {
    if kind == Hostile::Silent {
        let server = FaultServer::spawn(Fault::Hang).await;
        return (server.url(), Box::new(server));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let greeter = GreeterServer::new(TestGreeter::new("hostile").with_service_time(
        orca_lb_testkit::ServiceTime::Fixed(Duration::from_millis(SERVICE_MS)),
    ));
    let report = match kind {
        Hostile::Undecodable => Some(http::HeaderValue::from_static("%%% not base64 %%%")),
        Hostile::NotFinite => Some(header(&OrcaLoadReport {
            cpu_utilization: f64::NAN,
            mem_utilization: f64::INFINITY,
            named_metrics: [("latency".to_string(), f64::NEG_INFINITY)].into(),
            ..Default::default()
        })),
        Hostile::Large => Some(header(&report_with_metrics(560))),
        Hostile::Huge => Some(header(&report_with_metrics(14_600))),
        Hostile::OobFlood | Hostile::Silent => None,
    };
    let task = match report {
        Some(value) => tokio::spawn(async move {
            let _ = Server::builder()
                .layer(Corrupt::layer(value))
                .add_service(greeter)
                .serve_with_incoming(incoming)
                .await;
        }),
        None => tokio::spawn(async move {
            let _ = Server::builder()
                .add_service(greeter)
                .add_service(
                    orca_lb_proto::pb::open_rca_service_server::OpenRcaServiceServer::new(
                        FloodingOob,
                    ),
                )
                .serve_with_incoming(incoming)
                .await;
        }),
    };
    (url, Box::new(AbortOnDrop(task)))
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one hostile case saw.
#[derive(Debug)]
struct HostileRun {
    run: LoadRun,
    hostile: EndpointSnapshot,
    config: BalancerConfig,
    key: String,
}

/// Three honest backends and one of `kind`, under load for `kind.run()`.
async fn hostile_case(kind: Hostile) -> HostileRun {
    let honest = client::backends(&[
        ("h0", SERVICE_MS, 8),
        ("h1", SERVICE_MS, 8),
        ("h2", SERVICE_MS, 8),
    ])
    .await;
    let (key, _stop) = hostile_backend(kind).await;
    // Picks the score does not steer: the hostile backend gets a quarter of
    // the calls, whatever its reports or failures, and the breaker alone
    // reacts.
    let config = client::unsteered(
        config().with_oob_interval((kind == Hostile::OobFlood).then_some(Duration::from_secs(1))),
    );
    let balancer = Balancer::from_uris(
        config.clone(),
        honest.iter().map(Backend::url).chain([key.clone()]),
    )
    .expect("valid config");
    within("discovery", balancer.wait_for_endpoints(4)).await;
    let load = load_through(&balancer);
    let calls = (RATE as f64 * kind.run().as_secs_f64()) as usize;
    wait_until("the calls start", || load.started() >= calls).await;
    let run = load.stop().await;
    HostileRun {
        run,
        hostile: endpoint(&balancer, &key),
        config,
        key,
    }
}

#[test]
fn hostile_backends_one_in_four_under_load() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let cases = [
        Hostile::Undecodable,
        Hostile::NotFinite,
        Hostile::Large,
        Hostile::Huge,
        Hostile::OobFlood,
        Hostile::Silent,
    ];
    for kind in cases {
        let logs = SharedBuf::default();
        let (runtime, dispatch) = logs.runtime(tracing::Level::INFO);
        let case = tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(within("the case", hostile_case(kind)))
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        let HostileRun {
            run,
            hostile,
            config,
            key,
        } = case;
        let text = logs.text();
        let lines = text.lines().count();
        let about_it = text.lines().filter(|l| l.contains(&key)).count();
        println!(
            "hostile {kind:?}, 1 of 4 backends, under {RATE} calls/s: {} of {} calls failed \
             {:?}, {} hung; replies hostile {} h0 {} h1 {} h2 {}; its invalid reports {}, \
             reports taken {}, out-of-band dropped {}, ejections {}; {lines} log lines \
             ({about_it} about it)",
            run.failed.len(),
            run.calls,
            run.codes(),
            run.hung,
            run.ok("hostile"),
            run.ok("h0"),
            run.ok("h1"),
            run.ok("h2"),
            hostile.invalid_reports,
            hostile.reports,
            hostile.oob_reports_dropped,
            hostile.ejections,
        );
        if kind.may_fail_calls() {
            assert_failures_only_on(&run, &key, &kind.failure_codes());
            let allowance = stalled_endpoint_allowance(&config, 4, hostile.ejections);
            assert!(
                run.failed.len() <= allowance,
                "{kind:?}: {} failed, allowance {allowance}",
                run.failed.len()
            );
            assert!(
                hostile.ejections >= 1,
                "{kind:?}: never ejected: {hostile:?}"
            );
        } else {
            assert!(
                run.failed.is_empty() && run.hung == 0,
                "{kind:?}: {:?}",
                run.failed
            );
            assert!(run.ok("hostile") > 0, "{kind:?}: its calls were answered");
        }
        // What became of its reports.
        let answered = run.ok("hostile") as u64;
        match kind {
            // Each reply's report ignored and counted.
            Hostile::Undecodable | Hostile::NotFinite => {
                assert_eq!(hostile.invalid_reports, answered, "{kind:?}: {hostile:?}");
                assert_eq!(hostile.reports, 0, "{kind:?}: {hostile:?}");
            }
            // Over hyper's 16 KiB limit on a header list: dropped unseen.
            Hostile::Large => assert_eq!(hostile.reports, 0, "{kind:?}: {hostile:?}"),
            // One report per `oob_min_spacing` taken in, the rest dropped.
            Hostile::OobFlood => {
                let spacing = config.oob_min_spacing.as_secs_f64();
                let at_most = (Hostile::OobFlood.run().as_secs_f64() * 2.0 / spacing) as u64;
                assert!(
                    hostile.reports <= at_most && hostile.oob_reports_dropped > 100 * at_most,
                    "{kind:?}: {hostile:?}"
                );
            }
            Hostile::Huge | Hostile::Silent => {}
        }
        // Logs: the four endpoints added, then a few lines for the hostile
        // one (its first invalid report; or its ejections and probes), not
        // one per call.
        assert!(
            lines <= 4 + 6,
            "{kind:?}: {lines} log lines for {} calls:\n{text}",
            run.calls
        );
        for line in text.lines() {
            assert!(
                line.len() < 2048,
                "{kind:?}: a line of {} bytes",
                line.len()
            );
        }
    }
}
