use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_stream::StreamExt;

use super::{DnsDiscovery, Resolve};
use crate::Change;

/// Answers each resolution with the next of a fixed list of answers, then
/// the last one forever.
struct Rounds(Arc<Mutex<Vec<Vec<SocketAddr>>>>);

impl Resolve for Rounds {
    fn resolve(
        &self,
        _host: &str,
        _port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>> {
        let mut rounds = self.0.lock();
        let answer = if rounds.len() > 1 {
            rounds.remove(0)
        } else {
            rounds[0].clone()
        };
        Box::pin(async move { Ok(answer) })
    }
}

fn addrs(ports: std::ops::Range<u16>) -> Vec<SocketAddr> {
    ports
        .map(|p| SocketAddr::from(([10, 0, 0, 1], p)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_full_rotation_inserts_before_it_removes() {
    let rounds = vec![addrs(1..4), addrs(11..14)];
    let mut stream = Box::pin(
        DnsDiscovery::new("svc", 80)
            .interval(Duration::from_secs(1))
            .resolver(Rounds(Arc::new(Mutex::new(rounds))))
            .into_stream(),
    );
    let mut present = 0usize;
    let mut seen = Vec::new();
    while seen.len() < 9 {
        let change = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a change within two intervals")
            .expect("the stream goes on");
        match &change {
            Change::Insert(..) | Change::InsertInZone(..) => present += 1,
            Change::Remove(_) => present -= 1,
        }
        if seen.len() >= 3 {
            assert!(present > 0, "no endpoint left after {change:?}: {seen:?}");
        }
        seen.push(change);
    }
    assert_eq!(present, 3);
}

#[tokio::test(start_paused = true)]
async fn every_address_of_a_zoned_name_is_in_its_zone() {
    let zone = orca_lb_core::Zone::new("us-east-1b").unwrap();
    let mut stream = Box::pin(
        DnsDiscovery::new("svc", 80)
            .zone(zone.clone())
            .resolver(Rounds(Arc::new(Mutex::new(vec![addrs(1..3)]))))
            .into_stream(),
    );
    for _ in 0..2 {
        let change = stream.next().await.expect("the stream goes on");
        assert!(
            matches!(&change, Change::InsertInZone(_, _, z) if *z == zone),
            "{change:?}"
        );
    }
}
