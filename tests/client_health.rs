//! Client-side health checking (gRFC A17): an endpoint whose health service
//! does not answer SERVING gets no new calls or streams; calls and streams
//! already open on it continue; a server without the health service is
//! picked as usual, and says so once.

use std::net::SocketAddr;
use std::time::Duration;

use orca_lb_client::{Balancer, BalancerConfig, HealthCheck, HealthState};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::client::{config, drive, unsteered};
use orca_lb_tests::log_capture::SharedBuf;
use orca_lb_tests::{wait_until, within};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::Code;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The health service name the balancers watch.
const SERVICE: &str = "greeter";

/// A greeter with the health service on loopback; stopped when dropped.
struct HealthyBackend {
    addr: SocketAddr,
    greeter: TestGreeter,
    health: HealthReporter,
    _stop: oneshot::Sender<()>,
}

impl HealthyBackend {
    async fn start(greeter: TestGreeter) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(SERVICE, ServingStatus::Serving)
            .await;
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(
            Server::builder()
                .add_service(health_service)
                .add_service(GreeterServer::new(greeter.clone()))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Self {
            addr,
            greeter,
            health,
            _stop: stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn set(&self, status: ServingStatus) {
        self.health.set_service_status(SERVICE, status).await;
    }
}

fn health_config() -> BalancerConfig {
    let mut c = unsteered(config());
    c.health_check = Some(HealthCheck::new(SERVICE));
    c
}

fn health_of(b: &Balancer, url: &str) -> Option<HealthState> {
    b.snapshot()
        .endpoints
        .iter()
        .find(|e| e.key == url)
        .unwrap_or_else(|| panic!("no endpoint {url}"))
        .health
}

async fn wait_health(b: &Balancer, url: &str, state: HealthState) {
    wait_until(&format!("{url} is {state}"), || {
        health_of(b, url) == Some(state)
    })
    .await;
}

/// A unary call that lands on `on` and is held there by its gate: calls are
/// sent one at a time until one enters `on`'s handler (the others are
/// answered elsewhere). Returns the held call.
async fn held_call(
    b: &Balancer,
    on: &TestGreeter,
) -> tokio::task::JoinHandle<Result<String, tonic::Status>> {
    within("a call held on the gated backend", async {
        loop {
            let entered = on.entered();
            let mut client = GreeterClient::new(b.clone());
            let mut call = tokio::spawn(async move {
                client
                    .say_hello(HelloRequest::default())
                    .await
                    .map(|r| r.into_inner().backend)
            });
            tokio::select! {
                done = &mut call => {
                    done.expect("call task").expect("the other backend answers");
                }
                // Wrapped: the handle is awaited by the caller, not here.
                () = on.wait_entered(entered + 1) => return Some(call),
            }
        }
    })
    .await
    .expect("returned only once held")
}

/// A chat stream whose first reply came from `name`: streams are opened
/// until one lands there. Returns its request sender and reply stream.
async fn chat_on(
    b: &Balancer,
    name: &str,
) -> (
    mpsc::Sender<HelloRequest>,
    tonic::Streaming<orca_lb_testkit::pb::HelloReply>,
) {
    within("a chat stream on the backend", async {
        loop {
            let (tx, rx) = mpsc::channel(4);
            tx.send(HelloRequest::default()).await.unwrap();
            let mut client = GreeterClient::new(b.clone());
            let mut replies = client
                .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .expect("stream opens")
                .into_inner();
            let first = replies.message().await.unwrap().expect("a reply");
            if first.backend == name {
                return (tx, replies);
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_serving_stops_new_picks_while_open_calls_and_streams_finish() {
    let a = HealthyBackend::start(TestGreeter::new("a").gated()).await;
    let b_ = HealthyBackend::start(TestGreeter::new("b")).await;
    let balancer = Balancer::from_uris(health_config(), [a.url(), b_.url()]).unwrap();
    within("discovery", balancer.wait_for_endpoints(2)).await;
    wait_health(&balancer, &a.url(), HealthState::Serving).await;
    wait_health(&balancer, &b_.url(), HealthState::Serving).await;

    // A slow call and a stream open on `a`.
    let held = held_call(&balancer, &a.greeter).await;
    let (chat_tx, mut chat) = chat_on(&balancer, "a").await;

    a.set(ServingStatus::NotServing).await;
    wait_health(&balancer, &a.url(), HealthState::NotServing).await;
    let snapshot = balancer.snapshot();
    let ep = snapshot
        .endpoints
        .iter()
        .find(|e| e.key == a.url())
        .unwrap();
    assert!(!ep.eligible, "{ep:?}");
    let table = orca_lb_debug::render::table(&orca_lb_debug::pb::State {
        balancers: vec![orca_lb_debug::convert::balancer("greeter", &snapshot)],
    });
    let row = table
        .lines()
        .find(|l| l.starts_with(&a.url()))
        .unwrap_or_else(|| panic!("no row for a: {table}"));
    assert!(row.contains("not serving"), "{table}");

    // No new unary call or stream goes to `a` (its gate would hold any that
    // did, and `drive` would not return).
    let entered = a.greeter.entered();
    let tally = within("calls while a is not serving", drive(&balancer, 200, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!((tally.ok("a"), tally.ok("b")), (0, 200));
    assert_eq!(a.greeter.entered(), entered);
    for _ in 0..20 {
        let mut client = GreeterClient::new(balancer.clone());
        let mut s = client
            .say_hello_stream(HelloRequest::default())
            .await
            .expect("stream opens")
            .into_inner();
        let first = within("a stream reply", s.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.backend, "b");
    }

    // What was open on `a` carries on to completion.
    chat_tx.send(HelloRequest::default()).await.unwrap();
    let reply = within("a reply on the open stream", chat.message()).await;
    assert_eq!(reply.unwrap().unwrap().backend, "a");
    drop(chat_tx);
    assert!(
        within("the stream ends", chat.message())
            .await
            .unwrap()
            .is_none()
    );
    a.greeter.open_gate(10_000);
    let held = within("the held call", held).await.unwrap();
    assert_eq!(held.unwrap(), "a");

    // SERVING again: picked again.
    a.set(ServingStatus::Serving).await;
    wait_health(&balancer, &a.url(), HealthState::Serving).await;
    let tally = within("calls once a serves again", drive(&balancer, 200, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert!(tally.ok("a") > 0, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unknown_to_the_server_is_not_serving() {
    let a = HealthyBackend::start(TestGreeter::new("a")).await;
    let b_ = HealthyBackend::start(TestGreeter::new("b")).await;
    let mut c = health_config();
    c.health_check = Some(HealthCheck::new("not.registered"));
    let balancer = Balancer::from_uris(c, [a.url(), b_.url()]).unwrap();
    within("discovery", balancer.wait_for_endpoints(2)).await;
    wait_health(&balancer, &a.url(), HealthState::NotServing).await;
    wait_health(&balancer, &b_.url(), HealthState::NotServing).await;

    // Every endpoint unhealthy: calls fail at once, UNAVAILABLE, saying why.
    let mut client = GreeterClient::new(balancer.clone());
    let status = within("a call", client.say_hello(HelloRequest::default()))
        .await
        .expect_err("no endpoint is healthy");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("no healthy endpoint")
            && status.message().contains("not.registered"),
        "{status:?}"
    );
    assert_eq!(a.greeter.entered() + b_.greeter.entered(), 0);
}

#[test]
fn server_without_health_service_is_picked_and_logged_once() {
    let logs = SharedBuf::default();
    let (runtime, dispatch) = logs.runtime(tracing::Level::INFO);
    tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            let with = HealthyBackend::start(TestGreeter::new("with")).await;
            let without = Backend::spawn(BackendConfig::named("without"))
                .await
                .unwrap();
            let balancer =
                Balancer::from_uris(health_config(), [with.url(), without.url()]).unwrap();
            within("discovery", balancer.wait_for_endpoints(2)).await;
            wait_health(&balancer, &without.url(), HealthState::Unimplemented).await;
            wait_health(&balancer, &with.url(), HealthState::Serving).await;

            let tally = within("calls", drive(&balancer, 400, 4)).await;
            assert!(tally.failed.is_empty(), "{:?}", tally.failed);
            assert!(tally.ok("with") > 0 && tally.ok("without") > 0, "{tally:?}");
            // Streams too, and the state stays as it was.
            for _ in 0..20 {
                let mut client = GreeterClient::new(balancer.clone());
                within("a stream", client.say_hello_stream(HelloRequest::default()))
                    .await
                    .expect("stream opens");
            }
            assert_eq!(
                health_of(&balancer, &without.url()),
                Some(HealthState::Unimplemented)
            );
            let lines = logs.lines("endpoint has no health service");
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains(&without.url()), "{lines:?}");
        });
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_call_waits_for_the_first_health_answer() {
    let a = HealthyBackend::start(TestGreeter::new("a")).await;
    let balancer = Balancer::from_uris(health_config(), [a.url()]).unwrap();
    // At once: discovery and the health stream are still on their way; the
    // call waits for them (within `discovery_wait`) rather than failing.
    let mut client = GreeterClient::new(balancer.clone());
    let reply = within("the first call", client.say_hello(HelloRequest::default()))
        .await
        .expect("the call waits for the first health answer");
    assert_eq!(reply.into_inner().backend, "a");
    assert_eq!(health_of(&balancer, &a.url()), Some(HealthState::Serving));
}
