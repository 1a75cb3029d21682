//! Joining a Go fleet, against a real etcd. Every value a Go service would
//! register is written through etcd's own HTTP gateway, not through
//! orca-lb's client: the classic bare `host:port` under a lease, the JSON of
//! etcd's gRPC naming package, and every format side by side in auto mode.
//! Discovery finds the endpoints, calls reach them, a deleted key or an
//! expired lease removes one, and malformed values are skipped and counted
//! without stopping discovery. Registration in the Go formats writes exactly
//! the key and value Go reads, read back raw.

mod etcd_gateway;
mod etcd_support;

use std::net::SocketAddr;
use std::time::Duration;

use etcd_gateway::{Gateway, StoredKey};
use etcd_support::{Discovered, Etcd, Load, calls_pass};
use orca_lb_etcd::{
    EtcdDiscovery, RegisterError, Registration, RegistrationConfig, RegistrationFormat, ValueFormat,
};
use orca_lb_testkit::{Backend, BackendConfig};
use orca_lb_tests::wait_until;

/// The service name of the Go fleet.
const SERVICE: &str = "greeter";

async fn backend(name: &str) -> Backend {
    Backend::spawn(BackendConfig::named(name))
        .await
        .expect("backend starts")
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

/// Waits until the balancer no longer holds `key` at all, then checks that
/// `backend` gets no further call while `n` more calls pass.
async fn no_more_calls_to(d: &Discovered, load: &Load, key: &str, backend: &Backend, n: usize) {
    wait_until(&format!("{key} gone from the balancer"), || !d.holds(key)).await;
    let entered = backend.greeter().entered();
    calls_pass(load, n).await;
    assert_eq!(
        backend.greeter().entered(),
        entered,
        "a call reached {key} after it left"
    );
}

fn naming_value(addr: SocketAddr, metadata: &str) -> String {
    format!(r#"{{"Op":0,"Addr":"{addr}","Metadata":{metadata}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_addresses_under_leases_are_discovered_called_and_expire() {
    let etcd = Etcd::start().await;
    let gateway = Gateway::new(&etcd.url());
    let (a, b) = (backend("a").await, backend("b").await);
    // Go's classic registration: /<scheme>/<service>/<host:port> = host:port,
    // under a lease (a scheme may be given).
    let key = |addr: SocketAddr| format!("/goscheme/{SERVICE}/{addr}");
    let lease = gateway.grant(60).await;
    gateway
        .put(&key(a.addr()), &a.addr().to_string(), lease)
        .await;
    gateway
        .put(&key(b.addr()), &format!("http://{}", b.addr()), lease)
        .await;
    for (name, value) in [
        ("no-port", "127.0.0.1"),
        ("words", "not an address"),
        ("orca-lb-json", r#"{"v":1,"addr":"http://127.0.0.1:1"}"#),
        ("other-scheme", "grpc://127.0.0.1:1"),
    ] {
        let bad = format!("/goscheme/{SERVICE}/{name}");
        gateway.put(&bad, value, 0).await;
    }

    let d = Discovered::from_discovery(
        EtcdDiscovery::with_prefix(etcd.client(), "/goscheme", SERVICE)
            .value_format(ValueFormat::BareAddress),
    );
    let both = sorted(&[&key(a.addr()), &key(b.addr())]);
    wait_until("a and b discovered", || d.keys() == both).await;
    assert_eq!(d.stats.malformed(), 4);
    let endpoints = d.stats.endpoints();
    assert_eq!(endpoints[&key(a.addr())].addr, a.url().as_str());
    assert_eq!(endpoints[&key(b.addr())].addr, b.url().as_str());
    assert_eq!(endpoints[&key(a.addr())].metadata, None);

    let load = Load::start(&d.balancer, 4);
    wait_until("calls reach a and b", || {
        load.ok("a") > 0 && load.ok("b") > 0
    })
    .await;

    // A malformed value written while watching is skipped and counted; the
    // watch goes on.
    gateway
        .put(&format!("/goscheme/{SERVICE}/late"), "127.0.0.1:", 0)
        .await;
    wait_until("the late value counted", || d.stats.malformed() == 5).await;

    // a's process stops renewing: its key moves to a 2 s lease (the same
    // value, nothing changes for the balancer) that nobody keeps alive, and
    // etcd deletes it when the lease expires.
    let short = gateway.grant(2).await;
    gateway
        .put(&key(a.addr()), &a.addr().to_string(), short)
        .await;
    wait_until("a's lease expired", || d.keys() == [key(b.addr())]).await;
    assert_eq!(gateway.get(&key(a.addr())).await, None, "etcd deleted it");
    no_more_calls_to(&d, &load, &key(a.addr()), &a, 200).await;

    // A deleted key is removed as well.
    gateway.delete(&key(b.addr())).await;
    wait_until("b removed", || d.keys().is_empty()).await;
    let tally = load.stop().await;
    assert!(tally.ok("b") > 0);
    assert_eq!(d.stats.malformed(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_naming_values_are_discovered_called_and_removed() {
    let etcd = Etcd::start().await;
    let gateway = Gateway::new(&etcd.url());
    let (a, b) = (backend("a").await, backend("b").await);
    // etcd's naming package: <target>/<anything> = {"Op":0,"Addr":...}.
    let key_a = format!("{SERVICE}/{}", a.addr());
    let key_b = format!("{SERVICE}/instance-b");
    gateway
        .put(&key_a, &naming_value(a.addr(), r#"{"zone":"z1"}"#), 0)
        .await;
    gateway
        .put(&key_b, &naming_value(b.addr(), "null"), 0)
        .await;
    for (name, value) in [
        ("delete-op", r#"{"Op":1,"Addr":"127.0.0.1:1"}"#.to_string()),
        ("no-addr", r#"{"Op":0,"Metadata":null}"#.to_string()),
        ("bad-addr", r#"{"Op":0,"Addr":"nowhere"}"#.to_string()),
        ("not-json", "{\"Op\":0,".to_string()),
    ] {
        gateway.put(&format!("{SERVICE}/{name}"), &value, 0).await;
    }

    // An empty prefix: the keys are <service>/..., with no leading slash.
    let d = Discovered::from_discovery(
        EtcdDiscovery::with_prefix(etcd.client(), "", SERVICE).value_format(ValueFormat::GoNaming),
    );
    wait_until("a and b discovered", || {
        d.keys() == sorted(&[&key_a, &key_b])
    })
    .await;
    assert_eq!(d.stats.malformed(), 4);
    let endpoints = d.stats.endpoints();
    assert_eq!(endpoints[&key_a].addr, a.url().as_str());
    assert_eq!(
        endpoints[&key_a].metadata.as_deref(),
        Some(r#"{"zone":"z1"}"#)
    );
    assert_eq!(endpoints[&key_b].metadata, None);

    let load = Load::start(&d.balancer, 4);
    wait_until("calls reach a and b", || {
        load.ok("a") > 0 && load.ok("b") > 0
    })
    .await;

    // b's value turns into a Delete update: malformed, counted, and b is
    // removed; the watch goes on.
    gateway
        .put(&key_b, &format!(r#"{{"Op":1,"Addr":"{}"}}"#, b.addr()), 0)
        .await;
    wait_until("b removed", || d.keys() == [key_a.clone()]).await;
    assert_eq!(d.stats.malformed(), 5);
    no_more_calls_to(&d, &load, &key_b, &b, 200).await;

    // A deleted key is removed.
    gateway.delete(&key_a).await;
    wait_until("a removed", || d.keys().is_empty()).await;
    let tally = load.stop().await;
    assert!(tally.ok("a") > 0);
    assert_eq!(d.stats.malformed(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_reads_each_value_in_the_format_it_shows() {
    let etcd = Etcd::start().await;
    let gateway = Gateway::new(&etcd.url());
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let key = |name: &str| format!("/fleet/{SERVICE}/{name}");
    gateway.put(&key("bare"), &a.addr().to_string(), 0).await;
    gateway
        .put(&key("go"), &naming_value(b.addr(), r#"["x"]"#), 0)
        .await;
    let own = format!(r#"{{"v":1,"addr":"{}","zone":"z3"}}"#, c.url());
    gateway.put(&key("own"), &own, 0).await;
    for (name, value) in [
        (
            "both",
            r#"{"v":1,"addr":"http://127.0.0.1:1","Addr":"127.0.0.1:1"}"#,
        ),
        ("neither", r#"{"Op":0}"#),
        ("go-delete", r#"{"Op":1,"Addr":"127.0.0.1:1"}"#),
        ("own-future", r#"{"v":2,"addr":"http://127.0.0.1:1"}"#),
        ("bare-no-port", "127.0.0.1"),
    ] {
        gateway.put(&key(name), value, 0).await;
    }

    // The default format is auto.
    let discovery = EtcdDiscovery::with_prefix(etcd.client(), "/fleet", SERVICE);
    assert_eq!(discovery.format(), ValueFormat::Auto);
    let d = Discovered::from_discovery(discovery);
    let all = sorted(&[&key("bare"), &key("go"), &key("own")]);
    wait_until("all three discovered", || d.keys() == all).await;
    assert_eq!(d.stats.malformed(), 5);
    let endpoints = d.stats.endpoints();
    assert_eq!(endpoints[&key("bare")].addr, a.url().as_str());
    assert_eq!(endpoints[&key("go")].metadata.as_deref(), Some(r#"["x"]"#));
    assert_eq!(endpoints[&key("own")].zone.as_deref(), Some("z3"));

    let load = Load::start(&d.balancer, 4);
    wait_until("calls reach all three", || {
        load.ok("a") > 0 && load.ok("b") > 0 && load.ok("c") > 0
    })
    .await;
    for (name, backend) in [("bare", &a), ("go", &b)] {
        gateway.delete(&key(name)).await;
        no_more_calls_to(&d, &load, &key(name), backend, 100).await;
    }
    assert_eq!(d.keys(), [key("own")]);
    let tally = load.stop().await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_writes_the_key_and_value_go_reads() {
    let etcd = Etcd::start().await;
    let gateway = Gateway::new(&etcd.url());

    // Go's classic form under /<scheme>/: key .../<host:port>, value
    // host:port, under the registration's lease.
    let mut bare = RegistrationConfig::new(SERVICE, "http://127.0.0.1:50051".parse().unwrap());
    bare.prefix = "/goscheme".to_string();
    bare.format = RegistrationFormat::BareAddress;
    bare.ttl = Duration::from_secs(5);
    let bare = Registration::start(etcd.client(), bare).await.unwrap();
    let stored = gateway.get_prefix("/goscheme/").await;
    assert_eq!(
        stored,
        [StoredKey {
            key: format!("/goscheme/{SERVICE}/127.0.0.1:50051"),
            value: "127.0.0.1:50051".to_string(),
            lease: bare.lease_id().expect("a lease"),
        }]
    );

    // etcd's naming form, target = the service: key <service>/<host:port>,
    // value {"Op":0,"Addr":...,"Metadata":...}, as Go's json.Marshal writes it.
    let mut naming = RegistrationConfig::new(SERVICE, "http://127.0.0.1:50052".parse().unwrap());
    naming.prefix = String::new();
    naming.format = RegistrationFormat::GoNaming;
    naming.record.metadata = Some(r#"{ "zone": "a" }"#.to_string());
    naming.ttl = Duration::from_secs(5);
    let naming = Registration::start(etcd.client(), naming).await.unwrap();
    let stored = gateway.get_prefix(&format!("{SERVICE}/")).await;
    assert_eq!(
        stored,
        [StoredKey {
            key: format!("{SERVICE}/127.0.0.1:50052"),
            value: r#"{"Op":0,"Addr":"127.0.0.1:50052","Metadata":{"zone":"a"}}"#.to_string(),
            lease: naming.lease_id().expect("a lease"),
        }]
    );

    // Discovery in the same formats reads them back.
    let d = Discovered::from_discovery(EtcdDiscovery::with_prefix(etcd.client(), "", SERVICE));
    wait_until("the naming registration discovered", || {
        d.keys() == [format!("{SERVICE}/127.0.0.1:50052")]
    })
    .await;
    assert_eq!(
        d.stats.endpoints()[&format!("{SERVICE}/127.0.0.1:50052")]
            .metadata
            .as_deref(),
        Some(r#"{"zone":"a"}"#)
    );

    // Deregistering revokes the lease: the keys are gone.
    bare.deregister().await.unwrap();
    naming.deregister().await.unwrap();
    assert!(gateway.get_prefix("/goscheme/").await.is_empty());
    assert!(gateway.get_prefix(&format!("{SERVICE}/")).await.is_empty());

    // A record the format cannot carry is refused, naming the field.
    let mut zoned = RegistrationConfig::new(SERVICE, "http://127.0.0.1:50053".parse().unwrap());
    zoned.format = RegistrationFormat::BareAddress;
    zoned.record.zone = Some("a".to_string());
    match Registration::start(etcd.client(), zoned).await {
        Err(RegisterError::Config(e)) => assert_eq!(e.field, "record.zone", "{e}"),
        other => panic!("expected a config error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_is_read_from_the_configured_metadata_key() {
    let etcd = Etcd::start().await;
    let gateway = Gateway::new(&etcd.url());
    let key = |name: &str| format!("{SERVICE}/{name}");
    gateway
        .put(
            &key("a"),
            &naming_value(
                "127.0.0.1:50061".parse().unwrap(),
                r#"{"az":"z1","zone":"other"}"#,
            ),
            0,
        )
        .await;
    // A zone that is no zone name: malformed, skipped and counted.
    gateway
        .put(
            &key("bad"),
            &naming_value("127.0.0.1:50062".parse().unwrap(), r#"{"az":"a\u001bb"}"#),
            0,
        )
        .await;
    let d = Discovered::from_discovery(
        EtcdDiscovery::with_prefix(etcd.client(), "", SERVICE)
            .value_format(ValueFormat::GoNaming)
            .zone_key("az"),
    );
    wait_until("a discovered", || d.keys() == [key("a")]).await;
    assert_eq!(d.stats.malformed(), 1);
    assert_eq!(d.stats.endpoints()[&key("a")].zone.as_deref(), Some("z1"));
    let zone = d.balancer.snapshot().endpoints[0].zone.clone();
    assert_eq!(zone.as_ref().map(|z| z.as_str()), Some("z1"));
    assert!(matches!(
        d.changes_since(0).as_slice(),
        [orca_lb_client::Change::InsertInZone(k, _, z)] if *k == key("a") && z.as_str() == "z1"
    ));
}
