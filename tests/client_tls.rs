//! The balancer's connections, as an endpoint template makes them: TLS and
//! mTLS backends reached by IP, with certificates made at run time (the
//! server name is checked, a client without a certificate is refused, an
//! endpoint with a certificate from the wrong CA fails clearly, is ejected
//! and is probed back); TLS settings from files; a template that fails; a
//! custom connector.

use std::collections::HashSet;
use std::time::Duration;

use orca_lb_client::{Balancer, EndpointTemplate, TlsFiles};
use orca_lb_core::{BreakerState, CircuitBreakerConfig, OpenReason, RetryBudget};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, TestPki};
use orca_lb_tests::client::{self, drive};
use orca_lb_tests::within;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const NAME: &str = "greeter.test";

async fn tls_backends(pkis: &[&TestPki], mtls: bool) -> Vec<Backend> {
    let mut out = Vec::new();
    for (i, pki) in pkis.iter().enumerate() {
        out.push(
            Backend::spawn(BackendConfig {
                tls: Some(pki.server_tls(mtls)),
                ..BackendConfig::named(&format!("b{i}"))
            })
            .await
            .expect("backend starts"),
        );
    }
    out
}

/// Trusts `pki`'s CA and checks the name `NAME`, whatever address is dialled.
fn template(pki: &TestPki, identity: bool) -> EndpointTemplate {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem));
    if identity {
        tls = tls.identity(Identity::from_pem(
            &pki.client_cert_pem,
            &pki.client_key_pem,
        ));
    }
    EndpointTemplate::new(
        Endpoint::from_shared(format!("https://{NAME}"))
            .unwrap()
            .tls_config(tls)
            .expect("valid TLS config"),
    )
}

fn served_by(tally: &client::Tally) -> HashSet<String> {
    tally.ok.keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tls_backends_by_ip_are_reached_with_the_service_name() {
    let pki = TestPki::generate(NAME).unwrap();
    let backends = tls_backends(&[&pki, &pki, &pki], false).await;

    // A template Endpoint: the discovered addresses are IPs, the certificate
    // names NAME only.
    let b = client::balancer(
        client::config().with_endpoint(template(&pki, false)),
        &backends,
    )
    .await;
    let tally = within("calls", drive(&b, 300, 6)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());
    assert_eq!(
        served_by(&tally),
        HashSet::from(["b0".into(), "b1".into(), "b2".into()])
    );

    // A function to an Endpoint: the same, with the name in domain_name.
    let ca = pki.ca_pem.clone();
    let from_fn = EndpointTemplate::from_fn(move |addr: &http::Uri| {
        let https = format!("https://{}", addr.authority().expect("host:port"));
        Endpoint::from_shared(https)?.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca))
                .domain_name(NAME),
        )
    });
    let b = client::balancer(client::config().with_endpoint(from_fn), &backends).await;
    let tally = within("calls", drive(&b, 300, 6)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());
    assert_eq!(served_by(&tally).len(), 3);

    // Without the service name, the IP does not match the certificate.
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem));
    let by_ip = EndpointTemplate::from_fn(move |addr: &http::Uri| {
        let https = format!("https://{}", addr.authority().expect("host:port"));
        Endpoint::from_shared(https)?.tls_config(tls.clone())
    });
    let b = client::balancer(client::config().with_endpoint(by_ip), &backends).await;
    let mut client = GreeterClient::new(b);
    let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("certificate"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_are_read_and_checked_when_the_template_is_built() {
    let pki = TestPki::generate(NAME).unwrap();
    let dir = std::env::temp_dir().join(format!("orca-lb-tls-files-{}", std::process::id()));
    pki.write_to(&dir).unwrap();
    let backends = tls_backends(&[&pki, &pki], true).await;

    let files = TlsFiles::default()
        .with_ca(Some(dir.join("ca.pem")))
        .with_domain(Some(NAME.into()))
        .with_cert(Some(dir.join("client.pem")))
        .with_key(Some(dir.join("client.key")));
    let endpoint = files.template("https://greeter.example:443").unwrap();
    let b = client::balancer(client::config().with_endpoint(endpoint), &backends).await;
    let tally = within("calls", drive(&b, 100, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());

    // A missing file, a file that is not PEM, a certificate without its key:
    // errors naming the file or setting, before any call.
    let missing = files.clone().with_ca(Some(dir.join("nowhere.pem")));
    let err = missing.template("https://greeter.example").unwrap_err();
    assert!(err.to_string().contains("nowhere.pem"), "{err}");
    std::fs::write(dir.join("garbage.pem"), "not a certificate").unwrap();
    let garbage = files.clone().with_cert(Some(dir.join("garbage.pem")));
    let err = garbage.template("https://greeter.example").unwrap_err();
    assert!(err.to_string().contains("garbage.pem"), "{err}");
    let no_key = files.clone().with_key(None);
    let err = no_key.template("https://greeter.example").unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    let err = files.template("http://greeter.example").unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");

    // A template that cannot connect to a static address fails at construction.
    let refusing = EndpointTemplate::from_fn(|addr: &http::Uri| {
        Err::<Endpoint, _>(format!("no route to {addr}"))
    });
    let err = Balancer::from_uris(
        client::config().with_endpoint(refusing),
        ["http://127.0.0.1:1"],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no route to http://127.0.0.1:1"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_backends_refuse_a_client_without_a_certificate() {
    let pki = TestPki::generate(NAME).unwrap();
    let backends = tls_backends(&[&pki, &pki, &pki], true).await;

    let with_cert = client::balancer(
        client::config().with_endpoint(template(&pki, true)),
        &backends,
    )
    .await;
    let tally = within("calls", drive(&with_cert, 150, 3)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());
    assert_eq!(served_by(&tally).len(), 3);
    let entered: usize = backends.iter().map(|b| b.greeter().entered()).sum();
    assert_eq!(entered, 150);

    let without = client::balancer(
        client::config().with_endpoint(template(&pki, false)),
        &backends,
    )
    .await;
    let tally = within("calls", drive(&without, 30, 3)).await;
    assert_eq!(tally.total_ok(), 0, "served without a client certificate");
    assert_eq!(tally.failed.len(), 30);
    let entered_after: usize = backends.iter().map(|b| b.greeter().entered()).sum();
    assert_eq!(
        entered_after, entered,
        "a handler ran for a client without a certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_with_a_certificate_from_another_ca_fails_clearly_is_ejected_and_probed_back() {
    let good = TestPki::generate(NAME).unwrap();
    let other = TestPki::generate(NAME).unwrap();
    let mut backends = tls_backends(&[&good, &good, &other], false).await;
    let bad_addr = backends[2].addr();
    let bad_key = backends[2].url();
    let config = client::config()
        .with_endpoint(template(&good, false))
        .with_breaker(
            CircuitBreakerConfig::default()
                .with_base_ejection_time(Duration::from_millis(100))
                .with_max_ejection_time(Duration::from_millis(200)),
        );

    // With transparent re-picks (the default), a call whose handshake failed
    // never reached a server: it goes to another endpoint and succeeds.
    let repicking = client::balancer(config.clone(), &backends).await;
    let tally = within("calls", drive(&repicking, 300, 3)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());
    assert!(
        repicking.snapshot().repicks >= 1,
        "{:#?}",
        repicking.snapshot()
    );

    // Without, every call that goes to it fails, clearly.
    let config = config.with_transparent_retry(RetryBudget::off());
    let b = client::balancer(config, &backends).await;

    let tally = within("calls", drive(&b, 300, 3)).await;
    assert!(!tally.failed.is_empty(), "no call went to the bad endpoint");
    for status in &tally.failed {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains(&bad_key)
                && status.message().contains("invalid peer certificate"),
            "{}",
            status.message()
        );
    }
    // Once ejected, the others carry the load: failures are the calls that
    // ejected it and the probes, a handful, not a third.
    assert!(tally.failed.len() < 30, "{} failed", tally.failed.len());
    assert_eq!(tally.ok("b0") + tally.ok("b1"), 300 - tally.failed.len());
    let snapshot = b.snapshot();
    let bad = snapshot
        .endpoints
        .iter()
        .find(|e| e.key == bad_key)
        .expect("bad endpoint listed");
    assert!(
        matches!(
            bad.last_transition,
            Some((_, BreakerState::Open, Some(OpenReason::ConnectFailed)))
                | Some((_, BreakerState::HalfOpen, _))
        ),
        "{bad:#?} failed {}",
        tally.failed.len()
    );

    // The same address comes back with a certificate from the right CA: the
    // probes find it and it carries calls again.
    backends.pop().unwrap().stop().await.unwrap();
    let listener = tokio::net::TcpListener::bind(bad_addr).await.unwrap();
    let _fixed = Backend::serve(
        listener,
        BackendConfig {
            tls: Some(good.server_tls(false)),
            ..BackendConfig::named("fixed")
        },
    )
    .unwrap();
    let mut served = 0;
    within("the fixed endpoint carries calls", async {
        while served == 0 {
            served = drive(&b, 30, 3).await.ok("fixed");
        }
    })
    .await;
    let snapshot = b.snapshot();
    let fixed = snapshot
        .endpoints
        .iter()
        .find(|e| e.key == bad_key)
        .unwrap();
    assert!(fixed.ejections >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_fails_for_a_discovered_address_leaves_it_out() {
    let good = Backend::spawn(BackendConfig::named("good")).await.unwrap();
    let endpoint = EndpointTemplate::from_fn(|addr: &http::Uri| {
        if addr.port_u16() == Some(1) {
            Err(format!("no connection for {addr}"))
        } else {
            Ok(Endpoint::from(addr.clone()))
        }
    });
    let changes = [
        ("bad".to_string(), "http://127.0.0.1:1".parse().unwrap()),
        ("good".to_string(), good.url().parse().unwrap()),
    ]
    .map(|(key, uri)| orca_lb_client::Change::Insert(key, uri));
    let b = Balancer::new(
        client::config().with_endpoint(endpoint),
        tokio_stream::StreamExt::chain(tokio_stream::iter(changes), tokio_stream::pending()),
    )
    .unwrap();
    within("discovery", b.wait_for_endpoints(1)).await;
    let keys: Vec<String> = b.snapshot().endpoints.into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["good"]);
    let tally = within("calls", drive(&b, 20, 2)).await;
    assert_eq!(tally.ok("good"), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_connector_makes_every_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let backends = client::backends(&[("a", 1, 8), ("b", 1, 8)]).await;
    let dialled = Arc::new(AtomicUsize::new(0));
    let endpoint = {
        let dialled = dialled.clone();
        EndpointTemplate::from_channel_fn(move |addr: &http::Uri| {
            let target = addr.authority().expect("host:port").to_string();
            let dialled = dialled.clone();
            let connector = tower::service_fn(move |_: http::Uri| {
                let target = target.clone();
                dialled.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::net::TcpStream::connect(target)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            });
            Ok::<_, tonic::transport::Error>(
                Endpoint::from(addr.clone()).connect_with_connector_lazy(connector),
            )
        })
    };
    let b = client::balancer(client::config().with_endpoint(endpoint), &backends).await;
    let tally = within("calls", drive(&b, 100, 4)).await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed.first());
    assert_eq!(served_by(&tally).len(), 2);
    assert_eq!(
        dialled.load(Ordering::SeqCst),
        2,
        "one connection per endpoint"
    );
}
