//! Helpers shared by orca-lb's integration tests.
#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

use orca_lb_core::LoadReport;
use orca_lb_proto::pb::OrcaLoadReport;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

pub mod child_backend;
pub mod corrupt;
pub mod fault_server;
pub mod log_capture;
pub mod open_loop;
pub mod scripted_resolver;

/// How long a bounded wait may take before the test fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The per-call report in `metadata`, decoded with the generated (prost) code
/// and validated. Panics, naming what is wrong, if it is missing or invalid.
pub fn report_in(metadata: &MetadataMap) -> LoadReport {
    let value = metadata
        .get_bin(orca_lb_proto::TRAILER_KEY)
        .unwrap_or_else(|| panic!("no {} in {metadata:?}", orca_lb_proto::TRAILER_KEY));
    let bytes = value.to_bytes().expect("trailer is valid base64");
    assert!(!bytes.is_empty(), "an empty report must never be sent");
    let pb = OrcaLoadReport::decode(bytes).expect("trailer is an OrcaLoadReport");
    LoadReport::try_from(pb).expect("report values are in range")
}

/// A greeter client connected to `url`.
pub async fn greeter(url: String) -> GreeterClient<Channel> {
    GreeterClient::connect(url)
        .await
        .expect("backend reachable")
}

/// Polls `condition` until it holds, failing the test after [`WAIT_LIMIT`].
///
/// For effects that happen on another task with no event to await (a server
/// noticing that a client went away). Not a timing assertion: the limit only
/// bounds a hang.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Awaits `f`, failing the test after [`WAIT_LIMIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT_LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Client-side helpers: balancers over test backends, and load to drive them.
pub mod client {
    use std::collections::HashMap;
    use std::time::Duration;

    use orca_lb_client::{Balancer, BalancerConfig};
    use orca_lb_core::BreakerState;
    use orca_lb_proto::StreamingMethods;
    use orca_lb_testkit::pb::HelloRequest;
    use orca_lb_testkit::pb::greeter_client::GreeterClient;
    use orca_lb_testkit::{Backend, BackendConfig, GREETER_DESCRIPTOR_SET, ServiceTime};
    use tokio::sync::mpsc;

    use super::within;

    /// Backends named and timed as given: `(name, fixed service time in ms, capacity)`.
    pub async fn backends(specs: &[(&str, u64, usize)]) -> Vec<Backend> {
        let mut out = Vec::new();
        for &(name, ms, capacity) in specs {
            out.push(
                Backend::spawn(BackendConfig {
                    capacity: Some(capacity),
                    service_time: ServiceTime::Fixed(Duration::from_millis(ms)),
                    ..BackendConfig::named(name)
                })
                .await
                .expect("backend starts"),
            );
        }
        out
    }

    /// The default balancer config for the greeter, streams declared.
    pub fn config() -> BalancerConfig {
        BalancerConfig::default()
            .with_target("greeter")
            .with_streaming(
                StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
                    .expect("valid descriptor"),
            )
    }

    /// `config` with picks the score does not steer, so that a test can count
    /// on every endpoint being picked: each pair of endpoints drawn is a tie
    /// (only a cost a thousand times another's decides), broken at random,
    /// failures add no penalty and new endpoints no warm-up. Each call then
    /// goes to an endpoint drawn uniformly, whatever its reports or latency
    /// say, and the breaker alone reacts to failures.
    pub fn unsteered(config: BalancerConfig) -> BalancerConfig {
        let score = config
            .score
            .clone()
            .with_tie_tolerance(0.999)
            .with_error_penalty(Duration::from_micros(1))
            .with_slow_start(Duration::ZERO);
        config.with_score(score)
    }

    /// Sends calls through `balancer`, one at a time, until the endpoint at
    /// `url` is ejected; returns how many of them failed.
    ///
    /// The balancer's config must be [`unsteered`], with every other
    /// endpoint healthy: each call then reaches `url` with a chance of at
    /// least one in the number of endpoints, so 1,000 calls leave no room
    /// for chance (below 10^-150 for three consecutive errors of four
    /// endpoints). Panics, showing the balancer's state, if it is not
    /// ejected by then.
    pub async fn eject(balancer: &Balancer, url: &str) -> usize {
        let mut calls = GreeterClient::new(balancer.clone());
        let mut failures = 0;
        let is_open = || {
            balancer
                .snapshot()
                .endpoints
                .iter()
                .any(|e| e.key == url && e.breaker == BreakerState::Open)
        };
        for _ in 0..1000 {
            if calls.say_hello(HelloRequest::default()).await.is_err() {
                failures += 1;
            }
            if is_open() {
                return failures;
            }
        }
        panic!("{url} never ejected: {:#?}", balancer.snapshot());
    }

    /// The balancer's snapshot of the endpoint at `url`.
    ///
    /// # Panics
    ///
    /// If the balancer does not know it.
    pub fn endpoint_state(balancer: &Balancer, url: &str) -> orca_lb_client::EndpointSnapshot {
        balancer
            .snapshot()
            .endpoints
            .into_iter()
            .find(|e| e.key == url)
            .expect("endpoint known")
    }

    /// A balancer over `backends`, once it has discovered them all.
    pub async fn balancer(config: BalancerConfig, backends: &[Backend]) -> Balancer {
        let b =
            Balancer::from_uris(config, backends.iter().map(|b| b.url())).expect("valid config");
        within("endpoints discovered", b.wait_for_endpoints(backends.len())).await;
        b
    }

    /// A balancer over `urls`, once it has discovered them all.
    pub async fn balancer_over_urls(urls: impl IntoIterator<Item = String>) -> Balancer {
        let urls: Vec<String> = urls.into_iter().collect();
        let b = Balancer::from_uris(config(), &urls).expect("valid config");
        within("endpoints discovered", b.wait_for_endpoints(urls.len())).await;
        b
    }

    /// What a batch of calls did.
    #[derive(Debug, Default)]
    pub struct Tally {
        /// Successful replies per backend name.
        pub ok: HashMap<String, usize>,
        /// Failed calls, as their status.
        pub failed: Vec<tonic::Status>,
    }

    impl Tally {
        /// Successful replies from `name`.
        pub fn ok(&self, name: &str) -> usize {
            self.ok.get(name).copied().unwrap_or(0)
        }

        /// All successful replies.
        pub fn total_ok(&self) -> usize {
            self.ok.values().sum()
        }
    }

    /// Runs `calls` unary calls through `balancer` with `concurrency` workers.
    pub async fn drive(balancer: &Balancer, calls: usize, concurrency: usize) -> Tally {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let per = calls / concurrency;
        for _ in 0..concurrency {
            let mut client = GreeterClient::new(balancer.clone());
            let tx = tx.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    let result = client
                        .say_hello(HelloRequest {
                            name: "load".into(),
                            ..Default::default()
                        })
                        .await
                        .map(|r| r.into_inner().backend);
                    if tx.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut tally = Tally::default();
        while let Some(result) = rx.recv().await {
            match result {
                Ok(name) => *tally.ok.entry(name).or_insert(0) += 1,
                Err(status) => tally.failed.push(status),
            }
        }
        tally
    }
}
