//! State shared by every clone of a balancer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use orca_lb_core::{BreakerState, FleetSamples, FleetView, Transition};
use parking_lot::{Mutex, RwLock};

use crate::BalancerConfig;
use crate::atomic_f64::AtomicF64;
use crate::endpoint::Endpoint;
use crate::repick_budget::RepickBudget;

/// The endpoint list picks read: replaced whole on every discovery change, so
/// a pick holds an `Arc` of a consistent list and never waits on discovery.
pub(crate) type EndpointList = Arc<[Arc<Endpoint>]>;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: BalancerConfig,
    list: RwLock<EndpointList>,
    by_key: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Endpoints discovery removed that still carry calls or streams: kept
    /// for the snapshot (state *draining*) until the maintenance pass sees
    /// them idle.
    draining: Mutex<Vec<Arc<Endpoint>>>,
    /// Bumped on every change of `list`; clones compare it to their cached
    /// generation (one atomic load per pick) and re-read `list` when it moved.
    generation: AtomicU64,
    fleet_service_time: AtomicF64,
    fleet_backlog: AtomicF64,
    fleet_streams: AtomicF64,
    /// Members of `by_key` whose breaker is not Closed: those whose
    /// `Endpoint::counted_ejected` is set. Both change only under the
    /// `by_key` lock, and only for members, so a transition of an endpoint
    /// already removed cannot move it.
    ejected: AtomicUsize,
    total: AtomicUsize,
    panic: AtomicBool,
    seed: AtomicU64,
    changed: tokio::sync::Notify,
    /// Set while discovery applies a batch of changes: insertions and
    /// removals then publish the list once, at the end of the batch.
    batching: AtomicBool,
    /// A change arrived during the batch and the list is yet to be published.
    unpublished: AtomicBool,
    /// Dropped with the balancer: its receivers (the discovery task) learn
    /// that it is gone without waiting for their next change.
    dropped: tokio::sync::watch::Sender<()>,
    /// The maintenance pass's buffers (only that task takes this lock).
    samples: Mutex<FleetSamples>,
    /// Transparent re-picks left.
    pub(crate) repick: RepickBudget,
}

impl Shared {
    pub(crate) fn new(config: BalancerConfig, seed: u64) -> Self {
        let unknown = FleetView::unknown(config.score.default_service_time);
        let repick = RepickBudget::new(config.transparent_retry, &config.target);
        Self {
            repick,
            config,
            list: RwLock::new(Arc::from(Vec::new())),
            by_key: Mutex::new(HashMap::new()),
            draining: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            fleet_service_time: AtomicF64::new(unknown.service_time),
            fleet_backlog: AtomicF64::new(unknown.backlog),
            fleet_streams: AtomicF64::new(unknown.streams),
            ejected: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            panic: AtomicBool::new(false),
            seed: AtomicU64::new(seed),
            changed: tokio::sync::Notify::new(),
            batching: AtomicBool::new(false),
            unpublished: AtomicBool::new(false),
            dropped: tokio::sync::watch::Sender::new(()),
            samples: Mutex::new(FleetSamples::new()),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn list(&self) -> (EndpointList, u64) {
        let list = self.list.read();
        (list.clone(), self.generation())
    }

    /// A fresh RNG seed for a new clone (splitmix64 over a counter).
    pub(crate) fn next_seed(&self) -> u64 {
        let mut z = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn fleet(&self) -> FleetView {
        FleetView {
            service_time: self.fleet_service_time.load(),
            backlog: self.fleet_backlog.load(),
            streams: self.fleet_streams.load(),
        }
    }

    pub(crate) fn is_panic(&self) -> bool {
        self.panic.load(Relaxed)
    }

    pub(crate) fn ejected(&self) -> usize {
        self.ejected.load(Relaxed)
    }

    /// Whether the ejection budget allows one more ejection.
    pub(crate) fn may_eject(&self) -> bool {
        self.config
            .ejection
            .may_eject(self.ejected.load(Relaxed), self.total.load(Relaxed))
    }

    fn update_panic(&self) {
        let total = self.total.load(Relaxed);
        let eligible = total.saturating_sub(self.ejected.load(Relaxed));
        let panic = self.config.ejection.is_panic(eligible, total);
        if self.panic.swap(panic, Relaxed) != panic {
            if panic {
                tracing::warn!(
                    target_name = %self.config.target,
                    eligible,
                    total,
                    "too few endpoints left: panic mode, ejections ignored"
                );
            } else {
                tracing::info!(target_name = %self.config.target, eligible, total, "panic mode over");
            }
        }
    }

    pub(crate) fn on_transition(
        &self,
        ep: &Endpoint,
        t: &Transition,
        ejections: u32,
        _now: Instant,
    ) {
        self.count_ejection(ep, t.to != BreakerState::Closed);
        match t.to {
            BreakerState::Open => tracing::info!(
                target_name = %self.config.target,
                endpoint = %ep.key,
                from = ?t.from,
                reason = ?t.reason,
                ejections,
                "endpoint ejected"
            ),
            BreakerState::HalfOpen => tracing::info!(
                target_name = %self.config.target,
                endpoint = %ep.key,
                "endpoint half-open: probing"
            ),
            BreakerState::Closed => tracing::info!(
                target_name = %self.config.target,
                endpoint = %ep.key,
                "endpoint recovered"
            ),
        }
        self.update_panic();
    }

    /// Records whether member `ep` is out (breaker not Closed) in the
    /// balancer-wide count. An endpoint no longer (or not yet) a member is
    /// not counted: discovery removed it, and `remove` took it out of the
    /// count under the same lock.
    fn count_ejection(&self, ep: &Endpoint, is_out: bool) {
        let by_key = self.by_key.lock();
        let member = by_key
            .get(&ep.key)
            .is_some_and(|m| std::ptr::eq(Arc::as_ptr(m), ep));
        if !member {
            return;
        }
        if ep.counted_ejected.swap(is_out, Relaxed) != is_out {
            if is_out {
                self.ejected.fetch_add(1, Relaxed);
            } else {
                self.ejected.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Resolves (with an error) once the balancer is dropped; never before.
    pub(crate) fn dropped(&self) -> tokio::sync::watch::Receiver<()> {
        self.dropped.subscribe()
    }

    /// Defers publishing the list until [`end_batch`](Self::end_batch):
    /// changes that arrive together are published once, not one list
    /// rebuilt and sorted per change. Only the discovery task batches.
    pub(crate) fn begin_batch(&self) {
        self.batching.store(true, Relaxed);
    }

    /// Publishes the list once if the batch changed it.
    pub(crate) fn end_batch(&self) {
        let by_key = self.by_key.lock();
        self.batching.store(false, Relaxed);
        if self.unpublished.swap(false, Relaxed) {
            self.republish(&by_key);
        }
    }

    /// Publishes the list now, or at the end of the current batch.
    fn publish_members(&self, by_key: &HashMap<String, Arc<Endpoint>>) {
        if self.batching.load(Relaxed) {
            self.unpublished.store(true, Relaxed);
        } else {
            self.republish(by_key);
        }
    }

    /// Adds an endpoint; `false` if its key is already present.
    pub(crate) fn insert(&self, ep: Arc<Endpoint>) -> bool {
        let mut by_key = self.by_key.lock();
        if by_key.contains_key(&ep.key) {
            return false;
        }
        by_key.insert(ep.key.clone(), ep);
        self.publish_members(&by_key);
        true
    }

    /// Removes an endpoint: it stops being picked at once; calls in flight
    /// on it finish (they hold their own reference), and until they have it
    /// shows in snapshots as draining.
    pub(crate) fn remove(&self, key: &str) -> Option<Arc<Endpoint>> {
        let mut by_key = self.by_key.lock();
        let ep = by_key.remove(key)?;
        ep.draining.store(true, Relaxed);
        if let Some(task) = ep.oob_task.lock().take() {
            task.abort();
        }
        if ep.counted_ejected.swap(false, Relaxed) {
            self.ejected.fetch_sub(1, Relaxed);
        }
        self.publish_members(&by_key);
        drop(by_key);
        // Kept even if idle now: a call picked just before the removal may
        // not have counted itself yet. The next maintenance pass lets go of
        // it once idle.
        self.draining.lock().push(ep.clone());
        Some(ep)
    }

    /// Removed endpoints not yet let go of: those still carrying calls or
    /// streams, and, until the next maintenance pass, any removed since it.
    pub(crate) fn draining(&self) -> Vec<Arc<Endpoint>> {
        self.draining.lock().clone()
    }

    fn republish(&self, by_key: &HashMap<String, Arc<Endpoint>>) {
        let mut eps: Vec<_> = by_key.values().cloned().collect();
        eps.sort_by(|a, b| a.key.cmp(&b.key));
        self.total.store(eps.len(), Relaxed);
        *self.list.write() = Arc::from(eps);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        self.update_panic();
        self.changed.notify_waiters();
    }

    /// Resolves once the endpoint list satisfies `done`.
    pub(crate) async fn wait_for_list(&self, mut done: impl FnMut(&EndpointList) -> bool) {
        wait_for_change(&self.changed, || done(&self.list().0)).await;
    }

    /// One maintenance pass: breaker deadlines, fleet medians, gauges and
    /// pick windows.
    pub(crate) fn maintain(self: &Arc<Self>, now: Instant) {
        self.draining.lock().retain(|ep| !ep.is_idle());
        let (list, _) = self.list();
        let mut samples = self.samples.lock();
        samples.clear();
        for ep in list.iter() {
            ep.on_tick(self, now);
            let mut core = ep.core.lock();
            samples.add(core.policy.state());
            let picks = ep.picks_total.load(Relaxed);
            let failures = ep.failures_total.load(Relaxed);
            core.history.push_back((now, picks, failures));
            while core.history.front().is_some_and(|(t, _, _)| {
                now.saturating_duration_since(*t) > crate::snapshot::WINDOW
            }) {
                core.history.pop_front();
            }
            drop(core);
            ep.metrics
                .in_flight
                .set(f64::from(ep.in_flight.load(Relaxed)));
            ep.metrics.score.set(ep.cost(false, self, now).seconds());
            ep.refresh_breaker_gauge();
            ep.invalid_report_log.summarise(
                &self.config.target,
                &ep.key,
                self.config.report_log_interval,
                now,
            );
        }
        let fleet = samples.view(self.fleet());
        self.fleet_service_time.store(fleet.service_time);
        self.fleet_backlog.store(fleet.backlog);
        self.fleet_streams.store(fleet.streams);
        self.update_panic();
    }
}

/// Waits until `done` holds, re-checking after each `notify_waiters` on
/// `changed`. The wait registers for the next change before each check, so a
/// change published between a check and the wait still wakes it.
async fn wait_for_change(changed: &tokio::sync::Notify, mut done: impl FnMut() -> bool) {
    loop {
        let next = changed.notified();
        if done() {
            return;
        }
        next.await;
    }
}

#[cfg(test)]
mod tests;
