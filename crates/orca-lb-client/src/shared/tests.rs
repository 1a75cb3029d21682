use std::sync::Arc;
use std::time::{Duration, Instant};

use orca_lb_core::{Admission, BreakerState, Outcome};
use tonic::transport::Endpoint as TonicEndpoint;

use super::{Shared, wait_for_change};
use crate::BalancerConfig;
use crate::endpoint::Endpoint;

fn endpoint(shared: &Shared, i: usize, now: Instant) -> Arc<Endpoint> {
    let key = format!("http://127.0.0.1:{}", 1000 + i);
    let uri: http::Uri = key.parse().unwrap();
    let channel = TonicEndpoint::from(uri.clone()).connect_lazy();
    Arc::new(Endpoint::new(key, uri, channel, shared, now))
}

fn fleet(n: usize, now: Instant) -> (Arc<Shared>, Vec<Arc<Endpoint>>) {
    let shared = Arc::new(Shared::new(BalancerConfig::default(), 1));
    let eps: Vec<_> = (0..n).map(|i| endpoint(&shared, i, now)).collect();
    for ep in &eps {
        assert!(shared.insert(ep.clone()));
    }
    (shared, eps)
}

fn fail(ep: &Endpoint, shared: &Shared, times: u32, now: Instant) {
    for _ in 0..times {
        ep.on_outcome(
            Outcome::Failure,
            Some(Duration::from_millis(1)),
            false,
            shared,
            now,
        );
    }
}

fn state(ep: &Endpoint) -> BreakerState {
    ep.core.lock().policy.breaker().state()
}

#[tokio::test]
async fn an_endpoint_ejected_after_its_removal_is_not_counted() {
    let now = Instant::now();
    let (shared, eps) = fleet(4, now);
    // Removed while its calls are failing: they end after the removal.
    fail(&eps[0], &shared, 2, now);
    shared.remove(&eps[0].key).unwrap();
    fail(&eps[0], &shared, 10, now);
    assert_eq!(state(&eps[0]), BreakerState::Open);
    assert_eq!(shared.ejected(), 0);
    // The budget (half of the 3 members) still lets one more go.
    fail(&eps[1], &shared, 10, now);
    assert_eq!(state(&eps[1]), BreakerState::Open);
    assert_eq!(shared.ejected(), 1);
}

#[tokio::test]
async fn an_endpoint_removed_while_half_open_does_not_underflow() {
    let now = Instant::now();
    let (shared, eps) = fleet(4, now);
    fail(&eps[0], &shared, 10, now);
    assert_eq!(shared.ejected(), 1);
    let later = now + Duration::from_secs(3600);
    eps[0].on_tick(&shared, later);
    assert_eq!(state(&eps[0]), BreakerState::HalfOpen);
    let probes: Vec<_> = (0..3).map(|_| eps[0].admit(false)).collect();
    assert!(probes.iter().all(|p| *p == Admission::Probe), "{probes:?}");
    shared.remove(&eps[0].key).unwrap();
    assert_eq!(shared.ejected(), 0);
    for _ in 0..3 {
        eps[0].on_outcome(
            Outcome::Success,
            Some(Duration::from_millis(1)),
            true,
            &shared,
            later,
        );
    }
    assert_eq!(state(&eps[0]), BreakerState::Closed);
    assert_eq!(shared.ejected(), 0, "no underflow");
    assert!(!shared.is_panic());
    fail(&eps[1], &shared, 10, later);
    assert_eq!(shared.ejected(), 1);
}

/// A change published right after a check that found the list short:
/// the wait must see it, not sleep until a change that never comes.
#[tokio::test(start_paused = true)]
async fn a_change_between_the_check_and_the_wait_is_not_lost() {
    let changed = tokio::sync::Notify::new();
    let mut checks = 0;
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(3600),
        wait_for_change(&changed, || {
            checks += 1;
            if checks == 1 {
                // Discovery publishes after this check has read the list.
                changed.notify_waiters();
                return false;
            }
            true
        }),
    )
    .await;
    assert!(waited.is_ok(), "the wait missed the change");
    assert_eq!(checks, 2);
}
