//! One backend: its connection, what is known of its load, its breaker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::Uri;
use orca_lb_core::{
    Admission, BreakerState, CandidateView, EndpointPolicy, LoadReport, LocalLoad, OpenReason,
    Outcome, Score, Transition,
};
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::invalid_report_log::InvalidReportLog;
use crate::metrics::EndpointMetrics;
use crate::shared::Shared;

/// The low bits of `Endpoint::in_flight_started` count calls (up to about a
/// million in flight), the high bits sum their start times.
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const SUM_MASK: u64 = u64::MAX >> COUNT_BITS;

/// What a unary call started at `now` adds to an endpoint's
/// `in_flight_started`: its start time (microseconds from `epoch`) above
/// [`COUNT_BITS`], one below. Additions and subtractions wrap, so the word
/// stays exact modulo 2^64 however long the endpoint lives.
fn in_flight_mark(epoch: Instant, now: Instant) -> u64 {
    let us = now.saturating_duration_since(epoch).as_micros() as u64;
    (us << COUNT_BITS).wrapping_add(1)
}

/// The mean start time of the calls summed in `word` (see
/// [`in_flight_mark`]), as of `now`; `None` when there are none.
fn in_flight_since(word: u64, epoch: Instant, now: Instant) -> Option<Instant> {
    let n = word & COUNT_MASK;
    if n == 0 {
        return None;
    }
    // The sum of the ages is exact modulo 2^(64 - COUNT_BITS) microseconds
    // (over 200 days of calls in flight). A call started by another thread
    // after `now` was read can make it negative, which wraps to a huge
    // value: count that as no age.
    let now_us = now.saturating_duration_since(epoch).as_micros() as u64;
    let ages = n.wrapping_mul(now_us).wrapping_sub(word >> COUNT_BITS) & SUM_MASK;
    let ages = if ages > SUM_MASK / 2 { 0 } else { ages };
    Some(
        now.checked_sub(Duration::from_micros(ages / n))
            .unwrap_or(epoch),
    )
}

/// The mutable heart of an endpoint, behind its own lock (never a global one).
#[derive(Debug)]
pub(crate) struct EndpointCore {
    pub(crate) policy: EndpointPolicy,
    /// (time, picks_total, failures_total) once per maintenance tick, for the
    /// last-10-seconds counts.
    pub(crate) history: VecDeque<(Instant, u64, u64)>,
}

/// A backend the balancer can send calls to.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) key: String,
    pub(crate) uri: Uri,
    pub(crate) channel: Channel,
    pub(crate) core: Mutex<EndpointCore>,
    /// What picks read: published after every update.
    view: RwLock<CandidateView>,
    eligible: AtomicBool,
    breaker_state: AtomicU8,
    pub(crate) in_flight: AtomicU32,
    /// The unary calls in flight and the sum of their start times, in one
    /// word so that a pick reads both at once: each call adds
    /// [`Endpoint::in_flight_mark`] when it starts and takes it back when it
    /// ends.
    pub(crate) in_flight_started: AtomicU64,
    /// Start times count in microseconds from here.
    epoch: Instant,
    pub(crate) streams: AtomicU32,
    pub(crate) draining: AtomicBool,
    pub(crate) picks_total: AtomicU64,
    pub(crate) failures_total: AtomicU64,
    pub(crate) invalid_reports: AtomicU64,
    pub(crate) invalid_report_log: InvalidReportLog,
    /// Out-of-band reports dropped for coming sooner than `oob_min_spacing`.
    pub(crate) oob_reports_dropped: AtomicU64,
    pub(crate) metrics: EndpointMetrics,
    pub(crate) oob_task: Mutex<Option<JoinHandle<()>>>,
    /// Whether the balancer-wide ejected count includes this endpoint
    /// (changed only under the balancer's membership lock).
    pub(crate) counted_ejected: AtomicBool,
    connect_probe: AtomicBool,
}

fn state_code(s: BreakerState) -> u8 {
    match s {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

impl Endpoint {
    pub(crate) fn new(
        key: String,
        uri: Uri,
        channel: Channel,
        shared: &Shared,
        now: Instant,
    ) -> Self {
        let policy = EndpointPolicy::new(&shared.config.score, shared.config.breaker.clone(), now);
        let view = policy.view();
        let metrics = EndpointMetrics::new(&shared.config.target, &key);
        Self {
            key,
            uri,
            channel,
            core: Mutex::new(EndpointCore {
                policy,
                history: VecDeque::new(),
            }),
            view: RwLock::new(view),
            eligible: AtomicBool::new(true),
            breaker_state: AtomicU8::new(0),
            in_flight: AtomicU32::new(0),
            in_flight_started: AtomicU64::new(0),
            epoch: now,
            streams: AtomicU32::new(0),
            draining: AtomicBool::new(false),
            picks_total: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            invalid_reports: AtomicU64::new(0),
            invalid_report_log: InvalidReportLog::default(),
            oob_reports_dropped: AtomicU64::new(0),
            metrics,
            oob_task: Mutex::new(None),
            counted_ejected: AtomicBool::new(false),
            connect_probe: AtomicBool::new(false),
        }
    }

    /// This client's calls here as of `now`, with the mean start time of
    /// its unary calls in flight.
    pub(crate) fn local(&self, now: Instant) -> LocalLoad {
        let word = self.in_flight_started.load(Relaxed);
        LocalLoad {
            in_flight: self.in_flight.load(Relaxed),
            streams: self.streams.load(Relaxed),
            in_flight_since: in_flight_since(word, self.epoch, now),
        }
    }

    /// Whether this client has no call or stream here.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Relaxed) == 0 && self.streams.load(Relaxed) == 0
    }

    /// What a unary call started at `now` adds to `in_flight_started`.
    pub(crate) fn in_flight_mark(&self, now: Instant) -> u64 {
        in_flight_mark(self.epoch, now)
    }

    /// Whether picks may choose it (ignoring panic mode).
    pub(crate) fn is_eligible(&self) -> bool {
        self.eligible.load(Relaxed) && !self.draining.load(Relaxed)
    }

    /// Whether its breaker is Closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.breaker_state.load(Relaxed) == 0
    }

    /// The cost of a call (or stream) here now. Lock-free but for the
    /// endpoint's own read lock on its estimate.
    pub(crate) fn cost(&self, stream: bool, shared: &Shared, now: Instant) -> Score {
        let estimate = self.view.read().estimate;
        let fleet = shared.fleet();
        if stream {
            estimate.stream_cost(self.local(now), &fleet, &shared.config.score, now)
        } else {
            estimate.cost(self.local(now), &fleet, &shared.config.score, now)
        }
    }

    /// This endpoint's score for a pick that drew `u` (see
    /// [`CandidateView::score`]), or `None` to pass it over.
    pub(crate) fn candidate(
        &self,
        stream: bool,
        u: f64,
        panic: bool,
        shared: &Shared,
        now: Instant,
    ) -> Option<Score> {
        let view = *self.view.read();
        view.score(
            self.local(now),
            stream,
            u,
            panic,
            &shared.fleet(),
            &shared.config.score,
            now,
        )
    }

    /// Reserves a call here (see [`EndpointPolicy::admit`]).
    pub(crate) fn admit(&self, panic: bool) -> Admission {
        if self.is_closed() {
            return Admission::Call;
        }
        let mut core = self.core.lock();
        let admitted = core.policy.admit(panic);
        self.publish(&core);
        admitted
    }

    /// Publishes what picks read, from the core (lock held by the caller).
    pub(crate) fn publish(&self, core: &EndpointCore) {
        let view = core.policy.view();
        *self.view.write() = view;
        self.eligible.store(view.eligible, Relaxed);
        let code = state_code(core.policy.breaker().state());
        self.breaker_state.store(code, Relaxed);
        self.metrics.breaker_state.set(f64::from(code));
    }

    /// Sets the breaker-state gauge again, unchanged: every gauge of a
    /// member is set on every maintenance pass, so an exporter's idle
    /// timeout drops only the series of endpoints that left (see
    /// `docs/observability.md`).
    pub(crate) fn refresh_breaker_gauge(&self) {
        let code = self.breaker_state.load(Relaxed);
        self.metrics.breaker_state.set(f64::from(code));
    }

    /// Counts a report that could not be used, and logs it if it is the
    /// first (see [`InvalidReportLog`]).
    pub(crate) fn on_invalid_report(&self, shared: &Shared, error: &dyn std::fmt::Display) {
        self.invalid_reports.fetch_add(1, Relaxed);
        self.metrics.invalid_reports.increment(1);
        self.invalid_report_log
            .on_invalid(&shared.config.target, &self.key, error);
    }

    /// Counts an out-of-band report dropped for coming too soon after the
    /// last one.
    pub(crate) fn on_oob_report_dropped(&self) {
        self.oob_reports_dropped.fetch_add(1, Relaxed);
        self.metrics.oob_reports_dropped.increment(1);
    }

    /// Takes in a report (trailer or out of band).
    pub(crate) fn on_report(&self, report: &LoadReport, shared: &Shared, now: Instant) {
        self.metrics.reports.increment(1);
        let local = self.local(now);
        let mut core = self.core.lock();
        let t = core
            .policy
            .on_report(report, local, shared.may_eject(), now);
        self.after(&mut core, t, shared, now);
    }

    /// Takes in a call's outcome. `probe` says whether the call held a
    /// HalfOpen probe.
    pub(crate) fn on_outcome(
        &self,
        outcome: Outcome,
        latency: Option<Duration>,
        probe: bool,
        shared: &Shared,
        now: Instant,
    ) {
        if matches!(outcome, Outcome::Failure | Outcome::ConnectFailure) {
            self.failures_total.fetch_add(1, Relaxed);
            self.metrics.failures.increment(1);
        }
        let mut core = self.core.lock();
        let t = core
            .policy
            .on_outcome(outcome, latency, probe, shared.may_eject(), now);
        self.after(&mut core, t, shared, now);
    }

    /// Drives the breaker's deadline. An endpoint ejected because it refused
    /// connections is first probed with a bare TCP connect (on its own task),
    /// so that no caller's request is spent finding out it is still down.
    pub(crate) fn on_tick(self: &Arc<Self>, shared: &Arc<Shared>, now: Instant) {
        let mut core = self.core.lock();
        if core
            .policy
            .breaker()
            .next_transition()
            .is_none_or(|at| at > now)
        {
            return;
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
            if !self.connect_probe.swap(true, Relaxed) {
                tokio::spawn(connect_probe(self.clone(), shared.clone()));
            }
            return;
        }
        let t = core.policy.on_deadline(now);
        self.after(&mut core, t, shared, now);
    }

    /// The outcome of a connect probe: HalfOpen if it connected (calls then
    /// probe further), else ejected again for longer.
    fn on_connect_probe(&self, connected: bool, shared: &Shared) {
        let now = tokio::time::Instant::now().into_std();
        let mut core = self.core.lock();
        let t = core.policy.on_connect_probe(connected, now);
        self.after(&mut core, t, shared, now);
        self.connect_probe.store(false, Relaxed);
    }

    fn after(&self, core: &mut EndpointCore, t: Option<Transition>, shared: &Shared, now: Instant) {
        if let Some(t) = t {
            shared.on_transition(self, &t, core.policy.breaker().ejections(), now);
            if t.to == BreakerState::Open {
                self.metrics.ejections.increment(1);
            }
        }
        self.publish(core);
    }
}

async fn connect_probe(ep: Arc<Endpoint>, shared: Arc<Shared>) {
    let connected = match (ep.uri.host(), ep.uri.port_u16()) {
        (Some(host), port) => {
            let port = port.unwrap_or(if ep.uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
            let host = host.trim_start_matches('[').trim_end_matches(']');
            matches!(
                tokio::time::timeout(
                    shared.config.connect_timeout,
                    tokio::net::TcpStream::connect((host, port)),
                )
                .await,
                Ok(Ok(_))
            )
        }
        (None, _) => false,
    };
    tracing::debug!(endpoint = %ep.key, connected, "connect probe");
    ep.on_connect_probe(connected, &shared);
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(task) = self.oob_task.get_mut().take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_start_times_give_the_mean_age() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        let mut word = 0u64;
        assert_eq!(in_flight_since(word, epoch, epoch + ms(5)), None);
        let a = in_flight_mark(epoch, epoch + ms(10));
        let b = in_flight_mark(epoch, epoch + ms(30));
        word = word.wrapping_add(a).wrapping_add(b);
        let now = epoch + ms(100);
        // Ages 90 and 70 ms: 80 ms on average.
        assert_eq!(in_flight_since(word, epoch, now), Some(now - ms(80)));
        word = word.wrapping_sub(a);
        assert_eq!(in_flight_since(word, epoch, now), Some(now - ms(70)));
        // A call started after `now` (another thread's): no age, not a huge one.
        let c = in_flight_mark(epoch, now + ms(1));
        assert_eq!(
            in_flight_since(word.wrapping_sub(b).wrapping_add(c), epoch, now),
            Some(now)
        );
        word = word.wrapping_sub(b);
        assert_eq!(word, 0);

        // Start times past 2^44 microseconds (203 days) wrap; the ages do not.
        let late = epoch + Duration::from_secs(300 * 86_400);
        let word = in_flight_mark(epoch, late).wrapping_add(in_flight_mark(epoch, late + ms(20)));
        let now = late + ms(50);
        assert_eq!(in_flight_since(word, epoch, now), Some(now - ms(40)));
    }
}
