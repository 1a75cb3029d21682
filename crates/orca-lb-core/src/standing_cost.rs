//! The part of an endpoint's unary cost that this client's own calls do not
//! change, worked out now and then and reused by the picks in between.

use crate::{LocalLoad, MIN_WARM_UP_SHARE, PickContext, PickTime, PickView, Score};

/// How many 64-bit words a [`StandingCost`] is made of (see
/// [`StandingCost::to_words`]).
pub const STANDING_COST_WORDS: usize = 13;

/// The longest a standing cost is used, seconds, however still the
/// endpoint's news is: an endpoint that reported nothing and never failed
/// is worked out again once a second.
pub const MAX_STANDING_SPAN: f64 = 1.0;

/// A standing cost spans this share of the shortest window over which
/// what it holds changes: the backlog's weight, the report's and the
/// observed latency's freshness, the error rate's decay, the warm-up.
/// Over a 64th of a window an exponential weight is within `x^2 / 8`
/// (`4e-5`) of itself of the straight line between its two ends, and moves
/// by at most 1.6 %. Longer spans are cheaper still but not free: with an
/// eighth, the simulator's errors stayed under 0.2 % of each score, yet an
/// endpoint back from a slowdown (S2) took 2.4 s instead of 0.2 s to get
/// its share back, as the small errors all lean the same way while its
/// stale bad news decays; the share of the span scaled that delay
/// (1/16: 1.2 s, 1/32: 0.8 s, 1/64: 0.4 s, seed noise 0.1 s).
const SPAN_OF_WINDOW: f64 = 1.0 / 64.0;

/// A weight below this is taken as decayed for good: what it weighs moves
/// by less than a millionth of itself over any span.
const NEGLIGIBLE: f64 = 1e-6;

// Flag bits of `StandingCost::flags`.
const ELIGIBLE: u32 = 1;
const CLOSED: u32 = 1 << 1;

/// A value over a span: its value at the start and its change per second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line {
    at: f64,
    slope: f64,
}

impl Line {
    /// The line through `a` at the span's start and `b` at its end.
    fn through(a: f64, b: f64, span: f64) -> Self {
        let slope = if span > 0.0 { (b - a) / span } else { 0.0 };
        Self { at: a, slope }
    }

    /// The value `dt` seconds after the span's start. A multiply and an
    /// add, not `mul_add`: without a fused multiply-add in the target's
    /// baseline, that is a library call.
    #[inline(always)]
    fn at(self, dt: f64) -> f64 {
        self.slope * dt + self.at
    }
}

/// One endpoint's unary cost with this client's own calls left out, as a
/// straight line over a short span of time: what a pick would otherwise
/// work out afresh for every candidate it draws (the report's and the
/// observed latency's freshness, the service time relaxed toward the fleet
/// median, the reported backlog weighed by its age, the failure penalty,
/// the warm-up share), worked out once from a [`PickView`] and the fleet
/// medians, and reused by every pick until the view or the medians change
/// or the span ends.
///
/// Each of those terms moves with time by a weight that decays over a
/// window (a few service times for the backlog, `stale_after`,
/// `error_decay`, `slow_start`): the standing cost holds each as the line
/// between its values at the start and the end of its span, which is a
/// 64th of the shortest window that applies (at most
/// [`MAX_STANDING_SPAN`]). A pick then adds its own calls in flight and
/// their age, and the cost is a handful of multiplies:
/// [`unary_score`](Self::unary_score). Within the span it is within a
/// fraction of a percent of [`PickView::score`] (a test checks it over
/// random views and times); the one term it reads differently is the
/// backlog's window when this client's oldest calls there are so old that
/// they raise the service time (the in-flight age floor): the window stays
/// the one of the service time without the floor.
///
/// It is plain words ([`to_words`](Self::to_words)) so that a client can
/// keep one per endpoint in atomics, shared by its picks on every thread.
///
/// ```
/// use std::time::{Duration, Instant};
/// use orca_lb_core::{
///     CircuitBreakerConfig, EndpointPolicy, FleetView, LoadReport, LocalLoad, PickContext,
///     PickSettings, PickTime, PickView, RawLoadReport, ScoreConfig, StandingCost,
/// };
///
/// let config = ScoreConfig::default();
/// let origin = Instant::now();
/// let mut policy = EndpointPolicy::new(&config, CircuitBreakerConfig::default(), origin);
/// let now = origin + Duration::from_secs(60);
/// let raw = RawLoadReport { cpu_utilization: 0.5, ..RawLoadReport::default() };
/// let report = LoadReport::try_from(raw).unwrap();
/// policy.on_report(&report, LocalLoad::default(), false, now);
/// let view = policy.view().prepare(&config, origin);
/// let pick = PickContext {
///     stream: false,
///     warm_up: 0.5,
///     panic: false,
///     fleet: FleetView::unknown(Duration::from_millis(10)),
///     score: &config,
///     now,
/// };
/// let seconds = PickView::seconds_since(origin, now);
/// let time = PickTime::new(&PickSettings::new(&config), seconds);
/// let standing = StandingCost::new(&view, &time, &pick);
/// assert!(standing.covers(seconds));
/// let score = standing.unary_score(seconds, LocalLoad::default(), &pick);
/// assert_eq!(score.is_some(), view.score(LocalLoad::default(), &pick).is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StandingCost {
    flags: u32,
    /// How long after `from` it holds, seconds.
    span: f64,
    /// When its span starts, seconds since the views' origin.
    from: f64,
    /// The warm-up share (see [`PickContext::warm_up`]).
    warm_up: Line,
    /// The service time before the in-flight age floor, seconds.
    service_time: Line,
    /// The other clients' calls there: the reported backlog weighed by its
    /// age, the rest the fleet median.
    others: Line,
    /// The base latency and the failure penalty, seconds.
    fixed: Line,
    capacity: f64,
    inv_capacity: f64,
}

impl StandingCost {
    /// The standing cost of the endpoint `view` shows, from the pick time
    /// `time` (`pick.now` as `view` counts it) with the fleet medians and
    /// score settings of `pick` (its other fields are not read).
    pub fn new(view: &PickView, time: &PickTime, pick: &PickContext<'_>) -> Self {
        let parts = view.flag_parts();
        let local = LocalLoad::default();
        let start = view.cost_inputs(time, local, pick);
        let settings = &time.settings;
        // The shortest window among the weights that still weigh anything:
        // one that has decayed to nothing stays there.
        let mut window = MAX_STANDING_SPAN / SPAN_OF_WINDOW;
        let weighs = |w: f64| w > NEGLIGIBLE;
        if parts.reported && weighs(view.freshness(time)) {
            window = window.min(settings.stale_after);
        }
        if parts.reported
            && start.backlog != start.fleet_backlog
            && weighs(start.backlog_weight(time))
        {
            window = window.min(start.backlog_window(settings));
        }
        if parts.observed && weighs(view.observed_weight(time)) {
            window = window.min(settings.stale_after);
        }
        if parts.errors && start.failure > NEGLIGIBLE * settings.base.max(1e-3) {
            window = window.min(settings.error_decay);
        }
        let warm_up_start = view.warm_up_share(time);
        let mut span = window * SPAN_OF_WINDOW;
        if warm_up_start < 1.0 {
            // The share is a straight line between its floor and 1: the
            // span ends where the line bends, so that it holds exactly.
            let age = (time.now - parts.created).max(0.0);
            let floor_ends = MIN_WARM_UP_SHARE * settings.slow_start;
            let bend = if age < floor_ends {
                floor_ends
            } else {
                settings.slow_start
            };
            span = span
                .min(settings.slow_start * SPAN_OF_WINDOW)
                .min(bend - age);
        }
        let end_time = PickTime::new(settings, time.now + span);
        let end = view.cost_inputs(&end_time, local, pick);
        let line = |a, b| Line::through(a, b, span);
        let fixed = |inputs: &crate::CostInputs| settings.base + inputs.failure;
        Self {
            flags: (u32::from(parts.eligible) * ELIGIBLE) | (u32::from(parts.closed) * CLOSED),
            span,
            from: time.now,
            warm_up: line(warm_up_start, view.warm_up_share(&end_time)),
            service_time: line(start.service_time, end.service_time),
            others: line(start.others(time), end.others(&end_time)),
            fixed: line(fixed(&start), fixed(&end)),
            capacity: start.capacity,
            inv_capacity: start.inv_capacity,
        }
    }

    /// Whether it holds at `now` (seconds since the views' origin): within
    /// its span, or a 64th of it before its start (a pick whose clock was
    /// read on another thread a moment before the standing cost was worked
    /// out).
    #[inline(always)]
    pub fn covers(&self, now: f64) -> bool {
        let (dt, span) = (now - self.from, self.span);
        dt <= span && dt >= -span * (1.0 / 64.0)
    }

    /// When its span starts, seconds since the views' origin.
    pub fn from(&self) -> f64 {
        self.from
    }

    /// How long its span is, seconds.
    pub fn span(&self) -> f64 {
        self.span
    }

    /// The endpoint's score for a unary pick at `now` (seconds since the
    /// views' origin; `pick.now` as an instant) with this client's `local`
    /// load there, or `None` if the pick passes it over: what
    /// [`PickView::score`] gives for a unary pick, up to the straight
    /// lines' error (see [`StandingCost`]). `pick.stream` is not read.
    #[inline]
    pub fn unary_score(&self, now: f64, local: LocalLoad, pick: &PickContext<'_>) -> Option<Score> {
        let eligible = self.flags & ELIGIBLE != 0;
        if !pick.panic && !eligible {
            return None;
        }
        // Before its start, the value at its start: the weights are 1
        // before the times they weigh, where the lines would overshoot.
        let dt = (now - self.from).max(0.0);
        if pick.warm_up >= self.warm_up.at(dt) {
            return None;
        }
        if self.flags & CLOSED == 0 && eligible {
            return Some(Score::ZERO);
        }
        let mut service_time = self.service_time.at(dt);
        if let Some(since) = local.in_flight_since
            && local.in_flight > 0
        {
            let age = pick.now.saturating_duration_since(since).as_secs_f64();
            service_time = service_time.max(pick.score.in_flight_age_floor * age);
        }
        let in_flight = f64::from(local.in_flight);
        let backlog = self.others.at(dt) + in_flight;
        let waiting = (backlog + 1.0 - self.capacity).max(0.0) + pick.score.contention * backlog;
        let completion = service_time * (1.0 + waiting * self.inv_capacity);
        Some(Score::new(self.fixed.at(dt) + completion))
    }

    /// The standing cost as words, for [`from_words`](Self::from_words).
    /// Every word is one value, 64 bits wide, so that a reader that stores
    /// them and loads the values back never loads a value made of parts of
    /// two stores (which the processor cannot forward from its store
    /// buffer, and stalls on). The first holds the flags in its low 32
    /// bits; its high 32 bits are 0 and are the caller's to use.
    pub fn to_words(&self) -> [u64; STANDING_COST_WORDS] {
        [
            u64::from(self.flags),
            self.span.to_bits(),
            self.from.to_bits(),
            self.warm_up.at.to_bits(),
            self.warm_up.slope.to_bits(),
            self.service_time.at.to_bits(),
            self.service_time.slope.to_bits(),
            self.others.at.to_bits(),
            self.others.slope.to_bits(),
            self.fixed.at.to_bits(),
            self.fixed.slope.to_bits(),
            self.capacity.to_bits(),
            self.inv_capacity.to_bits(),
        ]
    }

    /// The standing cost whose [`to_words`](Self::to_words) were `w` (the
    /// first word's high 32 bits are not read).
    #[inline(always)]
    pub fn from_words(w: [u64; STANDING_COST_WORDS]) -> Self {
        let f = f64::from_bits;
        let line = |at: u64, slope: u64| Line {
            at: f(at),
            slope: f(slope),
        };
        Self {
            flags: w[0] as u32,
            span: f(w[1]),
            from: f(w[2]),
            warm_up: line(w[3], w[4]),
            service_time: line(w[5], w[6]),
            others: line(w[7], w[8]),
            fixed: line(w[9], w[10]),
            capacity: f(w[11]),
            inv_capacity: f(w[12]),
        }
    }
}

#[cfg(test)]
mod tests;
