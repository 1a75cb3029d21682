//! What the etcd tests share: a real etcd in a child process, greeter nodes
//! that register in it, a balancer that discovers them, and load.
//!
//! Each test binary includes this file with `mod etcd_support;` and uses
//! part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orca_lb_client::{Balancer, Change};
use orca_lb_etcd::pb::etcdserverpb::{
    AuthEnableRequest, AuthUserAddRequest, AuthUserGrantRoleRequest, auth_client::AuthClient,
};
use orca_lb_etcd::{
    Drain, DrainConfig, DrainReport, EtcdClient, EtcdClientOptions, EtcdCredentials, EtcdDiscovery,
    EtcdTls, Registration, RegistrationConfig,
};
use orca_lb_server::{LoadRecorder, ReportingLayer};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{ServiceTime, TestGreeter, TestPki};
use orca_lb_tests::client::{Tally, config};
use orca_lb_tests::{WAIT_LIMIT, within};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

/// The key prefix the tests register under.
pub(crate) const PREFIX: &str = "/orca-lb-testkit";
/// The service name.
pub(crate) const SERVICE: &str = "greeter";
/// The greeter's gRPC service name, for health.
pub(crate) const GREETER: &str = "orca_lb.testing.v1.Greeter";
/// The name in a TLS etcd's certificate (it has no IP address entry).
pub(crate) const ETCD_TLS_NAME: &str = "etcd.test";
/// The password of etcd's `root` user once [`Etcd::enable_auth`] ran.
pub(crate) const ROOT_PASSWORD: &str = "orca-root-secret";

/// Where the etcd binary is: `$ETCD_BIN`, else `etcd` on `PATH`, else
/// `/usr/bin/etcd`. Fails the test, saying how to install it, if none exists.
pub(crate) fn etcd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "ETCD_BIN={} does not exist; unset it, or run `scripts/etcd install`",
            bin.display()
        );
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"));
    on_path
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the etcd tests need a real etcd server and found none \
                 ($ETCD_BIN, `etcd` on PATH, /usr/bin/etcd): \
                 run `scripts/etcd install` (or `apt-get install -y etcd-server`)"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// How an [`Etcd`] serves clients: TLS, client certificates, extra flags.
#[derive(Debug, Clone, Default)]
pub(crate) struct EtcdSecurity {
    /// Serve clients over TLS with this PKI's server certificate (for
    /// [`ETCD_TLS_NAME`]); the files go into etcd's temporary directory.
    pub(crate) tls: Option<TestPki>,
    /// Require client certificates signed by the PKI's CA (mTLS).
    pub(crate) client_cert_auth: bool,
    /// More flags, e.g. `--auth-token-ttl 1`.
    pub(crate) args: Vec<String>,
}

impl EtcdSecurity {
    /// TLS with a fresh PKI; with `mtls`, client certificates required.
    pub(crate) fn tls(mtls: bool) -> Self {
        Self {
            tls: Some(TestPki::generate(ETCD_TLS_NAME).expect("test certificates")),
            client_cert_auth: mtls,
            args: Vec::new(),
        }
    }
}

/// A single-member etcd on 127.0.0.1 with OS-chosen ports and a temporary
/// data directory. Killed, and its directory removed, when dropped.
#[derive(Debug)]
pub(crate) struct Etcd {
    bin: PathBuf,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    security: EtcdSecurity,
    /// The user clients authenticate as, once auth is enabled.
    credentials: Option<EtcdCredentials>,
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub(crate) async fn start() -> Etcd {
        Self::start_with(EtcdSecurity::default()).await
    }

    /// Starts etcd serving clients as `security` says, and waits until it
    /// answers.
    pub(crate) async fn start_with(security: EtcdSecurity) -> Etcd {
        let bin = etcd_binary();
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "orca-lb-etcd-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A port found free can be taken before etcd binds it: try again
        // with new ports.
        for attempt in 1..=3 {
            let mut etcd = Etcd {
                bin: bin.clone(),
                dir: dir.clone(),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
                security: security.clone(),
                credentials: None,
            };
            match etcd.launch().await {
                Ok(()) => return etcd,
                Err(why) if attempt < 3 => {
                    eprintln!("etcd did not start ({why}); trying other ports");
                    drop(etcd); // kills it and removes the directory
                    std::fs::create_dir_all(&dir).expect("temp dir");
                }
                Err(why) => panic!("etcd did not start: {why}"),
            }
        }
        unreachable!()
    }

    /// `http://127.0.0.1:PORT`, or `https://` when serving TLS.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.security.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The PKI etcd's certificate comes from, when serving TLS.
    pub(crate) fn pki(&self) -> Option<&TestPki> {
        self.security.tls.as_ref()
    }

    /// The directory the PKI's files are written to (`ca.pem`,
    /// `client.pem`, `client.key`, ...).
    pub(crate) fn pki_dir(&self) -> PathBuf {
        self.dir.join("pki")
    }

    /// Options that reach this etcd: its CA and name, a client certificate
    /// when it requires one, the root user once auth is enabled.
    pub(crate) fn client_options(&self) -> EtcdClientOptions {
        let mut options = EtcdClientOptions::default().request_timeout(Duration::from_secs(2));
        if let Some(pki) = &self.security.tls {
            let mut tls = EtcdTls::with_ca_pem(pki.ca_pem.clone()).server_name(ETCD_TLS_NAME);
            if self.security.client_cert_auth {
                tls = tls.client_identity(pki.client_cert_pem.clone(), pki.client_key_pem.clone());
            }
            options = options.tls(tls);
        }
        if let Some(credentials) = &self.credentials {
            options = options.credentials(credentials.clone());
        }
        options
    }

    /// A client for this etcd.
    pub(crate) fn client(&self) -> EtcdClient {
        EtcdClient::connect_lazy_with([self.url()], self.client_options()).expect("valid options")
    }

    /// Turns authentication on: adds the user `root` ([`ROOT_PASSWORD`])
    /// with the role `root`, enables auth; later clients authenticate as
    /// root.
    pub(crate) async fn enable_auth(&mut self) {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.url()).expect("url");
        if let Some(pki) = &self.security.tls {
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
                .domain_name(ETCD_TLS_NAME);
            if self.security.client_cert_auth {
                tls = tls.identity(tonic::transport::Identity::from_pem(
                    &pki.client_cert_pem,
                    &pki.client_key_pem,
                ));
            }
            endpoint = endpoint.tls_config(tls).expect("tls config");
        }
        let channel = within("connect to etcd", endpoint.connect())
            .await
            .expect("connects");
        let mut auth = AuthClient::new(channel);
        within(
            "add root",
            auth.user_add(AuthUserAddRequest {
                name: "root".into(),
                password: ROOT_PASSWORD.into(),
                options: None,
            }),
        )
        .await
        .expect("user added");
        within(
            "grant root",
            auth.user_grant_role(AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            }),
        )
        .await
        .expect("role granted");
        within("enable auth", auth.auth_enable(AuthEnableRequest {}))
            .await
            .expect("auth enabled");
        self.credentials = Some(EtcdCredentials::new("root", ROOT_PASSWORD));
    }

    /// The client port.
    pub(crate) fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Kills etcd at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same data directory and ports.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.launch().await.expect("etcd restarts");
    }

    /// Starts etcd again on the same data and peer port, serving clients on
    /// `client_port`: clients of the old port cannot reach it.
    pub(crate) async fn restart_on(&mut self, client_port: u16) {
        self.kill();
        self.client_port = client_port;
        self.launch().await.expect("etcd restarts");
    }

    /// Deletes the data directory: the next start is a new, empty cluster.
    pub(crate) fn wipe(&mut self) {
        assert!(self.child.is_none(), "kill etcd before wiping its data");
        std::fs::remove_dir_all(self.dir.join("data")).expect("remove data");
    }

    async fn launch(&mut self) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.bin);
        let client = if let Some(pki) = &self.security.tls {
            let dir = self.pki_dir();
            pki.write_to(&dir)
                .map_err(|e| format!("writing the PKI: {e}"))?;
            command
                .arg("--cert-file")
                .arg(dir.join("server.pem"))
                .arg("--key-file")
                .arg(dir.join("server.key"));
            // etcd requires client certificates whenever it has a trusted CA.
            if self.security.client_cert_auth {
                command
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(dir.join("ca.pem"));
            }
            client.replace("http://", "https://")
        } else {
            client
        };
        command.args(&self.security.args);
        let child = command
            .args(["--name", "orca-lb-testkit"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("orca-lb-testkit={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let probe = self.client().request_timeout(Duration::from_millis(500));
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT * 2;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("etcd exited ({status}):\n{}", self.log_tail()));
            }
            if probe.get("/probe").await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("etcd did not answer in time:\n{}", self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("etcd's log (the end):\n{}", self.log_tail());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A registered greeter: a tonic server with health and the reporting layer,
/// draining through [`Drain`], on its own runtime so that the test can kill
/// it whole, as a crashed process.
pub(crate) struct Node {
    /// The greeter's name (what it answers with).
    pub(crate) name: String,
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// Its load recorder (calls in flight).
    pub(crate) recorder: LoadRecorder,
    key: String,
    runtime: Option<tokio::runtime::Runtime>,
    parts: Option<(Drain, JoinHandle<Result<(), tonic::transport::Error>>)>,
    registration: Option<Registration>,
}

/// How to start a [`Node`].
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// The greeter's name.
    pub(crate) name: String,
    /// Its service time.
    pub(crate) service_time: Duration,
    /// Its lease's TTL.
    pub(crate) ttl: Duration,
    /// Its zone (registered as metadata).
    pub(crate) zone: Option<String>,
    /// Its drain.
    pub(crate) drain: DrainConfig,
}

impl NodeConfig {
    /// A node answering at once, with a 5 s lease.
    pub(crate) fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            service_time: Duration::ZERO,
            ttl: Duration::from_secs(5),
            zone: None,
            drain: DrainConfig::default()
                .with_propagation(Duration::from_millis(500))
                .with_deadline(Duration::from_secs(5)),
        }
    }
}

impl Node {
    /// Starts serving, then registers in `etcd`.
    pub(crate) async fn start(etcd: &Etcd, config: NodeConfig) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let url = etcd.url();
        let options = etcd.client_options();
        let name = config.name.clone();
        let setup = runtime.spawn(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (health, health_service) = tonic_health::server::health_reporter();
            health.set_serving::<GreeterServer<TestGreeter>>().await;
            let drain = Drain::new(config.drain).health(health, [GREETER]);
            let (layer, recorder) = ReportingLayer::builder().build().expect("layer");
            let greeter = TestGreeter::new(&config.name)
                .with_service_time(ServiceTime::Fixed(config.service_time));
            let server = tokio::spawn(
                tonic::transport::Server::builder()
                    .layer(layer)
                    .add_service(health_service)
                    .add_service(GreeterServer::new(greeter))
                    .serve_with_incoming_shutdown(drain.incoming(listener), drain.signal()),
            );
            let client = EtcdClient::connect_lazy_with([url], options).expect("options");
            let mut reg =
                RegistrationConfig::new(SERVICE, format!("http://{addr}").parse().expect("uri"));
            reg.prefix = PREFIX.to_string();
            reg.ttl = config.ttl;
            reg.record.zone = config.zone;
            let registration = Registration::start(client, reg).await.expect("registers");
            (addr, drain, server, registration, recorder)
        });
        let (addr, drain, server, registration, recorder) =
            within("node starts", setup).await.expect("setup task");
        Node {
            name,
            addr,
            recorder,
            key: registration.key().to_string(),
            runtime: Some(runtime),
            parts: Some((drain, server)),
            registration: Some(registration),
        }
    }

    /// Its etcd key (the balancer's endpoint key).
    pub(crate) fn key(&self) -> String {
        self.key.clone()
    }

    /// Its registration.
    pub(crate) fn registration(&self) -> &Registration {
        self.registration.as_ref().expect("running")
    }

    /// Drains: health NOT_SERVING, deregister, close, finish calls.
    pub(crate) async fn drain(mut self) -> DrainReport {
        let (drain, server) = self.parts.take().expect("running");
        let registration = self.registration.take();
        let runtime = self.runtime.as_ref().expect("running");
        let run = runtime.spawn(drain.run(registration, server));
        within("the drain", run).await.expect("drain task")
    }

    /// Kills the node at once: connections drop, nothing is deregistered.
    pub(crate) fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A balancer over what etcd discovery finds, with every change it was
/// given, in order.
pub(crate) struct Discovered {
    /// The balancer.
    pub(crate) balancer: Balancer,
    /// The discovery's counters and endpoints.
    pub(crate) stats: orca_lb_etcd::DiscoveryStats,
    /// Every change given to the balancer.
    pub(crate) changes: Arc<Mutex<Vec<Change>>>,
}

impl Discovered {
    /// Discovers the test service in `etcd`.
    pub(crate) fn new(etcd: &Etcd) -> Discovered {
        Self::from_discovery(EtcdDiscovery::with_prefix(etcd.client(), PREFIX, SERVICE))
    }

    /// A balancer over what `discovery` finds, retrying quickly.
    pub(crate) fn from_discovery(discovery: EtcdDiscovery) -> Discovered {
        let discovery = discovery.retry(Duration::from_millis(20), Duration::from_millis(500));
        let stats = discovery.stats();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = changes.clone();
        let stream = discovery.into_stream().map(move |c| {
            log.lock().push(c.clone());
            c
        });
        let balancer = Balancer::new(config(), stream).expect("valid config");
        Discovered {
            balancer,
            stats,
            changes,
        }
    }

    /// The balancer's endpoint keys, sorted (those draining left out).
    pub(crate) fn keys(&self) -> Vec<String> {
        self.balancer
            .snapshot()
            .endpoints
            .into_iter()
            .filter(|e| !e.draining)
            .map(|e| e.key)
            .collect()
    }

    /// Whether the balancer holds `key` at all, draining or not: once it
    /// does not, no call to it is in flight.
    pub(crate) fn holds(&self, key: &str) -> bool {
        self.balancer
            .snapshot()
            .endpoints
            .iter()
            .any(|e| e.key == key)
    }

    /// How many changes were given so far.
    pub(crate) fn change_count(&self) -> usize {
        self.changes.lock().len()
    }

    /// The changes from index `from` on.
    pub(crate) fn changes_since(&self, from: usize) -> Vec<Change> {
        self.changes.lock()[from..].to_vec()
    }
}

/// Sorted keys of `nodes`.
pub(crate) fn keys_of(nodes: &[&Node]) -> Vec<String> {
    let mut keys: Vec<String> = nodes.iter().map(|n| n.key()).collect();
    keys.sort();
    keys
}

/// Unary calls through a balancer on `workers` tasks until stopped, tallied
/// live. Bounded: each worker stops after a minute or 100,000 calls anyway.
pub(crate) struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the workers.
    pub(crate) fn start(balancer: &Balancer, workers: usize) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let mut client = GreeterClient::new(balancer.clone());
                let tally = tally.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let end = tokio::time::Instant::now() + Duration::from_secs(60);
                    for _ in 0..100_000 {
                        if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() > end {
                            return;
                        }
                        let result = client
                            .say_hello(HelloRequest {
                                name: "load".into(),
                                ..Default::default()
                            })
                            .await;
                        let mut t = tally.lock();
                        match result {
                            Ok(r) => *t.ok.entry(r.into_inner().backend).or_insert(0) += 1,
                            Err(status) => t.failed.push(status),
                        }
                    }
                })
            })
            .collect();
        Load {
            tally,
            stop,
            workers,
        }
    }

    /// Successful calls answered by `name` so far.
    pub(crate) fn ok(&self, name: &str) -> usize {
        self.tally.lock().ok(name)
    }

    /// All calls so far (successful or not).
    pub(crate) fn total(&self) -> usize {
        let t = self.tally.lock();
        t.total_ok() + t.failed.len()
    }

    /// Failed calls so far.
    pub(crate) fn failures(&self) -> usize {
        self.tally.lock().failed.len()
    }

    /// Stops the workers, waits for their last calls, and returns the tally.
    pub(crate) async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            within("load workers stop", w).await.expect("worker");
        }
        std::mem::take(&mut *self.tally.lock())
    }
}

/// Waits (bounded) until `n` more calls completed, so that a phase of a test
/// has seen traffic.
pub(crate) async fn calls_pass(load: &Load, n: usize) {
    let target = load.total() + n;
    orca_lb_tests::wait_until(&format!("{n} more calls"), || load.total() >= target).await;
}

/// Checks that `changes` never insert a key already present nor remove one
/// absent, and returns the keys present at the end, sorted.
pub(crate) fn replay(changes: &[Change]) -> Vec<String> {
    let mut present = std::collections::BTreeSet::new();
    for (i, change) in changes.iter().enumerate() {
        match change {
            Change::Insert(key, _) | Change::InsertInZone(key, _, _) => {
                assert!(
                    present.insert(key.clone()),
                    "change {i}: {key} inserted twice: {changes:#?}"
                )
            }
            Change::Remove(key) => {
                assert!(
                    present.remove(key),
                    "change {i}: {key} removed while absent: {changes:#?}"
                )
            }
            other => panic!("change {i}: unexpected {other:?}"),
        }
    }
    present.into_iter().collect()
}

/// Polls `condition` until it holds, failing the test if that takes a
/// second or more.
pub(crate) async fn within_a_second(what: &str, mut condition: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{what}: not within a second"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A version-1 record for `addr`.
pub(crate) fn record(addr: &str, zone: &str) -> String {
    format!(r#"{{"v":1,"addr":"{addr}","zone":"{zone}"}}"#)
}

/// The etcd key of `name` under the test service.
pub(crate) fn key(name: &str) -> String {
    format!("{PREFIX}/{SERVICE}/{name}")
}
