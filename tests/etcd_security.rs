//! etcd over TLS and mTLS, and with users: discovery and registration work,
//! a wrong CA, a wrong name, a wrong scheme or a wrong password is an error
//! that says so, and expiring tokens lose no endpoint.

mod etcd_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use etcd_support::{
    Discovered, ETCD_TLS_NAME, Etcd, EtcdSecurity, Node, NodeConfig, PREFIX, SERVICE, keys_of,
    replay,
};
use orca_lb_client::Change;
use orca_lb_etcd::{
    EtcdClient, EtcdClientOptions, EtcdCredentials, EtcdDiscovery, EtcdError, EtcdTls,
    RegisterError, Registration, RegistrationConfig,
};
use orca_lb_testkit::TestPki;
use orca_lb_tests::log_capture::SharedBuf;
use orca_lb_tests::{wait_until, within};

/// A discovery of the test service through `client`.
fn discover(client: EtcdClient) -> Discovered {
    Discovered::from_discovery(EtcdDiscovery::with_prefix(client, PREFIX, SERVICE))
}

/// A registration of an address nothing serves, through `client`.
async fn register(client: EtcdClient, port: u16) -> Result<Registration, RegisterError> {
    let mut config = RegistrationConfig::new(
        SERVICE,
        format!("http://127.0.0.1:{port}").parse().expect("uri"),
    );
    config.prefix = PREFIX.to_string();
    within("registration", Registration::start(client, config)).await
}

/// The TLS error `client` meets on a read; fails the test on anything else.
async fn tls_error(client: &EtcdClient) -> String {
    match within("a read", client.get("/probe")).await {
        Err(e @ EtcdError::Tls { .. }) => e.to_string(),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

async fn nodes_register_and_are_discovered(etcd: &Etcd) {
    let a = Node::start(etcd, NodeConfig::named("a")).await;
    let b = Node::start(etcd, NodeConfig::named("b")).await;
    let d = Discovered::new(etcd);
    wait_until("a and b discovered", || d.keys() == keys_of(&[&a, &b])).await;
    // A change after the first read comes through the watch.
    let c = Node::start(etcd, NodeConfig::named("c")).await;
    wait_until("c discovered", || d.keys() == keys_of(&[&a, &b, &c])).await;
    let report = a.drain().await;
    assert!(report.deregister_error.is_none(), "{report:?}");
    wait_until("a gone", || d.keys() == keys_of(&[&b, &c])).await;
    assert_eq!(replay(&d.changes_since(0)), keys_of(&[&b, &c]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_registration_work_over_tls() {
    let etcd = Etcd::start_with(EtcdSecurity::tls(false)).await;
    assert!(etcd.url().starts_with("https://"));
    nodes_register_and_are_discovered(&etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_registration_work_over_mtls_and_a_client_without_a_certificate_is_refused() {
    let etcd = Etcd::start_with(EtcdSecurity::tls(true)).await;
    nodes_register_and_are_discovered(&etcd).await;

    // The CA alone: etcd asks for a client certificate and gets none.
    let pki = etcd.pki().expect("tls");
    let options = EtcdClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .tls(EtcdTls::with_ca_pem(pki.ca_pem.clone()).server_name(ETCD_TLS_NAME));
    let client = EtcdClient::connect_lazy_with([etcd.url()], options).expect("options");
    let error = tls_error(&client).await;
    assert!(error.contains("client"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_a_certificate_verification_error_and_discovery_keeps_retrying() {
    let etcd = Etcd::start_with(EtcdSecurity::tls(false)).await;
    let node = Node::start(&etcd, NodeConfig::named("a")).await;
    let other = TestPki::generate(ETCD_TLS_NAME).expect("certificates");
    let options = EtcdClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .tls(EtcdTls::with_ca_pem(other.ca_pem).server_name(ETCD_TLS_NAME));
    let client = EtcdClient::connect_lazy_with([etcd.url()], options).expect("options");

    let error = tls_error(&client).await;
    assert!(error.contains("certificate verification failed"), "{error}");
    assert!(error.contains("trusted CA"), "{error}");

    match register(client.clone(), 1).await {
        Err(RegisterError::Etcd(EtcdError::Tls { .. })) => {}
        other => panic!("registration through an untrusting client: {other:?}"),
    }

    // Discovery fails, finds nothing, and keeps trying.
    let d = discover(client);
    wait_until("three failed attempts", || d.stats.reconnects() >= 3).await;
    assert!(d.keys().is_empty());
    assert!(d.changes_since(0).is_empty());

    // The right CA finds the node.
    let good = Discovered::new(&etcd);
    wait_until("the node discovered", || good.keys() == keys_of(&[&node])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_mismatch_is_named() {
    let etcd = Etcd::start_with(EtcdSecurity::tls(false)).await;
    let pki = etcd.pki().expect("tls");
    // No server name: the certificate is checked against 127.0.0.1, which
    // it does not carry.
    let options = EtcdClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .tls(EtcdTls::with_ca_pem(pki.ca_pem.clone()));
    let client = EtcdClient::connect_lazy_with([etcd.url()], options).expect("options");
    let error = tls_error(&client).await;
    assert!(error.contains("does not carry the name"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_tls_mismatches_are_named() {
    let tls_etcd = Etcd::start_with(EtcdSecurity::tls(false)).await;
    let plain_etcd = Etcd::start().await;
    let pki = tls_etcd.pki().expect("tls");

    // A TLS client at a plain etcd.
    let options = EtcdClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .tls(EtcdTls::with_ca_pem(pki.ca_pem.clone()).server_name(ETCD_TLS_NAME));
    let https = plain_etcd.url().replace("http://", "https://");
    let client = EtcdClient::connect_lazy_with([https], options).expect("options");
    let error = tls_error(&client).await;
    assert!(error.contains("plain http://"), "{error}");

    // A plain client at a TLS etcd.
    let http = tls_etcd.url().replace("https://", "http://");
    let client = EtcdClient::connect_lazy_with(
        [http],
        EtcdClientOptions::default().request_timeout(Duration::from_secs(2)),
    )
    .expect("options");
    let error = within("a read", client.get("/probe"))
        .await
        .expect_err("a plain read from a TLS etcd")
        .to_string();
    assert!(error.contains("TLS"), "{error}");

    // Mixed schemes and TLS settings for plain endpoints are refused up front.
    let mixed = EtcdClient::connect_lazy([plain_etcd.url(), tls_etcd.url()])
        .expect_err("mixed schemes")
        .to_string();
    assert!(mixed.contains("one scheme"), "{mixed}");
    let options = EtcdClientOptions::default().tls(EtcdTls::with_ca_pem(pki.ca_pem.clone()));
    let refused = EtcdClient::connect_lazy_with([plain_etcd.url()], options)
        .expect_err("TLS settings for http://")
        .to_string();
    assert!(refused.contains("https://"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_files_are_read_and_a_bad_one_is_named() {
    let etcd = Etcd::start_with(EtcdSecurity::tls(true)).await;
    let dir = etcd.pki_dir();
    let tls = EtcdTls::from_files(
        Some(dir.join("ca.pem")),
        Some(dir.join("client.pem")),
        Some(dir.join("client.key")),
    )
    .expect("the files load")
    .server_name(ETCD_TLS_NAME);
    let client = EtcdClient::connect_lazy_with([etcd.url()], EtcdClientOptions::default().tls(tls))
        .expect("options");
    within("a read over mTLS", client.get("/probe"))
        .await
        .expect("reads");

    let missing = dir.join("missing.pem");
    let error = EtcdTls::from_files(Some(&missing), None::<&str>, None::<&str>)
        .expect_err("a missing file")
        .to_string();
    assert!(error.contains("missing.pem"), "{error}");
    // A certificate given as the key.
    let error = EtcdTls::from_files(
        Some(dir.join("ca.pem")),
        Some(dir.join("client.pem")),
        Some(dir.join("client.pem")),
    )
    .and_then(|tls| tls.validate().map(|()| tls))
    .expect_err("a certificate is no key")
    .to_string();
    assert!(error.contains("tls.client"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_the_right_password_discovers_and_a_wrong_one_is_named() {
    let mut etcd = Etcd::start().await;
    etcd.enable_auth().await;
    let a = Node::start(&etcd, NodeConfig::named("a")).await;
    let d = Discovered::new(&etcd);
    wait_until("a discovered", || d.keys() == keys_of(&[&a])).await;

    let wrong = "not-the-password";
    let options = EtcdClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .credentials(EtcdCredentials::new("root", wrong));
    let client = EtcdClient::connect_lazy_with([etcd.url()], options).expect("options");
    let error = match within("a read", client.get("/probe")).await {
        Err(e @ EtcdError::AuthFailed { .. }) => e.to_string(),
        other => panic!("expected an authentication error, got {other:?}"),
    };
    assert!(error.contains("authentication failed"), "{error}");
    assert!(error.contains("\"root\""), "{error}");
    assert!(!error.contains(wrong), "the password leaked: {error}");
    assert!(!format!("{client:?}").contains(wrong), "{client:?}");

    match register(client.clone(), 1).await {
        Err(RegisterError::Etcd(EtcdError::AuthFailed { .. })) => {}
        other => panic!("registration with a wrong password: {other:?}"),
    }
    let refused = discover(client);
    wait_until("three failed attempts", || refused.stats.reconnects() >= 3).await;
    assert!(refused.keys().is_empty());

    // Without credentials: etcd refuses the reads.
    let anonymous = EtcdClient::connect_lazy_with(
        [etcd.url()],
        EtcdClientOptions::default().request_timeout(Duration::from_secs(2)),
    )
    .expect("options");
    let error = within("a read", anonymous.get("/probe"))
        .await
        .expect_err("an anonymous read")
        .to_string();
    assert!(error.contains("user name is empty"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_and_an_etcd_restart_lose_no_endpoint() {
    let security = EtcdSecurity {
        args: ["--auth-token", "simple", "--auth-token-ttl", "1"]
            .map(String::from)
            .to_vec(),
        ..EtcdSecurity::default()
    };
    let mut etcd = Etcd::start_with(security).await;
    etcd.enable_auth().await;
    let a = Node::start(&etcd, NodeConfig::named("a")).await;
    let b = Node::start(&etcd, NodeConfig::named("b")).await;
    let client = etcd.client();
    let d = discover(client.clone());
    let expected = keys_of(&[&a, &b]);
    wait_until("a and b discovered", || d.keys() == expected).await;

    // Sample the balancer without pause until told to stop: a and b must be
    // there at every sample.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(AtomicU64::new(0));
    let balancer = d.balancer.clone();
    let sampler = {
        let (stop, samples, expected) = (stop.clone(), samples.clone(), expected.clone());
        tokio::spawn(async move {
            let mut missing = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let keys: Vec<String> = balancer
                    .snapshot()
                    .endpoints
                    .into_iter()
                    .filter(|e| !e.draining)
                    .map(|e| e.key)
                    .collect();
                for key in &expected {
                    if !keys.contains(key) {
                        missing.push(key.clone());
                    }
                }
                samples.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            missing
        })
    };

    // Tokens live 1 s unused. Read with the discovery's client now and then
    // until it has had to authenticate again several times: each time its
    // token had expired.
    let first = client.authentications();
    assert!(first >= 1, "the discovery authenticated to read");
    let expiries = async {
        while client.authentications() < first + 3 {
            client
                .get("/probe")
                .await
                .expect("a read with a renewed token");
            // Longer than the token's life (etcd drops unused tokens once
            // a second): pacing, the check is the count.
            tokio::time::sleep(Duration::from_millis(2200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), expiries)
        .await
        .expect("three token expiries within a minute");

    // etcd cancels a watch whose token expired, at creation; the client
    // authenticates again and opens it.
    let before = client.authentications();
    let watch_renewed = async {
        loop {
            // Longer than the token's life unused: pacing, the check is the
            // count.
            tokio::time::sleep(Duration::from_millis(2200)).await;
            let mut watch = client.watch_prefix("/probe", 0).await.expect("a watch");
            let first = watch.message().await.expect("an answer").expect("open");
            assert!(first.created && !first.canceled, "{first:?}");
            if client.authentications() > before {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), watch_renewed)
        .await
        .expect("a watch opened again with a new token within a minute");

    // A restart breaks the watch; it resumes.
    let reconnects = d.stats.reconnects();
    etcd.restart().await;
    wait_until("the watch lost etcd", || d.stats.reconnects() > reconnects).await;
    within("a read after the restart", client.get("/probe"))
        .await
        .expect("a read after the restart");

    // A registration made after the expiries and the restart is discovered.
    let c = Node::start(&etcd, NodeConfig::named("c")).await;
    wait_until("c discovered", || d.keys() == keys_of(&[&a, &b, &c])).await;

    stop.store(true, Ordering::Relaxed);
    let missing = within("the sampler stops", sampler).await.expect("sampler");
    assert!(
        missing.is_empty(),
        "endpoints missing from the balancer at {} of {} samples: {:?}",
        missing.len(),
        samples.load(Ordering::Relaxed),
        &missing[..missing.len().min(10)]
    );
    assert!(samples.load(Ordering::Relaxed) > 100);
    let changes = d.changes_since(0);
    assert!(
        !changes.iter().any(|c| matches!(c, Change::Remove(_))),
        "no endpoint was removed: {changes:?}"
    );
    assert_eq!(replay(&changes), keys_of(&[&a, &b, &c]));
}

#[tokio::test]
async fn refused_credentials_are_logged_once_not_per_retry() {
    let logs = SharedBuf::default();
    // A single-threaded runtime: every task logs here.
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::DEBUG));
    let mut etcd = Etcd::start().await;
    etcd.enable_auth().await;
    let wrong = "not-the-password";
    let options = EtcdClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .credentials(EtcdCredentials::new("root", wrong));
    let client = EtcdClient::connect_lazy_with([etcd.url()], options).expect("options");
    let d = discover(client);
    wait_until("five failed attempts", || d.stats.reconnects() >= 5).await;
    let last = d.stats.last_error().expect("the last failure is kept");
    assert!(last.contains("authentication failed"), "{last}");

    // Retries come far more often than once a minute: one WARN line, the
    // rest at DEBUG.
    let lines = logs.lines("authentication failed");
    let warns: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 1, "{warns:#?}");
    assert!(warns[0].contains("\"root\""), "{}", warns[0]);
    assert!(lines.len() >= 5, "every attempt at DEBUG: {lines:#?}");
    assert!(!logs.text().contains(wrong), "the password leaked");
}
