//! orca-lb, composed from the core exactly as `orca-lb-client` composes it.

use orca_lb_core::HashRing;
use orca_lb_core::{
    Admission, BreakerState, EndpointLoad, EndpointPolicy, FleetSamples, FleetView, LoadReport,
    LocalLoad, Outcome, P2c, PickContext, PickSettings, PickTime, PickView, Score, StandingCost,
    Transition, ZoneIndex, ZonePreference, ZoneSide, affinity_load, capacity, zone_load,
};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Client, ClientZones, Done, Pick};
use crate::clock::{Clock, Nanos};
use crate::scenario::OrcaConfig;

/// One client's orca-lb balancer.
///
/// The same pieces as the production client, put together the same way;
/// each method names the code it follows:
///
/// - per endpoint, an [`EndpointPolicy`] (signals and breaker) and this
///   client's [`LocalLoad`] and the sum of its unary calls' start times
///   (`endpoint.rs`);
/// - a [`P2c`] with the configured tie tolerance (best of `choices` for
///   unary picks), the fleet medians, the
///   count of endpoints out and the panic flag (`shared.rs`);
/// - `pick` as `Balancer::pick` (`balancer.rs`), `done` as
///   `CallGuard::finish` (`call.rs`), `tick` as `Shared::maintain`.
#[derive(Debug)]
pub(crate) struct OrcaLb {
    config: OrcaConfig,
    picker: P2c,
    rng: SmallRng,
    clock: Clock,
    endpoints: Vec<EndpointPolicy>,
    local: Vec<LocalLoad>,
    /// Per endpoint, the sum of the start times of this client's unary
    /// calls in flight there, for their mean age (`Endpoint::in_flight_started`).
    started: Vec<u128>,
    fleet: FleetView,
    /// The origin of the pick views' times, the clock's zero
    /// (`Shared::origin`).
    origin: Instant,
    /// The score settings as pick views are scored with them
    /// (`Shared::pick_settings`).
    settings: PickSettings,
    /// Per endpoint, the standing cost picks last worked out, with the
    /// pick view and the fleet medians it was worked out from
    /// (`Endpoint::standing`: a client's slot is invalidated when either
    /// changes).
    standing: Vec<Option<(PickView, FleetView, StandingCost)>>,
    /// Endpoints whose breaker is not Closed.
    ejected: usize,
    panic: bool,

    /// The maintenance pass's buffers.
    samples: FleetSamples,
    /// Clients in the fleet, as a report would carry it (for
    /// [`HerdingExperiment`](crate::HerdingExperiment)).
    clients: u32,
    /// Per endpoint, this client's unary picks since its last report.
    since_report: Vec<u32>,
    /// With locality on and zones in the scenario: the zones, the split
    /// of the endpoints by zone, and the spill (`Shared::spill`).
    locality: Option<Locality>,
    /// With session affinity: the ring, as `EndpointList` carries it.
    affinity: Option<Affinity>,
}

/// Session affinity's state, as `Shared` and `EndpointList` keep it.
#[derive(Debug)]
struct Affinity {
    ring: HashRing,
    epsilon: f64,
    /// The mean load of the eligible endpoints, as of the last tick
    /// (`Shared::affinity_mean`).
    mean: f64,
}

/// A client's locality state, as `Shared` and `EndpointList` keep it.
#[derive(Debug)]
struct Locality {
    zones: ClientZones,
    /// The endpoints present, split around the client's zone.
    index: ZoneIndex,
    preference: ZonePreference,
    spill: f64,
}

impl Locality {
    /// `EndpointSet::publish_list`: the split of the first `len` endpoints.
    fn reindex(&mut self, len: usize) {
        let zones = &self.zones;
        self.index = ZoneIndex::new(&zones.local, zones.backends[..len].iter().map(Some));
    }
}

impl OrcaLb {
    pub(crate) fn new(
        len: usize,
        clients: u32,
        seed: u64,
        clock: Clock,
        config: &OrcaConfig,
        zones: Option<ClientZones>,
    ) -> Self {
        let start = clock.at(0);
        let locality = config.locality.zip(zones).map(|(settings, zones)| {
            let preference = ZonePreference::new(&settings.config(zones.local.clone()));
            let mut l = Locality {
                zones,
                index: ZoneIndex::default(),
                preference,
                spill: 0.0,
            };
            l.reindex(len);
            l
        });
        let endpoints = (0..len)
            .map(|_| EndpointPolicy::new(&config.score, config.breaker.clone(), start))
            .collect();
        Self {
            picker: P2c::with_tie_tolerance(config.score.tie_tolerance),
            rng: SmallRng::seed_from_u64(seed),
            clock,
            endpoints,
            local: vec![LocalLoad::default(); len],
            started: vec![0; len],
            fleet: FleetView::unknown(config.score.default_service_time),
            origin: start,
            settings: PickSettings::new(&config.score),
            standing: vec![None; len],
            ejected: 0,
            panic: false,
            samples: FleetSamples::new(),
            config: config.clone(),
            clients,
            since_report: vec![0; len],
            locality,
            affinity: None,
        }
    }

    /// Session affinity on, with bound `1 + epsilon`
    /// (`BalancerConfig::affinity`).
    pub(crate) fn with_affinity(mut self, epsilon: f64) -> Self {
        self.affinity = Some(Affinity {
            ring: super::ring_hash::ring(self.endpoints.len()),
            epsilon,
            mean: 0.0,
        });
        self
    }

    /// `Endpoint::affinity_load`: this client's calls and streams there
    /// plus the backlog it reports, in median service times
    /// ([`affinity_load`]), if eligible.
    fn affinity_load(&self, i: usize) -> Option<f64> {
        let view = self.endpoints[i].view();
        if !view.eligible {
            return None;
        }
        let local = self.local[i];
        let calls = view.estimate.backlog.unwrap_or(0.0)
            + f64::from(local.in_flight)
            + f64::from(local.streams);
        let service_time = view.estimate.service_time.or(view.estimate.latency);
        Some(affinity_load(calls, service_time, self.fleet.service_time))
    }

    /// `CallGuard::new`: counts the call picked at `at` on endpoint `i`.
    fn start(&mut self, i: usize, stream: bool, at: Nanos, probe: bool) -> Pick {
        if stream {
            self.local[i].streams += 1;
        } else {
            self.local[i].in_flight += 1;
            self.started[i] += u128::from(at);
            self.since_report[i] += 1;
        }
        Pick { backend: i, probe }
    }

    /// `Shared::may_eject`.
    fn may_eject(&self) -> bool {
        self.config
            .ejection
            .may_eject(self.ejected, self.endpoints.len())
    }

    /// `Shared::update_panic`.
    fn update_panic(&mut self) {
        let total = self.endpoints.len();
        let eligible = total.saturating_sub(self.ejected);
        self.panic = self.config.ejection.is_panic(eligible, total);
    }

    /// `Endpoint::after` and `Shared::on_transition`.
    fn after(&mut self, t: Option<Transition>) {
        let Some(t) = t else { return };
        let was_out = t.from != BreakerState::Closed;
        let is_out = t.to != BreakerState::Closed;
        match (was_out, is_out) {
            (false, true) => self.ejected += 1,
            (true, false) => self.ejected -= 1,
            _ => {}
        }
        self.update_panic();
    }

    /// `Balancer::draw`: one best-of-`choices` draw (the least of all for a stream)
    /// passing over `excluded`. When the
    /// warm-up draw leaves nothing (every endpoint is new, as at start-up),
    /// `warm_up` is reset to 0 and all endpoints count.
    fn draw(
        &mut self,
        stream: bool,
        warm_up: &mut f64,
        excluded: Option<usize>,
        now: Instant,
        subset: Option<&[u32]>,
    ) -> Option<usize> {
        let len = subset.map_or(self.endpoints.len(), <[u32]>::len);
        let at = |k: usize| subset.map_or(k, |s| s[k] as usize);
        let (endpoints, local, started) = (&self.endpoints, &self.local, &self.started);
        let (herding, since_report) = (self.config.herding, &self.since_report);
        let others = f64::from(self.clients.saturating_sub(1));
        let (fleet, score_config, panic, clock) =
            (&self.fleet, &self.config.score, self.panic, &self.clock);
        // The pick's time as the endpoints' views count it, once for all.
        let seconds = PickView::seconds_since(self.origin, now);
        let time = PickTime::new(&self.settings, seconds);
        let origin = self.origin;
        let standing = &mut self.standing;
        loop {
            let pick = PickContext {
                stream,
                warm_up: *warm_up,
                panic,
                fleet: *fleet,
                score: score_config,
                now,
            };
            let score = |k: usize| {
                let i = at(k);
                if Some(i) == excluded {
                    return None;
                }
                let n = u128::from(local[i].in_flight);
                let mut local = LocalLoad {
                    in_flight_since: (n > 0).then(|| clock.at((started[i] / n) as Nanos)),
                    ..local[i]
                };
                let view = endpoints[i].view().prepare(score_config, origin);
                if stream {
                    return view.score_at(&time, local, &pick);
                }
                // The experiments: the other clients' expected picks since
                // the report count as calls in flight; a cubic penalty on
                // the backlog over the slots.
                let extra = f64::from(since_report[i]) * herding.pick_compensation * others
                    + f64::from(local.in_flight) * herding.own_compensation * others;
                local.in_flight += extra.round() as u32;
                // `Endpoint::unary_candidate`: the standing cost, worked
                // out again when its view or the medians changed or its
                // span is over.
                let cost = match &standing[i] {
                    Some((v, f, c))
                        if *v == view
                            && (f.service_time, f.backlog)
                                == (fleet.service_time, fleet.backlog)
                            && c.covers(seconds) =>
                    {
                        *c
                    }
                    _ => {
                        let c = StandingCost::new(&view, &time, &pick);
                        standing[i] = Some((view, *fleet, c));
                        c
                    }
                };
                let score = cost.unary_score(seconds, local, &pick)?;
                if herding.cubic_penalty == 0.0 || score == Score::ZERO {
                    return Some(score);
                }
                let t = endpoints[i]
                    .view()
                    .estimate
                    .terms(local, fleet, score_config, now);
                let over = t.backlog / t.capacity;
                Some(Score::new(
                    score.seconds() + herding.cubic_penalty * t.service_time * over * over * over,
                ))
            };
            let chosen = if stream {
                self.picker.pick_least(&mut self.rng, len, score)
            } else {
                self.picker
                    .pick_best_of(&mut self.rng, len, score_config.choices, score)
            };
            if chosen.is_some() || *warm_up == 0.0 {
                return chosen.map(at);
            }
            *warm_up = 0.0;
        }
    }

    /// `Balancer::draw_zoned`: with locality on, first among the endpoints
    /// of the zone side drawn for this pick, then among all.
    fn draw_zoned(
        &mut self,
        stream: bool,
        warm_up: &mut f64,
        excluded: Option<usize>,
        now: Instant,
    ) -> Option<usize> {
        let Some(locality) = self.locality.take() else {
            return self.draw(stream, warm_up, excluded, now, None);
        };
        let side = ZoneSide::draw(&mut self.rng, locality.spill);
        let chosen = locality.index.pick_preferring(side, |subset| {
            self.draw(stream, warm_up, excluded, now, subset)
        });
        self.locality = Some(locality);
        chosen
    }

    /// `Endpoint::on_report`: taken in with this client's load there now.
    fn on_report(&mut self, i: usize, report: &LoadReport, now: Nanos) {
        self.since_report[i] = 0;
        let may_eject = self.may_eject();
        let t = self.endpoints[i].on_report(report, self.local[i], may_eject, self.clock.at(now));
        self.after(t);
    }

    /// `Balancer::pick`, passing over `excluded`.
    fn pick_avoiding(
        &mut self,
        stream: bool,
        mut excluded: Option<usize>,
        at: Nanos,
    ) -> Option<Pick> {
        let now = self.clock.at(at);
        let panic = self.panic;
        // Endpoints still warming up are considered with probability equal
        // to their warm-up share: one draw per pick.
        let mut warm_up: f64 = self.rng.random();
        // A HalfOpen endpoint whose probe budget is gone is excluded and
        // replaced.
        for _ in 0..2 {
            let i = self.draw_zoned(stream, &mut warm_up, excluded, now)?;
            match self.endpoints[i].admit(panic) {
                Admission::Refused => excluded = Some(i),
                admission => return Some(self.start(i, stream, at, admission.is_probe())),
            }
        }
        None
    }
}

impl Client for OrcaLb {
    /// `Balancer::pick` and `CallGuard::new`.
    fn pick(&mut self, stream: bool, at: Nanos) -> Option<Pick> {
        self.pick_avoiding(stream, None, at)
    }

    fn hand_backs(&self) -> u32 {
        self.config.hand_backs
    }

    /// `CallGuard::finish_handed_back` and `Balancer::repick`.
    fn repick_handed_back(
        &mut self,
        backend: usize,
        report: Option<&LoadReport>,
        picked: Nanos,
        now: Nanos,
    ) -> Option<Pick> {
        self.local[backend].in_flight -= 1;
        self.started[backend] -= u128::from(picked);
        if let Some(report) = report {
            self.on_report(backend, report, now);
        }
        // With nowhere else to go, the endpoint that handed it back.
        self.pick_avoiding(false, Some(backend), now)
            .or_else(|| self.pick_avoiding(false, None, now))
    }

    /// `Balancer::ring_pick`: a keyed call to the first endpoint on the
    /// ring from its key under the bound; otherwise, or refused, `pick`.
    fn pick_keyed(&mut self, stream: bool, key: Option<u32>, at: Nanos) -> Option<Pick> {
        let chosen = match (key, &self.affinity) {
            (Some(k), Some(a)) => {
                let mean = a.mean + 1.0 / self.endpoints.len().max(1) as f64;
                a.ring
                    .pick(super::ring_hash::hash(k), capacity(mean, a.epsilon), |i| {
                        self.affinity_load(i)
                    })
            }
            _ => None,
        };
        if let Some(p) = chosen {
            let admission = self.endpoints[p.index].admit(self.panic);
            if !matches!(admission, Admission::Refused) {
                return Some(self.start(p.index, stream, at, admission.is_probe()));
            }
        }
        self.pick(stream, at)
    }

    /// `CallGuard::finish`: release this call first (a report counts the
    /// client's other calls), then the report, then the outcome.
    fn done(&mut self, done: Done<'_>) {
        let i = done.backend;
        if done.stream {
            self.local[i].streams -= 1;
        } else {
            self.local[i].in_flight -= 1;
            let latency = done.latency.expect("a unary call ends with a latency");
            self.started[i] -= u128::from(done.now - latency);
        }
        if let Some(report) = done.report {
            self.on_report(i, report, done.now);
        }
        // Stream lifetimes say nothing about service time.
        let latency = if done.stream {
            None
        } else {
            done.latency.map(std::time::Duration::from_nanos)
        };
        let outcome = if done.failed {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let may_eject = self.may_eject();
        let t = self.endpoints[i].on_outcome(
            outcome,
            latency,
            done.probe,
            may_eject,
            self.clock.at(done.now),
        );
        self.after(t);
    }

    fn reads_reports(&self) -> bool {
        true
    }

    fn tick_interval(&self) -> Option<Nanos> {
        Some(self.config.maintenance_interval)
    }

    /// `Shared::maintain`: breaker deadlines, then the fleet medians.
    fn tick(&mut self, now: Nanos) {
        let at = self.clock.at(now);
        for i in 0..self.endpoints.len() {
            let t = self.endpoints[i].on_deadline(at);
            self.after(t);
        }
        self.samples.clear();
        for ep in &self.endpoints {
            self.samples.add(ep.state());
        }
        self.fleet = self.samples.view(self.fleet);
        self.update_panic();
        if self.affinity.is_some() {
            let (sum, n) = (0..self.endpoints.len())
                .filter_map(|i| self.affinity_load(i))
                .fold((0.0, 0u32), |(s, n), l| (s + l, n + 1));
            if let Some(a) = &mut self.affinity {
                a.mean = if n > 0 { sum / f64::from(n) } else { 0.0 };
            }
        }
        if let Some(l) = &mut self.locality {
            let (endpoints, stale_after) = (&self.endpoints, self.config.score.stale_after);
            let side = |side: ZoneSide| {
                l.index
                    .side(side)
                    .iter()
                    .map(|&i| &endpoints[i as usize])
                    .filter(|ep| ep.view().eligible)
                    .map(|ep| EndpointLoad::of(ep.state(), stale_after, at).value())
            };
            let (local, remote) = (
                zone_load(side(ZoneSide::Local)),
                zone_load(side(ZoneSide::Remote)),
            );
            l.spill = l.preference.update(local, remote, at);
        }
    }

    fn oob_period(&self) -> Option<Nanos> {
        self.config.oob_period
    }

    fn oob_report(&mut self, backend: usize, report: &LoadReport, now: Nanos) {
        self.on_report(backend, report, now);
    }

    /// Discovery adding endpoints (`EndpointSet::apply`): each starts new,
    /// at `now`, for slow start.
    fn grow(&mut self, len: usize, now: Nanos) {
        let at = self.clock.at(now);
        while self.endpoints.len() < len {
            self.endpoints.push(EndpointPolicy::new(
                &self.config.score,
                self.config.breaker.clone(),
                at,
            ));
            self.local.push(LocalLoad::default());
            self.started.push(0);
            self.since_report.push(0);
            self.standing.push(None);
        }
        if let Some(l) = &mut self.locality {
            l.reindex(len);
        }
        if let Some(a) = &mut self.affinity {
            a.ring = super::ring_hash::ring(len);
        }
        self.update_panic();
    }
}
