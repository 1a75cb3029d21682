//! The balancer's endpoints: who is a member, the list picks read, and the
//! counts derived from them (members, and members ejected).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orca_lb_core::{BreakerState, EjectionBudget, HashRing, LoadReport, Outcome, Zone, ZoneIndex};
use parking_lot::{Mutex, RwLock};

use crate::HealthState;
use crate::endpoint::{BreakerChange, Endpoint};

/// The endpoint list picks read: replaced whole on every discovery change, so
/// a pick holds an `Arc` of a consistent list and never waits on discovery.
/// With locality on, it carries the list's split by zone too, and with
/// affinity on the hash ring over the endpoints' keys, each computed once
/// when the list is published, so that a pick only reads it.
#[derive(Debug, Clone)]
pub(crate) struct EndpointList(Arc<ListInner>);

#[derive(Debug)]
struct ListInner {
    endpoints: Box<[Arc<Endpoint>]>,
    zones: Option<ZoneIndex>,
    ring: Option<HashRing>,
}

impl EndpointList {
    /// `endpoints`, split by zone around `local` if there is one, with a
    /// hash ring of `virtual_nodes` points per endpoint if given.
    pub(crate) fn new(
        endpoints: Vec<Arc<Endpoint>>,
        local: Option<&Zone>,
        virtual_nodes: Option<u32>,
    ) -> Self {
        let zones = local.map(|z| ZoneIndex::new(z, endpoints.iter().map(|ep| ep.zone())));
        let ring = virtual_nodes.map(|v| HashRing::new(endpoints.iter().map(|ep| ep.key()), v));
        Self(Arc::new(ListInner {
            endpoints: endpoints.into_boxed_slice(),
            zones,
            ring,
        }))
    }

    /// The hash ring over the endpoints, with affinity on.
    pub(crate) fn ring(&self) -> Option<&HashRing> {
        self.0.ring.as_ref()
    }

    /// The endpoints split by zone, with locality on.
    pub(crate) fn zones(&self) -> Option<&ZoneIndex> {
        self.0.zones.as_ref()
    }
}

impl std::ops::Deref for EndpointList {
    type Target = [Arc<Endpoint>];

    fn deref(&self) -> &Self::Target {
        &self.0.endpoints
    }
}

/// One member and whether [`Members::ejected`] counts it.
#[derive(Debug)]
struct Member {
    endpoint: Arc<Endpoint>,
    out: bool,
}

/// The members by key and how many of them are out (breaker not Closed).
/// Only its own methods change either, together, under the set's lock: the
/// count cannot drift from the flags, and an endpoint that is no longer a
/// member cannot move it.
#[derive(Debug, Default)]
struct Members {
    by_key: HashMap<String, Member>,
    ejected: usize,
    /// Set while discovery applies a batch of changes: insertions and
    /// removals then publish the list once, at the end of the batch.
    batching: bool,
    /// A change arrived during the batch and the list is yet to be published.
    unpublished: bool,
    /// Removed, and still in the published list: they start draining when a
    /// list without them is published. Marked at once, they would be passed
    /// over by picks that still read the old list while the batch's
    /// insertions are unpublished, and a full rotation applied as one batch
    /// would leave picks nothing for a moment.
    removed: Vec<Arc<Endpoint>>,
}

impl Members {
    /// Adds `endpoint` (not out); `false` if its key is taken.
    fn insert(&mut self, endpoint: Arc<Endpoint>) -> bool {
        if self.by_key.contains_key(endpoint.key()) {
            return false;
        }
        self.by_key.insert(
            endpoint.key().to_string(),
            Member {
                endpoint,
                out: false,
            },
        );
        true
    }

    /// Removes the member with `key`, and its part of the count.
    fn remove(&mut self, key: &str) -> Option<Arc<Endpoint>> {
        let member = self.by_key.remove(key)?;
        if member.out {
            self.ejected -= 1;
        }
        Some(member.endpoint)
    }

    /// Counts `endpoint` as out or not, as its breaker now says, if it is
    /// (still) a member.
    fn recount(&mut self, endpoint: &Endpoint) {
        let Some(member) = self.by_key.get_mut(endpoint.key()) else {
            return;
        };
        if !std::ptr::eq(Arc::as_ptr(&member.endpoint), endpoint) {
            return;
        }
        let out = endpoint.is_out();
        if member.out != out {
            member.out = out;
            if out {
                self.ejected += 1;
            } else {
                self.ejected -= 1;
            }
        }
    }

    /// The members, in key order, split by zone around `local`, with a hash
    /// ring of `virtual_nodes` points each if given.
    fn list(&self, local: Option<&Zone>, virtual_nodes: Option<u32>) -> EndpointList {
        let mut eps: Vec<_> = self.by_key.values().map(|m| m.endpoint.clone()).collect();
        eps.sort_by(|a, b| a.key().cmp(b.key()));
        EndpointList::new(eps, local, virtual_nodes)
    }
}

/// Members ejected (low half) and members (high half) in one word, so that a
/// reader sees both as of the same change.
fn pack(ejected: usize, total: usize) -> u64 {
    let half = |n: usize| u64::from(u32::try_from(n).unwrap_or(u32::MAX));
    half(total) << 32 | half(ejected)
}

fn unpack(word: u64) -> (usize, usize) {
    ((word & u64::from(u32::MAX)) as usize, (word >> 32) as usize)
}

/// The balancer's endpoints. It owns membership (changed by discovery), the
/// list picks read, the endpoints discovery removed that still carry calls,
/// and the counts derived from membership: members, members ejected, and
/// whether too few are left (panic mode). Events that may move an
/// endpoint's breaker go through the set ([`on_report`](Self::on_report),
/// [`on_outcome`](Self::on_outcome), [`record`](Self::record)), which counts
/// and logs the transitions the endpoint returns.
#[derive(Debug)]
pub(crate) struct EndpointSet {
    /// The balancer's target name, for logs.
    target: String,
    budget: EjectionBudget,
    /// The client's zone, with locality on: lists are split around it.
    local_zone: Option<Zone>,
    /// Ring points per endpoint, with affinity on: lists carry a hash ring.
    virtual_nodes: Option<u32>,
    members: Mutex<Members>,
    list: RwLock<EndpointList>,
    /// Bumped with every change of `list`, under its write lock; clones
    /// compare it to their cached generation (one atomic load per pick) and
    /// re-read `list` when it moved.
    generation: AtomicU64,
    /// The counts of the members, as of the last published list or
    /// transition ([`pack`]), and the panic flag derived from them. Written
    /// only under the `members` lock, from `Members`; read without it.
    counts: AtomicU64,
    panic: AtomicBool,
    /// Endpoints discovery removed that still carry calls or streams: kept
    /// for the snapshot (state *draining*) until the maintenance pass sees
    /// them idle.
    draining: Mutex<Vec<Arc<Endpoint>>>,
    /// Woken on every published list and every health change.
    changed: tokio::sync::Notify,
}

impl EndpointSet {
    /// An empty set for the balancer of `target`.
    pub(crate) fn new(
        target: String,
        budget: EjectionBudget,
        local_zone: Option<Zone>,
        virtual_nodes: Option<u32>,
    ) -> Self {
        let list = EndpointList::new(Vec::new(), local_zone.as_ref(), virtual_nodes);
        Self {
            target,
            budget,
            local_zone,
            virtual_nodes,
            members: Mutex::new(Members::default()),
            list: RwLock::new(list),
            generation: AtomicU64::new(0),
            counts: AtomicU64::new(0),
            panic: AtomicBool::new(false),
            draining: Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The generation of the list now.
    pub(crate) fn generation(&self) -> u64 {
        // Acquire pairs with the Release in `publish_list`: a clone that sees
        // the new generation here and then takes the list's read lock finds
        // the new list, so it never caches an old list under a new number.
        self.generation.load(Ordering::Acquire)
    }

    /// The list and its generation, read together.
    pub(crate) fn list(&self) -> (EndpointList, u64) {
        let list = self.list.read();
        // Under the read lock: the generation moves only under the write
        // lock, so this one is the list's.
        (list.clone(), self.generation())
    }

    /// Members whose breaker is not Closed.
    pub(crate) fn ejected(&self) -> usize {
        unpack(self.counts.load(Ordering::Relaxed)).0
    }

    /// Whether panic mode is on: too few members left eligible, ejections
    /// ignored.
    pub(crate) fn is_panic(&self) -> bool {
        // Relaxed: a flag read on its own; a pick a moment late decides as
        // it would have a moment earlier.
        self.panic.load(Ordering::Relaxed)
    }

    /// Whether the ejection budget allows one more ejection.
    pub(crate) fn may_eject(&self) -> bool {
        // Relaxed: one word, so ejected and total are of the same change;
        // a moment late, it is the budget of a moment earlier.
        let (ejected, total) = unpack(self.counts.load(Ordering::Relaxed));
        self.budget.may_eject(ejected, total)
    }

    /// Publishes the counts of `members` (lock held by the caller) and the
    /// panic flag derived from them, logging when panic mode starts or ends.
    fn publish_counts(&self, members: &Members) {
        let total = members.by_key.len();
        let ejected = members.ejected;
        // Relaxed: written only under the `members` lock, which orders the
        // writers; readers take each word on its own.
        self.counts.store(pack(ejected, total), Ordering::Relaxed);
        let eligible = total.saturating_sub(ejected);
        let panic = self.budget.is_panic(eligible, total);
        if self.panic.swap(panic, Ordering::Relaxed) != panic {
            if panic {
                tracing::warn!(
                    target_name = %self.target,
                    eligible,
                    total,
                    "too few endpoints left: panic mode, ejections ignored"
                );
            } else {
                tracing::info!(target_name = %self.target, eligible, total, "panic mode over");
            }
        }
    }

    /// Publishes the list of `members` (lock held by the caller) now, or at
    /// the end of the current batch.
    fn publish_members(&self, members: &mut Members) {
        if members.batching {
            members.unpublished = true;
        } else {
            self.publish_list(members);
        }
    }

    fn publish_list(&self, members: &mut Members) {
        let list = members.list(self.local_zone.as_ref(), self.virtual_nodes);
        {
            let mut slot = self.list.write();
            *slot = list;
            // Release pairs with the Acquire in `generation`.
            self.generation.fetch_add(1, Ordering::Release);
        }
        if !members.removed.is_empty() {
            let mut draining = self.draining.lock();
            for ep in members.removed.drain(..) {
                ep.start_draining();
                draining.push(ep);
            }
        }
        self.publish_counts(members);
        self.changed.notify_waiters();
    }

    /// Defers publishing the list until [`end_batch`](Self::end_batch):
    /// changes that arrive together are published once, not one list
    /// rebuilt and sorted per change. Only the discovery task batches.
    pub(crate) fn begin_batch(&self) {
        self.members.lock().batching = true;
    }

    /// Publishes the list once, if the batch changed it.
    pub(crate) fn end_batch(&self) {
        let mut members = self.members.lock();
        members.batching = false;
        if std::mem::take(&mut members.unpublished) {
            self.publish_list(&mut members);
        }
    }

    /// Adds an endpoint; `false` if its key is already present.
    pub(crate) fn insert(&self, ep: Arc<Endpoint>) -> bool {
        let mut members = self.members.lock();
        if !members.insert(ep) {
            return false;
        }
        self.publish_members(&mut members);
        true
    }

    /// Removes an endpoint: it stops being picked once the list without it
    /// is published (at once, or at the end of a batch); calls in flight on
    /// it finish (they hold their own reference), and until they have it
    /// shows in snapshots as draining. It is kept even if idle: a call
    /// picked just before the removal may not have counted itself yet. The
    /// next maintenance pass lets go of it once idle.
    pub(crate) fn remove(&self, key: &str) -> Option<Arc<Endpoint>> {
        let mut members = self.members.lock();
        let ep = members.remove(key)?;
        members.removed.push(ep.clone());
        self.publish_members(&mut members);
        Some(ep)
    }

    /// Removed endpoints not yet let go of: those still carrying calls or
    /// streams, and, until the next maintenance pass, any removed since it.
    pub(crate) fn draining(&self) -> Vec<Arc<Endpoint>> {
        self.draining.lock().clone()
    }

    /// Lets go of removed endpoints that no longer carry calls or streams.
    pub(crate) fn let_go_of_idle(&self) {
        self.draining.lock().retain(|ep| !ep.is_idle());
    }

    /// Resolves once the endpoint list satisfies `done` (checked again on
    /// every published list and every health change).
    pub(crate) async fn wait_for_list(&self, mut done: impl FnMut(&EndpointList) -> bool) {
        wait_for_change(&self.changed, || done(&self.list().0)).await;
    }

    /// Feeds a report to `ep` and records the transition it caused.
    pub(crate) fn on_report(&self, ep: &Endpoint, report: &LoadReport, now: Instant) {
        let change = ep.on_report(report, self.may_eject(), now);
        self.record(ep, change);
    }

    /// Feeds a call's outcome to `ep` and records the transition it caused.
    pub(crate) fn on_outcome(
        &self,
        ep: &Endpoint,
        outcome: Outcome,
        latency: Option<Duration>,
        probe: bool,
        now: Instant,
    ) {
        let change = ep.on_outcome(outcome, latency, probe, self.may_eject(), now);
        self.record(ep, change);
    }

    /// Sets `ep`'s health; a change is counted, logged, and wakes callers
    /// waiting for a healthy endpoint.
    pub(crate) fn on_health(&self, ep: &Endpoint, state: HealthState) {
        let Some(before) = ep.set_health(state) else {
            return;
        };
        tracing::info!(
            target_name = %self.target,
            endpoint = %ep.key(),
            from = %before,
            to = %state,
            "endpoint health changed"
        );
        self.changed.notify_waiters();
    }

    /// Records a transition of `ep`'s breaker, if there was one: counts the
    /// member as out or not, as its breaker now says (so that transitions
    /// recorded out of order still leave the count right), updates panic
    /// mode and logs the transition. An endpoint no longer (or not yet) a
    /// member is not counted: discovery removed it, and `remove` took it out
    /// of the count under the same lock.
    pub(crate) fn record(&self, ep: &Endpoint, change: Option<BreakerChange>) {
        let Some(BreakerChange {
            transition: t,
            ejections,
        }) = change
        else {
            return;
        };
        {
            let mut members = self.members.lock();
            members.recount(ep);
            self.publish_counts(&members);
        }
        match t.to {
            BreakerState::Open => tracing::info!(
                target_name = %self.target,
                endpoint = %ep.key(),
                from = ?t.from,
                reason = ?t.reason,
                ejections,
                "endpoint ejected"
            ),
            BreakerState::HalfOpen => tracing::info!(
                target_name = %self.target,
                endpoint = %ep.key(),
                "endpoint half-open: probing"
            ),
            BreakerState::Closed => tracing::info!(
                target_name = %self.target,
                endpoint = %ep.key(),
                "endpoint recovered"
            ),
        }
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
