use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_stream::{Stream, StreamExt};

use crate::shared::Shared;
use crate::{Balancer, BalancerConfig, Change};

fn inserts(n: usize) -> Vec<Change> {
    (0..n)
        .map(|i| {
            let key = format!("http://10.0.{}.{}:80", i / 256, i % 256);
            let uri = key.parse().unwrap();
            Change::Insert(key, uri)
        })
        .collect()
}

#[tokio::test]
async fn insertions_that_arrive_together_are_published_together() {
    let shared = Arc::new(Shared::new(BalancerConfig::default(), 1));
    let discovery = tokio_stream::iter(inserts(10_000)).chain(tokio_stream::pending());
    let task = tokio::spawn(crate::discovery::run(
        Arc::downgrade(&shared),
        Box::pin(discovery),
    ));
    tokio::time::timeout(
        Duration::from_secs(60),
        shared.set.wait_for_list(|list| list.len() >= 10_000),
    )
    .await
    .expect("every insertion applied");
    let publications = shared.set.generation();
    assert!(
        publications <= 10_000u64.div_ceil(super::MAX_BATCH as u64),
        "{publications} publications for 10,000 insertions"
    );
    task.abort();
}

/// A discovery stream that never yields and says when it is dropped.
struct Silent(Option<oneshot::Sender<()>>);

impl Stream for Silent {
    type Item = Change;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Change>> {
        Poll::Pending
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn discovery_ends_with_the_last_balancer_clone() {
    let (tx, mut rx) = oneshot::channel();
    let balancer = Balancer::new(BalancerConfig::default(), Silent(Some(tx))).unwrap();
    let clone = balancer.clone();
    // The discovery task runs and holds the stream.
    tokio::task::yield_now().await;
    drop(balancer);
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err(), "a clone still lives");
    drop(clone);
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("the discovery stream is dropped once the balancer is")
        .expect("dropped, not leaked");
}
