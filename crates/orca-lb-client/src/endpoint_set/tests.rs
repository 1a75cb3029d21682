use std::sync::Arc;
use std::time::{Duration, Instant};

use orca_lb_core::{Admission, BreakerState, Outcome};
use tonic::transport::Endpoint as TonicEndpoint;

use super::{EndpointSet, wait_for_change};
use crate::BalancerConfig;
use crate::endpoint::{Endpoint, Tick};

fn endpoint(config: &BalancerConfig, i: usize, now: Instant) -> Arc<Endpoint> {
    let key = format!("http://127.0.0.1:{}", 1000 + i);
    let uri: http::Uri = key.parse().unwrap();
    let channel = TonicEndpoint::from(uri.clone()).connect_lazy();
    Arc::new(Endpoint::new(key, uri, None, channel, config, now, now))
}

fn fleet(n: usize, now: Instant) -> (EndpointSet, Vec<Arc<Endpoint>>) {
    let config = BalancerConfig::default();
    let set = EndpointSet::new(config.target.clone(), config.ejection, None, None);
    let eps: Vec<_> = (0..n).map(|i| endpoint(&config, i, now)).collect();
    for ep in &eps {
        assert!(set.insert(ep.clone()));
    }
    (set, eps)
}

fn fail(ep: &Endpoint, set: &EndpointSet, times: u32, now: Instant) {
    for _ in 0..times {
        set.on_outcome(
            ep,
            Outcome::Failure,
            Some(Duration::from_millis(1)),
            false,
            now,
        );
    }
}

fn state(ep: &Endpoint) -> BreakerState {
    ep.breaker_state()
}

#[tokio::test]
async fn an_endpoint_ejected_after_its_removal_is_not_counted() {
    let now = Instant::now();
    let (set, eps) = fleet(4, now);
    // Removed while its calls are failing: they end after the removal.
    fail(&eps[0], &set, 2, now);
    set.remove(eps[0].key()).unwrap();
    fail(&eps[0], &set, 10, now);
    assert_eq!(state(&eps[0]), BreakerState::Open);
    assert_eq!(set.ejected(), 0);
    // The budget (half of the 3 members) still lets one more go.
    fail(&eps[1], &set, 10, now);
    assert_eq!(state(&eps[1]), BreakerState::Open);
    assert_eq!(set.ejected(), 1);
}

#[tokio::test]
async fn an_endpoint_removed_while_half_open_does_not_underflow() {
    let now = Instant::now();
    let (set, eps) = fleet(4, now);
    fail(&eps[0], &set, 10, now);
    assert_eq!(set.ejected(), 1);
    let later = now + Duration::from_secs(3600);
    let Tick::Changed(change) = eps[0].on_tick(later) else {
        panic!("the ejection is over at {later:?}");
    };
    set.record(&eps[0], Some(change));
    assert_eq!(state(&eps[0]), BreakerState::HalfOpen);
    let probes: Vec<_> = (0..3).map(|_| eps[0].admit(false)).collect();
    assert!(probes.iter().all(|p| *p == Admission::Probe), "{probes:?}");
    set.remove(eps[0].key()).unwrap();
    assert_eq!(set.ejected(), 0);
    for _ in 0..3 {
        set.on_outcome(
            &eps[0],
            Outcome::Success,
            Some(Duration::from_millis(1)),
            true,
            later,
        );
    }
    assert_eq!(state(&eps[0]), BreakerState::Closed);
    assert_eq!(set.ejected(), 0, "no underflow");
    assert!(!set.is_panic());
    fail(&eps[1], &set, 10, later);
    assert_eq!(set.ejected(), 1);
}

/// Transitions of one endpoint, recorded in the reverse of the order they
/// happened in (their events ran on different threads): the count follows
/// the breaker as it is, not the last transition recorded.
#[tokio::test]
async fn transitions_recorded_out_of_order_leave_the_count_right() {
    let now = Instant::now();
    let (set, eps) = fleet(4, now);
    let ep = &eps[0];
    let ms = Duration::from_millis(1);
    let mut changes = Vec::new();
    for _ in 0..10 {
        changes.extend(ep.on_outcome(Outcome::Failure, Some(ms), false, set.may_eject(), now));
    }
    let later = now + Duration::from_secs(3600);
    let Tick::Changed(half_open) = ep.on_tick(later) else {
        panic!("the ejection is over at {later:?}");
    };
    changes.push(half_open);
    while ep.admit(false) == Admission::Probe {
        changes.extend(ep.on_outcome(Outcome::Success, Some(ms), true, true, later));
    }
    assert_eq!(state(ep), BreakerState::Closed);
    let to: Vec<_> = changes.iter().map(|c| c.transition.to).collect();
    assert_eq!(
        to,
        [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
    );
    for change in changes.into_iter().rev() {
        set.record(ep, Some(change));
    }
    assert_eq!(set.ejected(), 0);
    assert!(!set.is_panic());
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

#[tokio::test]
async fn a_rotation_in_one_batch_never_leaves_picks_without_an_endpoint() {
    let now = Instant::now();
    let config = BalancerConfig::default();
    let (set, old) = fleet(4, now);
    let new: Vec<_> = (4..8).map(|i| endpoint(&config, i, now)).collect();
    // What a pick reads: the published list, less the draining endpoints.
    let pickable = |set: &EndpointSet| {
        let (list, _) = set.list();
        list.iter().filter(|ep| !ep.is_draining()).count()
    };

    set.begin_batch();
    for ep in &new {
        assert!(set.insert(ep.clone()));
    }
    for ep in &old {
        set.remove(ep.key()).unwrap();
        // The list still published is the old one: all of it is pickable
        // until the new one replaces it.
        assert_eq!(pickable(&set), 4);
    }
    assert!(
        set.draining().is_empty(),
        "nothing drains before the list moves"
    );
    set.end_batch();

    let (list, _) = set.list();
    let keys: Vec<_> = list.iter().map(|ep| ep.key().to_string()).collect();
    let new_keys: Vec<_> = new.iter().map(|ep| ep.key().to_string()).collect();
    assert_eq!(keys, new_keys);
    assert_eq!(pickable(&set), 4);
    assert!(old.iter().all(|ep| ep.is_draining()));
    assert_eq!(set.draining().len(), 4);
}

#[tokio::test]
async fn a_removal_outside_a_batch_drains_at_once() {
    let now = Instant::now();
    let (set, eps) = fleet(2, now);
    set.remove(eps[0].key()).unwrap();
    assert!(eps[0].is_draining());
    assert_eq!(set.list().0.len(), 1);
    assert_eq!(set.draining().len(), 1);
}
