//! Discovery against a real etcd: it survives etcd restarts without losing or
//! repeating an endpoint, reads again after compaction emitting only the
//! differences, skips and counts malformed values, and loses no write that
//! races its first read.

mod etcd_support;

use etcd_support::{
    Discovered, Etcd, Load, Node, NodeConfig, calls_pass, etcd_binary, key, keys_of, record, replay,
};
use orca_lb_client::Change;
use orca_lb_tests::{wait_until, within};

/// The insertion of an endpoint in zone `zone` (every record here has one).
fn insert(key: &str, addr: &str, zone: &str) -> Change {
    Change::InsertInZone(
        key.to_string(),
        addr.parse().unwrap(),
        orca_lb_client::Zone::new(zone).unwrap(),
    )
}

fn remove(key: &str) -> Change {
    Change::Remove(key.to_string())
}

#[test]
fn the_etcd_binary_is_installed() {
    // Fails, saying how to install it, rather than letting the other tests
    // skip: `scripts/etcd install`.
    let bin = etcd_binary();
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("etcd runs");
    assert!(out.status.success(), "{} --version failed", bin.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_mid_run_loses_and_duplicates_nothing() {
    let mut etcd = Etcd::start().await;
    let a = Node::start(&etcd, NodeConfig::named("a")).await;
    let b = Node::start(&etcd, NodeConfig::named("b")).await;
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(2)).await;
    let load = Load::start(&d.balancer, 4);
    calls_pass(&load, 100).await;
    let before = d.keys();
    let seen = d.change_count();
    let reconnects = d.stats.reconnects();

    // kill -9 and start again on the same data and ports.
    etcd.restart().await;
    wait_until("discovery noticed the restart", || {
        d.stats.reconnects() > reconnects
    })
    .await;
    // A registration after the restart shows the watch resumed.
    let c = Node::start(&etcd, NodeConfig::named("c")).await;
    wait_until("c discovered", || d.keys().contains(&c.key())).await;
    calls_pass(&load, 100).await;
    let tally = load.stop().await;

    assert_eq!(before, keys_of(&[&a, &b]));
    assert_eq!(d.keys(), keys_of(&[&a, &b, &c]));
    let after = d.changes_since(seen);
    assert!(
        matches!(after.as_slice(), [Change::Insert(k, _)] if *k == c.key()),
        "only c's registration: {after:?}"
    );
    assert_eq!(replay(&d.changes_since(0)), d.keys());
    assert_eq!(d.stats.relists(), 0, "the watch resumed where it was");
    // etcd keeps leases across a restart: nobody registered again.
    assert_eq!(a.registration().registrations(), 1);
    assert_eq!(b.registration().registrations(), 1);
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_history_is_read_again_emitting_only_differences() {
    let mut etcd = Etcd::start().await;
    let admin = etcd.client();
    for (name, port) in [("a", 1001), ("b", 1002), ("c", 1003)] {
        let addr = format!("http://127.0.0.1:{port}");
        admin.put(key(name), record(&addr, "z1"), 0).await.unwrap();
    }
    let d = Discovered::new(&etcd);
    wait_until("three discovered", || d.keys().len() == 3).await;
    let seen = d.change_count();

    // Discovery loses etcd (it comes back on another port) while keys
    // change and the history is compacted past discovery's revision.
    let port = etcd.client_port();
    let side = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    etcd.restart_on(side).await;
    let admin = etcd.client();
    admin
        .put(key("a"), record("http://127.0.0.1:2001", "z1"), 0)
        .await
        .unwrap(); // new address
    admin.delete(key("b")).await.unwrap();
    admin
        .put(key("c"), record("http://127.0.0.1:1003", "z2"), 0)
        .await
        .unwrap(); // another zone
    let revision = admin
        .put(key("d"), record("http://127.0.0.1:1004", "z1"), 0)
        .await
        .unwrap();
    admin.compact(revision).await.unwrap();
    etcd.restart_on(port).await;

    let expected = [key("a"), key("c"), key("d")];
    wait_until("read again", || {
        d.stats.relists() == 1 && d.keys() == expected
    })
    .await;
    assert_eq!(
        d.changes_since(seen),
        // New keys first, then changed addresses and zones, then keys gone.
        [
            insert(&key("d"), "http://127.0.0.1:1004", "z1"),
            remove(&key("a")),
            insert(&key("a"), "http://127.0.0.1:2001", "z1"),
            remove(&key("c")),
            insert(&key("c"), "http://127.0.0.1:1003", "z2"),
            remove(&key("b")),
        ]
    );
    assert_eq!(replay(&d.changes_since(0)), d.keys());
    assert_eq!(d.stats.endpoints()[&key("c")].zone.as_deref(), Some("z2"));

    // And the watch goes on from the new read.
    etcd.client().delete(key("d")).await.unwrap();
    wait_until("d removed", || d.keys().len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_are_skipped_and_counted() {
    let etcd = Etcd::start().await;
    let admin = etcd.client();
    let good = r#"{"v":1,"addr":"http://127.0.0.1:1001","zone":"z1","weight":7}"#;
    admin.put(key("good"), good, 0).await.unwrap();
    for (name, value) in [
        ("not-json", "not json"),
        ("no-version", r#"{"addr":"http://127.0.0.1:1002"}"#),
        ("future", r#"{"v":2,"addr":"http://127.0.0.1:1003"}"#),
        ("bad-addr", r#"{"v":1,"addr":"127.0.0.1"}"#),
    ] {
        admin.put(key(name), value, 0).await.unwrap();
    }
    let d = Discovered::new(&etcd);
    wait_until("the good one discovered", || d.keys() == [key("good")]).await;
    assert_eq!(d.stats.malformed(), 4);
    let meta = d.stats.endpoints()[&key("good")].clone();
    assert_eq!((meta.zone.as_deref(), meta.weight), (Some("z1"), Some(7)));

    // A valid key turning malformed is removed; fixed, it is back. The
    // watch goes on throughout.
    admin.put(key("good"), "{oops", 0).await.unwrap();
    wait_until("removed", || d.keys().is_empty()).await;
    assert_eq!(d.stats.malformed(), 5);
    admin.put(key("good"), good, 0).await.unwrap();
    wait_until("back", || d.keys() == [key("good")]).await;
    assert_eq!(d.stats.malformed(), 5);
    assert_eq!(
        d.changes_since(0),
        [
            insert(&key("good"), "http://127.0.0.1:1001", "z1"),
            remove(&key("good")),
            insert(&key("good"), "http://127.0.0.1:1001", "z1"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_the_first_read_are_not_lost() {
    let etcd = Etcd::start().await;
    let admin = etcd.client();
    let writer = tokio::spawn(async move {
        for i in 0..200u16 {
            let addr = format!("http://127.0.0.1:{}", 10_000 + i);
            admin
                .put(key(&format!("n{i:03}")), record(&addr, "z"), 0)
                .await
                .unwrap();
            if i % 10 == 9 {
                admin.delete(key(&format!("n{:03}", i - 5))).await.unwrap();
            }
        }
    });
    // Discovery starts while the writes run.
    let d = Discovered::new(&etcd);
    within("the writes", writer).await.unwrap();
    let stored: Vec<String> = etcd
        .client()
        .get_prefix(key(""))
        .await
        .unwrap()
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect();
    assert_eq!(stored.len(), 180);
    wait_until("every stored key discovered", || d.keys() == stored).await;
    assert_eq!(replay(&d.changes_since(0)), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_replaced_by_an_empty_store_is_repopulated() {
    let mut etcd = Etcd::start().await;
    let a = Node::start(&etcd, NodeConfig::named("a")).await;
    let b = Node::start(&etcd, NodeConfig::named("b")).await;
    let d = Discovered::new(&etcd);
    within("discovery", d.balancer.wait_for_endpoints(2)).await;
    // Writes move the revision well past what a new store reaches.
    let admin = etcd.client();
    for _ in 0..20 {
        admin
            .put(key("filler"), record("http://127.0.0.1:1001", "z"), 0)
            .await
            .unwrap();
    }
    admin.delete(key("filler")).await.unwrap();
    let revision = admin.get_prefix(key("")).await.unwrap().revision;
    wait_until("discovery saw the writes", || {
        d.stats.revision() >= revision && d.keys() == keys_of(&[&a, &b])
    })
    .await;

    // The data is lost: a new, empty store on the same ports.
    etcd.kill();
    etcd.wipe();
    etcd.restart().await;
    // The older store is noticed (a read again), and both register again.
    wait_until("both registered again and discovered", || {
        d.stats.relists() >= 1
            && a.registration().registrations() == 2
            && b.registration().registrations() == 2
            && d.keys() == keys_of(&[&a, &b])
    })
    .await;
    assert_eq!(replay(&d.changes_since(0)), keys_of(&[&a, &b]));
}
