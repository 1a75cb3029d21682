//! State shared by every clone of a balancer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use orca_lb_core::{
    AffinityConfig, AffinityKey, FleetSamples, FleetView, PickSettings, ZonePreference, key_hash,
    zone_load,
};
use parking_lot::Mutex;

use crate::endpoint::{Endpoint, Tick, can_connect};
use crate::endpoint_set::EndpointSet;
use crate::metrics::BalancerMetrics;
use crate::repick_budget::RepickBudget;
use crate::{BalancerConfig, CallKey};
use orca_lb_core::AtomicF64;
use orca_lb_core::splitmix::{GOLDEN_GAMMA, splitmix64};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: BalancerConfig,
    /// The endpoints, and the counts derived from them.
    pub(crate) set: EndpointSet,
    /// The fleet medians ([`FleetView`]), recomputed by each maintenance
    /// pass; each read on its own (see [`AtomicF64`]).
    fleet_service_time: AtomicF64,
    fleet_backlog: AtomicF64,
    fleet_streams: AtomicF64,
    seed: AtomicU64,
    /// Dropped with the balancer: its receivers (the discovery task) learn
    /// that it is gone without waiting for their next change.
    dropped: tokio::sync::watch::Sender<()>,
    /// The maintenance pass's buffers (only that task takes this lock).
    samples: Mutex<FleetSamples>,
    /// The share of picks sent outside the local zone (0 with locality
    /// off), set by each maintenance pass, read by every pick.
    spill: AtomicF64,
    /// What the spill is computed with (only the maintenance pass takes
    /// this lock); `None` with locality off.
    zone_preference: Option<Mutex<ZonePreference>>,
    /// Transparent re-picks left.
    pub(crate) repick: RepickBudget,
    /// Calls handed back by a busy server and picked again, since the
    /// balancer started.
    hand_backs: AtomicU64,
    /// The balancer's own metric handles.
    pub(crate) metrics: BalancerMetrics,
    /// The origin of every endpoint's pick view (see
    /// [`PickView`](orca_lb_core::PickView)), so that a pick works out its
    /// time since it once, not once per endpoint. An hour before the
    /// balancer was built (when the clock goes back that far): every
    /// instant the balancer is given comes after it, even from a paused
    /// test clock that runs behind the real one.
    pub(crate) origin: Instant,
    /// The score settings as every pick scores the endpoints' pick views
    /// with them, worked out once.
    pub(crate) pick_settings: PickSettings,
    /// How keyed calls find their key, with affinity on.
    pub(crate) affinity: Option<Affinity>,
    /// The mean [`Endpoint::affinity_load`] of the eligible endpoints, as of
    /// the last maintenance pass (0 with affinity off).
    affinity_mean: AtomicF64,
}

/// Session affinity's settings, prepared for picks.
#[derive(Debug)]
pub(crate) struct Affinity {
    /// The metadata entry keys come from, if any.
    pub(crate) header: Option<http::HeaderName>,
    pub(crate) epsilon: f64,
}

impl Affinity {
    fn new(config: &AffinityConfig) -> Self {
        let header = match &config.key {
            // Validated with the config.
            AffinityKey::Metadata(name) => http::HeaderName::from_bytes(name.as_bytes()).ok(),
            _ => None,
        };
        Self {
            header,
            epsilon: config.epsilon,
        }
    }

    /// The ring hash of `request`'s affinity key: its [`CallKey`]
    /// extension, else its metadata entry; `None` for a call without a key.
    /// Allocates nothing.
    pub(crate) fn key_hash<B>(&self, request: &http::Request<B>) -> Option<u64> {
        if let Some(key) = request.extensions().get::<CallKey>() {
            return Some(key_hash(key.as_bytes()));
        }
        let value = request.headers().get(self.header.as_ref()?)?;
        Some(key_hash(value.as_bytes()))
    }
}

/// See [`Shared::origin`].
fn pick_origin(now: Instant) -> Instant {
    now.checked_sub(std::time::Duration::from_secs(3_600))
        .unwrap_or(now)
}

impl Shared {
    pub(crate) fn new(config: BalancerConfig, seed: u64) -> Self {
        crate::metrics::describe();
        let unknown = FleetView::unknown(config.score.default_service_time);
        let metrics = BalancerMetrics::new(&config.target, config.locality.is_some());
        let repick = RepickBudget::new(config.transparent_retry, &config.target);
        let set = EndpointSet::new(
            config.target.clone(),
            config.ejection,
            config.locality.as_ref().map(|l| l.local_zone.clone()),
            config.affinity.as_ref().map(|a| a.virtual_nodes),
        );
        let affinity = config.affinity.as_ref().map(Affinity::new);
        let zone_preference = config
            .locality
            .as_ref()
            .map(|l| Mutex::new(ZonePreference::new(l)));
        Self {
            pick_settings: PickSettings::new(&config.score),
            spill: AtomicF64::new(0.0),
            zone_preference,
            repick,
            hand_backs: AtomicU64::new(0),
            metrics,
            set,
            config,
            fleet_service_time: AtomicF64::new(unknown.service_time),
            fleet_backlog: AtomicF64::new(unknown.backlog),
            fleet_streams: AtomicF64::new(unknown.streams),
            seed: AtomicU64::new(seed),
            dropped: tokio::sync::watch::Sender::new(()),
            samples: Mutex::new(FleetSamples::new()),
            origin: pick_origin(tokio::time::Instant::now().into_std()),
            affinity,
            affinity_mean: AtomicF64::new(0.0),
        }
    }

    /// A call was handed back and picked again.
    pub(crate) fn record_hand_back(&self) {
        // Relaxed: a counter read on its own.
        self.hand_backs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.hand_backs.increment(1);
    }

    /// Calls handed back and picked again so far.
    pub(crate) fn hand_backs(&self) -> u64 {
        self.hand_backs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A fresh RNG seed for a new clone (splitmix64 over a counter).
    pub(crate) fn next_seed(&self) -> u64 {
        // Relaxed: only the counter's own sequence matters (each clone gets
        // a distinct value); it guards no other memory.
        splitmix64(self.seed.fetch_add(GOLDEN_GAMMA, Relaxed))
    }

    /// The fleet's median service time, as of the last maintenance pass.
    pub(crate) fn fleet_service_time(&self) -> f64 {
        self.fleet_service_time.load()
    }

    /// The fleet's medians, as of the last maintenance pass.
    pub(crate) fn fleet(&self) -> FleetView {
        FleetView {
            service_time: self.fleet_service_time.load(),
            backlog: self.fleet_backlog.load(),
            streams: self.fleet_streams.load(),
        }
    }

    /// The share of picks sent outside the local zone now.
    pub(crate) fn spill(&self) -> f64 {
        self.spill.load()
    }

    /// The mean load of the eligible endpoints as session affinity weighs
    /// it, as of the last maintenance pass.
    pub(crate) fn affinity_mean(&self) -> f64 {
        self.affinity_mean.load()
    }

    /// Resolves (with an error) once the balancer is dropped; never before.
    pub(crate) fn dropped(&self) -> tokio::sync::watch::Receiver<()> {
        self.dropped.subscribe()
    }

    /// One maintenance pass: breaker deadlines, fleet medians, gauges and
    /// pick windows.
    pub(crate) fn maintain(self: &Arc<Self>, now: Instant) {
        self.set.let_go_of_idle();
        let (list, _) = self.set.list();
        let fleet = self.fleet();
        let mut samples = self.samples.lock();
        samples.clear();
        for ep in list.iter() {
            match ep.on_tick(now) {
                Tick::Nothing => {}
                Tick::Changed(change) => self.set.record(ep, Some(change)),
                Tick::ConnectProbe => {
                    tokio::spawn(connect_probe(ep.clone(), self.clone()));
                }
            }
            ep.maintain(&mut samples, &fleet, &self.config, now);
        }
        let before = fleet;
        let fleet = samples.view(fleet);
        self.fleet_service_time.store(fleet.service_time);
        self.fleet_backlog.store(fleet.backlog);
        self.fleet_streams.store(fleet.streams);
        drop(samples);
        if (fleet.service_time, fleet.backlog) != (before.service_time, before.backlog) {
            // Standing costs are worked out with the medians (the streams'
            // is a stream pick's, scored afresh each time).
            for ep in list.iter() {
                ep.invalidate_standing();
            }
        }
        if self.affinity.is_some() {
            let (sum, n) = list
                .iter()
                .filter_map(|ep| ep.affinity_load(fleet.service_time, now))
                .fold((0.0, 0u32), |(s, n), l| (s + l, n + 1));
            self.affinity_mean
                .store(if n > 0 { sum / f64::from(n) } else { 0.0 });
        }
        if let (Some(pref), Some(locality)) = (&self.zone_preference, &self.config.locality) {
            let stale_after = self.config.score.stale_after;
            let side = |local: bool| {
                list.iter()
                    .filter(move |ep| (ep.zone() == Some(&locality.local_zone)) == local)
                    .filter_map(move |ep| ep.zone_load(stale_after, now))
            };
            let spill = pref
                .lock()
                .update(zone_load(side(true)), zone_load(side(false)), now);
            self.spill.store(spill);
            if let Some(gauge) = &self.metrics.zone_spill {
                gauge.set(spill);
            }
        }
    }
}

/// Probes an endpoint ejected for refusing connections with a bare TCP
/// connect, and records what its breaker made of it.
async fn connect_probe(ep: Arc<Endpoint>, shared: Arc<Shared>) {
    let connected = can_connect(ep.uri(), shared.config.connect_timeout).await;
    tracing::debug!(endpoint = %ep.key(), connected, "connect probe");
    let now = tokio::time::Instant::now().into_std();
    let change = ep.on_connect_probe(connected, now);
    shared.set.record(&ep, change);
}
