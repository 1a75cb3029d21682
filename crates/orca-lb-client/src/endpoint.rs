//! One backend: its connection, what is known of its load, its breaker.
//!
//! An endpoint knows nothing of the set it belongs to: its event methods
//! take what they need from the balancer as arguments (whether one more
//! ejection is allowed, the score settings) and return the breaker change
//! they caused, which the [`EndpointSet`](crate::endpoint_set::EndpointSet)
//! counts and logs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::Uri;
use orca_lb_core::{
    Admission, BreakerState, CandidateView, EndpointLoad, EndpointPolicy, FleetSamples, FleetView,
    LoadReport, LocalLoad, OpenReason, Outcome, PickContext, PickTime, Score, ScoreConfig,
    StandingCost, Transition, Zone, affinity_load,
};
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::invalid_report_log::InvalidReportLog;
use crate::local_calls::{CallMark, LocalCalls};
use crate::metrics::EndpointMetrics;
use crate::seq_view::SeqView;
use crate::snapshot::{EndpointSnapshot, WINDOW};
use crate::standing_slot::StandingSlot;
use crate::{BalancerConfig, HealthState};

/// A breaker transition an event caused, for the set to count and log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerChange {
    /// The transition.
    pub(crate) transition: Transition,
    /// How many times the endpoint has been ejected, this one included.
    pub(crate) ejections: u32,
}

/// What a maintenance tick found due on an endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tick {
    /// Nothing: no breaker deadline has passed.
    Nothing,
    /// The breaker's deadline passed and it changed state.
    Changed(BreakerChange),
    /// The ejection of an endpoint that refused connections is over: the
    /// caller runs a bare TCP connect and reports it with
    /// [`Endpoint::on_connect_probe`].
    ConnectProbe,
}

/// The mutable heart of an endpoint, behind its own lock (never a global one).
#[derive(Debug)]
struct EndpointCore {
    policy: EndpointPolicy,
    /// (time, picks, failures) once per maintenance tick, for the
    /// last-10-seconds counts.
    history: VecDeque<(Instant, u64, u64)>,
}

/// What snapshots, gauges and admissions read of the core, copied out after
/// every update so that they do not take the core's lock (picks read the
/// [`Endpoint::pick_view`]).
#[derive(Debug)]
struct Published {
    /// The view itself, for snapshots and gauges.
    view: RwLock<CandidateView>,
    /// The breaker's state ([`state_code`]), for the admission's lock-free
    /// fast path and the gauges.
    breaker_state: AtomicU8,
}

/// Monotonic totals, read by snapshots and the re-pick budget.
#[derive(Debug, Default)]
struct Totals {
    picks: AtomicU64,
    failures: AtomicU64,
    invalid_reports: AtomicU64,
    /// Out-of-band reports dropped for coming sooner than `oob_min_spacing`.
    oob_reports_dropped: AtomicU64,
    /// Calls sent here by their affinity key.
    keyed: AtomicU64,
    /// Keyed calls whose first choice was here and that went elsewhere
    /// because of the load bound.
    passed_on: AtomicU64,
}

/// A backend the balancer can send calls to.
///
/// What a unary pick reads of it comes first, in this order, and fits in the
/// first two cache lines (`repr(C)`, aligned to a line): its standing cost
/// (see [`StandingSlot`]), the draining and health flags, and this client's
/// unary calls (their start times' origin and the stream count come
/// after: a unary pick reads the origin only with calls in flight). A pick that draws it then waits for one pair of
/// lines, not four lines strewn over the struct. The pick view comes next:
/// a pick reads it only to work out a standing cost again.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct Endpoint {
    /// The standing cost of a unary call here, worked out from the pick
    /// view by the picks themselves, now and then.
    standing: StandingSlot,
    /// Set once discovery removed it: no new call is sent here.
    draining: AtomicBool,
    /// Its [`HealthState::code`], or 0 with health checking off.
    health: AtomicU8,
    calls: LocalCalls,
    /// The view prepared for picks, read without a lock.
    pick_view: SeqView,
    key: String,
    uri: Uri,
    /// The zone discovery placed it in, if any.
    zone: Option<Zone>,
    channel: Channel,
    core: Mutex<EndpointCore>,
    published: Published,
    /// The score settings its pick view is prepared with (the balancer's).
    score: ScoreConfig,
    totals: Totals,
    /// Set while a connect probe runs, so that ticks start no second one.
    connect_probe: AtomicBool,
    invalid_report_log: InvalidReportLog,
    metrics: EndpointMetrics,
    oob_task: Mutex<Option<JoinHandle<()>>>,
    health_task: Mutex<Option<JoinHandle<()>>>,
}

fn state_code(s: BreakerState) -> u8 {
    match s {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

// Ordering: every atomic of an endpoint but its pick view (a sequence lock,
// see `SeqView`) is `Relaxed`. Each is a counter or
// a flag read on its own: none publishes other memory (the pick view is in
// its sequence lock, the estimate behind its own `RwLock`, the policy behind
// the core's `Mutex`), and a pick
// or snapshot that sees a value a moment late decides as it would have a
// moment earlier. Where a decision must be exact (admitting a probe), the
// core's lock decides.
impl Endpoint {
    pub(crate) fn new(
        key: String,
        uri: Uri,
        zone: Option<Zone>,
        channel: Channel,
        config: &BalancerConfig,
        origin: Instant,
        now: Instant,
    ) -> Self {
        let policy = EndpointPolicy::new(&config.score, config.breaker.clone(), now);
        let view = policy.view();
        let pick_view = SeqView::new(&view.prepare(&config.score, origin));
        let metrics = EndpointMetrics::new(
            &config.target,
            &key,
            config.health_check.is_some(),
            config.affinity.is_some(),
        );
        Self {
            standing: StandingSlot::new(),
            draining: AtomicBool::new(false),
            health: AtomicU8::new(if config.health_check.is_some() {
                HealthState::Unknown.code()
            } else {
                0
            }),
            calls: LocalCalls::new(now),
            pick_view,
            key,
            uri,
            zone,
            channel,
            core: Mutex::new(EndpointCore {
                policy,
                history: VecDeque::new(),
            }),
            published: Published {
                view: RwLock::new(view),
                breaker_state: AtomicU8::new(state_code(BreakerState::Closed)),
            },
            score: config.score.clone(),
            totals: Totals::default(),
            connect_probe: AtomicBool::new(false),
            invalid_report_log: InvalidReportLog::default(),
            metrics,
            oob_task: Mutex::new(None),
            health_task: Mutex::new(None),
        }
    }

    /// Its key in the endpoint set.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Its address.
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The zone discovery placed it in, if any.
    pub(crate) fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// Its load at `now` as its zone's load counts it (see
    /// [`EndpointLoad`]), if picks may choose it now; `None` if they may not.
    pub(crate) fn zone_load(&self, stale_after: Duration, now: Instant) -> Option<f64> {
        if self.is_draining() || !self.is_healthy() || !self.published.view.read().eligible {
            return None;
        }
        Some(EndpointLoad::of(self.core.lock().policy.state(), stale_after, now).value())
    }

    /// Its connection.
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Whether this client has no call or stream here.
    pub(crate) fn is_idle(&self) -> bool {
        self.calls.is_idle()
    }

    /// Calls sent here since it was added.
    pub(crate) fn picks_total(&self) -> u64 {
        self.totals.picks.load(Relaxed)
    }

    /// Whether discovery removed it.
    pub(crate) fn is_draining(&self) -> bool {
        // Relaxed: a pick that sees the removal a moment late sends one call
        // that a pick a moment earlier would have; the call still ends.
        self.draining.load(Relaxed)
    }

    /// Stops new calls here, its out-of-band stream and its health stream:
    /// discovery removed it.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Relaxed);
        for slot in [&self.oob_task, &self.health_task] {
            if let Some(task) = slot.lock().take() {
                task.abort();
            }
        }
    }

    /// Keeps the task of its out-of-band stream, to end with it.
    pub(crate) fn set_oob_task(&self, task: JoinHandle<()>) {
        *self.oob_task.lock() = Some(task);
    }

    /// Keeps the task of its health stream, to end with it.
    pub(crate) fn set_health_task(&self, task: JoinHandle<()>) {
        *self.health_task.lock() = Some(task);
    }

    /// Its health as last heard, `None` with health checking off.
    pub(crate) fn health(&self) -> Option<HealthState> {
        // Relaxed: see `is_healthy`.
        HealthState::from_code(self.health.load(Relaxed))
    }

    /// Whether health checking lets picks choose it: off, or serving (or
    /// without a health service).
    pub(crate) fn is_healthy(&self) -> bool {
        // Relaxed: a flag read on its own; a pick that sees a change a
        // moment late sends one call that a pick a moment earlier would
        // have (or would not have); the call still ends.
        let code = self.health.load(Relaxed);
        code == 0 || HealthState::from_code(code).is_some_and(HealthState::is_pickable)
    }

    /// Whether its health stream has not answered yet (or is being
    /// re-established).
    pub(crate) fn is_health_unknown(&self) -> bool {
        self.health.load(Relaxed) == HealthState::Unknown.code()
    }

    /// Sets its health; returns the state before, if it changed. Only its
    /// health task calls this, so changes arrive in order.
    pub(crate) fn set_health(&self, state: HealthState) -> Option<HealthState> {
        let before = HealthState::from_code(self.health.swap(state.code(), Relaxed))?;
        if before == state {
            return None;
        }
        self.metrics.on_health_change(state);
        Some(before)
    }

    /// This endpoint's score for one pick worked out afresh from its pick
    /// view (see [`orca_lb_core::PickView::score_at`]), or `None` to pass
    /// it over; `time` is `pick.now` as the balancer's pick views count it.
    /// Stream picks score so; unary picks read the standing cost instead
    /// ([`unary_candidate`](Self::unary_candidate)). Takes no lock: the
    /// view is read from its [`SeqView`].
    #[inline]
    pub(crate) fn candidate(&self, time: &PickTime, pick: &PickContext<'_>) -> Option<Score> {
        if self.is_draining() || !self.is_healthy() {
            return None;
        }
        let view = self.pick_view.load(pick.stream);
        view.score_at(time, self.calls.load(pick.now), pick)
    }

    /// This endpoint's score for a unary pick at `seconds` (`pick.now` as
    /// the balancer's pick views count it; see
    /// [`StandingCost::unary_score`]), or `None` to pass it over. Takes no
    /// lock: it reads its standing cost, and works one out again (from the
    /// pick view, the pick's time `time()` and the fleet medians `fleet()`)
    /// only when the last one no longer covers the pick's time or what it
    /// was worked out from changed.
    #[inline]
    pub(crate) fn unary_candidate(
        &self,
        seconds: f64,
        pick: &PickContext<'_>,
        time: impl FnOnce() -> PickTime,
        fleet: impl FnOnce() -> FleetView,
    ) -> Option<Score> {
        if self.is_draining() || !self.is_healthy() {
            return None;
        }
        let local = self.calls.load_unary(pick.now);
        match self
            .standing
            .read_with(seconds, |cost| cost.unary_score(seconds, local, pick))
        {
            Ok(score) => score,
            Err(seq) => self.score_afresh(seq, seconds, local, pick, time, fleet),
        }
    }

    /// [`unary_candidate`](Self::unary_candidate)'s score when no standing
    /// cost covers the pick: worked out again and published first. Kept out
    /// of line, so that the common path is small enough to inline into the
    /// pick's loop over its candidates. Under traffic, about one candidate
    /// in a pick comes here: each response's news makes its endpoint's
    /// standing cost unusable.
    #[inline(never)]
    fn score_afresh(
        &self,
        seq: u64,
        seconds: f64,
        local: LocalLoad,
        pick: &PickContext<'_>,
        time: impl FnOnce() -> PickTime,
        fleet: impl FnOnce() -> FleetView,
    ) -> Option<Score> {
        self.work_out_standing(seq, pick, &time(), fleet())
            .unary_score(seconds, local, pick)
    }

    /// Starts reading what [`unary_candidate`](Self::unary_candidate) reads
    /// (its standing cost, flags and unary calls: its first two cache
    /// lines) without waiting for it, so that a pick's candidates are
    /// fetched together (see
    /// [`P2c::pick_best_of_prefetching`](orca_lb_core::P2c::pick_best_of_prefetching)).
    #[inline]
    pub(crate) fn prefetch(&self) {
        self.standing.prefetch();
        self.calls.prefetch_unary();
    }

    /// Works out its standing cost at `time` with the fleet medians `fleet`
    /// (read after the slot's `seq`) and publishes it (see
    /// [`StandingSlot::publish`]).
    #[inline(never)]
    fn work_out_standing(
        &self,
        seq: u64,
        pick: &PickContext<'_>,
        time: &PickTime,
        fleet: FleetView,
    ) -> StandingCost {
        let view = self.pick_view.load(false);
        let cost = StandingCost::new(&view, time, &PickContext { fleet, ..*pick });
        self.standing.publish(seq, &cost);
        cost
    }

    /// Makes its standing cost unusable: the fleet medians it was worked
    /// out with changed.
    pub(crate) fn invalidate_standing(&self) {
        self.standing.invalidate();
    }

    /// Its load as session affinity weighs it (see
    /// [`affinity_load`](orca_lb_core::affinity_load)): this client's calls
    /// and streams open here plus the other clients' calls it reports (its
    /// backlog), each counted in `fleet_service_time`s (the fleet's median);
    /// `None` if picks may not choose it now (draining, unhealthy, or its
    /// breaker not admitting calls). Takes no lock.
    pub(crate) fn affinity_load(&self, fleet_service_time: f64, now: Instant) -> Option<f64> {
        if self.is_draining() || !self.is_healthy() {
            return None;
        }
        let view = self.pick_view.load(false);
        if !view.eligible() {
            return None;
        }
        let local = self.calls.load(now);
        let calls = view.backlog() + f64::from(local.in_flight) + f64::from(local.streams);
        Some(affinity_load(
            calls,
            view.service_time(),
            fleet_service_time,
        ))
    }

    /// Counts a call sent here by its affinity key.
    pub(crate) fn on_keyed_pick(&self) {
        self.totals.keyed.fetch_add(1, Relaxed);
    }

    /// Counts a keyed call whose first choice was here and that went
    /// elsewhere because of the load bound.
    pub(crate) fn on_passed_on(&self) {
        self.totals.passed_on.fetch_add(1, Relaxed);
        if let Some(c) = &self.metrics.passed_on {
            c.increment(1);
        }
    }

    /// The cost of a unary call here now.
    fn unary_cost(&self, fleet: &FleetView, score: &ScoreConfig, now: Instant) -> Score {
        let estimate = self.published.view.read().estimate;
        estimate.cost(self.calls.load(now), fleet, score, now)
    }

    /// Reserves a call here (see [`EndpointPolicy::admit`]).
    pub(crate) fn admit(&self, panic: bool) -> Admission {
        // Relaxed: a Closed read a moment late admits an ordinary call as a
        // pick a moment earlier would have; anything else goes to the lock,
        // which decides.
        if self.published.breaker_state.load(Relaxed) == state_code(BreakerState::Closed) {
            return Admission::Call;
        }
        let mut core = self.core.lock();
        let admitted = core.policy.admit(panic);
        self.publish(&core);
        admitted
    }

    /// Counts a call (a stream if `stream`) picked at `now` in this
    /// client's load here, until [`end_call`](Self::end_call).
    pub(crate) fn start_call(&self, stream: bool, now: Instant) -> CallMark {
        self.totals.picks.fetch_add(1, Relaxed);
        self.metrics.picks.increment(1);
        self.calls.start(stream, now)
    }

    /// Takes a call back out of this client's load here.
    pub(crate) fn end_call(&self, mark: CallMark) {
        self.calls.end(mark);
    }

    /// Publishes what picks read, from the core (lock held by the caller).
    fn publish(&self, core: &EndpointCore) {
        let view = core.policy.view();
        let origin = self.pick_view.origin();
        self.pick_view.store(&view.prepare(&self.score, origin));
        self.standing.invalidate();
        *self.published.view.write() = view;
        let state = core.policy.breaker().state();
        let code = state_code(state);
        // Relaxed: see `is_out`. Only written here, under the core's lock:
        // a load and a store on a change, and the gauges set in the order
        // of the changes.
        if self.published.breaker_state.load(Relaxed) != code {
            self.published.breaker_state.store(code, Relaxed);
            self.metrics.breaker_state.set(state);
        }
    }

    /// Counts a report that could not be used, and logs it if it is the
    /// first (see [`InvalidReportLog`]).
    pub(crate) fn on_invalid_report(&self, target: &str, error: &dyn std::fmt::Display) {
        self.totals.invalid_reports.fetch_add(1, Relaxed);
        self.metrics.invalid_reports.increment(1);
        self.invalid_report_log.on_invalid(target, &self.key, error);
    }

    /// Counts an out-of-band report dropped for coming too soon after the
    /// last one.
    pub(crate) fn on_oob_report_dropped(&self) {
        self.totals.oob_reports_dropped.fetch_add(1, Relaxed);
        self.metrics.oob_reports_dropped.increment(1);
    }

    /// Takes in a report (trailer or out of band).
    pub(crate) fn on_report(
        &self,
        report: &LoadReport,
        may_eject: bool,
        now: Instant,
    ) -> Option<BreakerChange> {
        self.metrics.reports.increment(1);
        let local = self.calls.load(now);
        let mut core = self.core.lock();
        let t = core.policy.on_report(report, local, may_eject, now);
        self.after(&core, t)
    }

    /// Takes in a call's outcome. `probe` says whether the call held a
    /// HalfOpen probe.
    pub(crate) fn on_outcome(
        &self,
        outcome: Outcome,
        latency: Option<Duration>,
        probe: bool,
        may_eject: bool,
        now: Instant,
    ) -> Option<BreakerChange> {
        if matches!(outcome, Outcome::Failure | Outcome::ConnectFailure) {
            self.totals.failures.fetch_add(1, Relaxed);
            self.metrics.failures.increment(1);
        }
        // Health checking has taken it out of service (it is going away, or
        // its health cannot be heard): what its last calls and streams do
        // on the way out (cut at a drain's deadline) says nothing of how it
        // will serve once SERVING again, so it moves neither its breaker nor
        // its score. A probe still returns its slot.
        if !probe && !self.is_healthy() {
            return None;
        }
        let mut core = self.core.lock();
        let t = core
            .policy
            .on_outcome(outcome, latency, probe, may_eject, now);
        self.after(&core, t)
    }

    /// Drives the breaker's deadline. An endpoint ejected because it refused
    /// connections is first probed with a bare TCP connect (by the caller,
    /// on its own task: see [`Tick::ConnectProbe`]), so that no caller's
    /// request is spent finding out it is still down.
    pub(crate) fn on_tick(&self, now: Instant) -> Tick {
        let mut core = self.core.lock();
        if core
            .policy
            .breaker()
            .next_transition()
            .is_none_or(|at| at > now)
        {
            return Tick::Nothing;
        }
        let refused = matches!(
            core.policy.breaker().last_transition(),
            Some((
                _,
                Transition {
                    reason: Some(OpenReason::ConnectFailed),
                    ..
                }
            ))
        );
        if refused {
            // Relaxed: the flag only keeps a second probe from starting; the
            // breaker it probes for is behind the core's lock.
            return if self.connect_probe.swap(true, Relaxed) {
                Tick::Nothing
            } else {
                Tick::ConnectProbe
            };
        }
        let t = core.policy.on_deadline(now);
        match self.after(&core, t) {
            Some(change) => Tick::Changed(change),
            None => Tick::Nothing,
        }
    }

    /// The outcome of a connect probe: HalfOpen if it connected (calls then
    /// probe further), else ejected again for longer.
    pub(crate) fn on_connect_probe(&self, connected: bool, now: Instant) -> Option<BreakerChange> {
        let mut core = self.core.lock();
        let t = core.policy.on_connect_probe(connected, now);
        let change = self.after(&core, t);
        self.connect_probe.store(false, Relaxed);
        change
    }

    /// Publishes the core after an event, and returns the transition it
    /// caused, if any.
    fn after(&self, core: &EndpointCore, t: Option<Transition>) -> Option<BreakerChange> {
        self.publish(core);
        let transition = t?;
        if transition.to == BreakerState::Open {
            self.metrics.ejections.increment(1);
        }
        Some(BreakerChange {
            transition,
            ejections: core.policy.breaker().ejections(),
        })
    }

    /// The maintenance pass's part for this endpoint: adds its state to the
    /// fleet `samples`, records its totals for the 10 s windows, and sets
    /// its gauges (every gauge of a member is set on every pass, so an
    /// exporter's idle timeout drops only the series of endpoints that left:
    /// see `docs/observability.md`).
    pub(crate) fn maintain(
        &self,
        samples: &mut FleetSamples,
        fleet: &FleetView,
        config: &BalancerConfig,
        now: Instant,
    ) {
        let mut core = self.core.lock();
        samples.add(core.policy.state());
        let picks = self.totals.picks.load(Relaxed);
        let failures = self.totals.failures.load(Relaxed);
        core.history.push_back((now, picks, failures));
        while core
            .history
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            core.history.pop_front();
        }
        // Under the core's lock, as in `publish`: a pass cannot overwrite
        // a newer state with the one it read before a transition.
        self.metrics
            .breaker_state
            .set(core.policy.breaker().state());
        drop(core);
        self.metrics
            .in_flight
            .set(f64::from(self.calls.in_flight()));
        self.metrics
            .score
            .set(self.unary_cost(fleet, &config.score, now).seconds());
        self.invalid_report_log.summarise(
            &config.target,
            &self.key,
            config.report_log_interval,
            now,
        );
    }

    /// What it knows and decided, as of `now`.
    pub(crate) fn snapshot(
        &self,
        fleet: &FleetView,
        score: &ScoreConfig,
        now: Instant,
    ) -> EndpointSnapshot {
        let core = self.core.lock();
        let local = self.calls.load(now);
        let picks = self.totals.picks.load(Relaxed);
        let failures = self.totals.failures.load(Relaxed);
        let state = core.policy.state();
        let breaker = core.policy.breaker();
        let estimate = state.estimate();
        // An endpoint younger than the window has all its calls in it, those
        // before the first maintenance tick included.
        let young = now.saturating_duration_since(estimate.created) <= WINDOW;
        let (old_picks, old_failures) = match core.history.front() {
            Some(&(_, p, f)) if !young => (p, f),
            _ => (0, 0),
        };
        let draining = self.is_draining();
        EndpointSnapshot {
            key: self.key.clone(),
            uri: self.uri.to_string(),
            zone: self.zone.clone(),
            breaker: breaker.state(),
            last_transition: breaker
                .last_transition()
                .map(|(at, t)| (now.saturating_duration_since(at), t.to, t.reason)),
            ejections: breaker.ejections(),
            eligible: self.published.view.read().eligible && !draining && self.is_healthy(),
            health: self.health(),
            cost: estimate.terms(local, fleet, score, now),
            utilization: state.utilization(),
            cpu: state.cpu(),
            queue_depth: state.queue_depth(),
            report_age: state.report_age(now),
            reports: state.reports(),
            invalid_reports: self.totals.invalid_reports.load(Relaxed),
            oob_reports_dropped: self.totals.oob_reports_dropped.load(Relaxed),
            in_flight: local.in_flight,
            streams: local.streams,
            recent_picks: picks - old_picks,
            recent_failures: failures - old_failures,
            draining,
            responses: state.responses(),
            service_time: estimate.service_time,
            backlog: estimate.backlog,
            others_streams: estimate.streams,
            capacity: estimate.capacity,
            latency: estimate.latency,
            response_age: estimate
                .latency_at
                .map(|t| now.saturating_duration_since(t)),
            error_rate: estimate.errors.value_at(now),
            ring_share: 0.0,
            keyed_calls: self.totals.keyed.load(Relaxed),
            passed_on: self.totals.passed_on.load(Relaxed),
        }
    }

    /// Whether its breaker, as last published, is not Closed.
    pub(crate) fn is_out(&self) -> bool {
        // Relaxed: the set reads this under its lock, after the event that
        // stored it was returned on the same thread; the lock orders the
        // reads, so the last one sees the last state stored (see
        // `EndpointSet::record`).
        self.published.breaker_state.load(Relaxed) != state_code(BreakerState::Closed)
    }

    /// Its breaker's state now.
    #[cfg(test)]
    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.core.lock().policy.breaker().state()
    }
}

/// Whether a bare TCP connection to `uri` succeeds within `timeout`: the
/// connect probe of an endpoint ejected for refusing connections.
pub(crate) async fn can_connect(uri: &Uri, timeout: Duration) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for slot in [&mut self.oob_task, &mut self.health_task] {
            if let Some(task) = slot.get_mut().take() {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of};

    use super::*;

    #[test]
    fn what_a_unary_pick_reads_fits_in_the_first_two_cache_lines() {
        assert_eq!(align_of::<Endpoint>(), 64);
        // The standing cost, the flags and the unary calls word.
        let last = [
            offset_of!(Endpoint, standing) + StandingSlot::size(),
            offset_of!(Endpoint, draining) + 1,
            offset_of!(Endpoint, health) + 1,
            offset_of!(Endpoint, calls) + LocalCalls::unary_end(),
        ]
        .into_iter()
        .max();
        assert!(last.is_some_and(|end| end <= 128), "{last:?}");
    }
}
