//! What a pick reads of one endpoint, prepared when the endpoint's news
//! changes, so that scoring it is a few multiplies.

use std::f64::consts::LOG2_E;
use std::time::Instant;

use crate::endpoint_state::contradicts;
use crate::{
    CandidateView, CostInputs, DecayStamp, EXPLORATION, FleetView, LocalLoad, MIN_WARM_UP_SHARE,
    PickContext, PickSettings, PickTime, Score, ScoreConfig, UnaryCost,
};

/// How many 64-bit words a [`PickView`] is made of besides its origin (see
/// [`PickView::to_words`]).
pub const PICK_VIEW_WORDS: usize = 16;

// Flag bits of `PickView::flags`.
const ELIGIBLE: u64 = 1;
const CLOSED: u64 = 1 << 1;
const REPORTED: u64 = 1 << 2;
const BACKLOG: u64 = 1 << 3;
const STREAMS: u64 = 1 << 4;
const ERRORS: u64 = 1 << 5;
// The service time's source, two bits.
const SERVICE_SHIFT: u32 = 6;
const SERVICE_TYPICAL: u64 = 0;
const SERVICE_REPORTED: u64 = 1;
const SERVICE_CONTRADICTED: u64 = 2;
const SERVICE_OBSERVED: u64 = 3;

/// A [`CandidateView`] prepared for picks: everything of its score that
/// depends neither on the time of the pick, nor on this client's load, nor
/// on the fleet medians is worked out once, when the view is published
/// (which report fields are known, whether observed latency contradicts the
/// reported service time), and times are kept as seconds since an origin
/// (see [`prepare`](CandidateView::prepare)). The times whose weights decay
/// over a window the settings fix (the report's and the observed latency's
/// over `stale_after`, the error rate's over `error_decay`) are kept as
/// [`DecayStamp`]s too. A pick that scores many views prepared from the same
/// origin works out its own time once ([`PickTime`]) and passes it to
/// [`score_at`](Self::score_at): each of those weights is then a multiply.
///
/// [`score`](Self::score) gives the score [`CandidateView::score`] gives,
/// up to rounding: the weights `exp(-age / window)` are within a relative
/// 1e-12 of `f64::exp` (see [`DecayStamp::weight`] and
/// [`exp2_neg`](crate::exp2_neg)).
///
/// It is plain words (see [`to_words`](Self::to_words)) so that a client
/// can publish it in atomics and picks can read it without a lock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickView {
    origin: Instant,
    flags: u64,
    /// When the endpoint was created, seconds since `origin`.
    created: f64,
    /// When the last report came, seconds since the origin.
    reported_at: f64,
    /// `reported_at` on the scale of `stale_after`.
    reported: DecayStamp,
    /// Smoothed reported service time, seconds.
    service: f64,
    /// Observed latency, seconds: the plain average when it contradicts the
    /// report, else the peak average.
    observed: f64,
    /// When latency was last observed, on the scale of `stale_after`.
    observed_at: DecayStamp,
    backlog: f64,
    streams: f64,
    capacity: f64,
    inv_capacity: f64,
    error_rate: f64,
    /// When the error rate was last updated, on the scale of its decay.
    error_at: DecayStamp,
}

/// What a [`PickView`]'s flags say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PickViewParts {
    /// Whether the breaker admits a call.
    pub(crate) eligible: bool,
    /// Whether the breaker is Closed.
    pub(crate) closed: bool,
    /// Whether a report came.
    pub(crate) reported: bool,
    /// Whether the service time scored weighs the observed latency.
    pub(crate) observed: bool,
    /// Whether the endpoint failed lately.
    pub(crate) errors: bool,
    /// When the endpoint was created, seconds since the origin.
    pub(crate) created: f64,
}

impl CandidateView {
    /// This view prepared for picks scored with `config` (see
    /// [`PickView`]), its times counted from `origin`. Instants before
    /// `origin` count as `origin`, so it should come before any the
    /// endpoint sees (its creation, say, or the balancer's).
    pub fn prepare(&self, config: &ScoreConfig, origin: Instant) -> PickView {
        let e = &self.estimate;
        let since = |t: Option<Instant>| t.map_or(0.0, |t| PickView::seconds_since(origin, t));
        let mut flags = 0;
        for (on, bit) in [
            (self.eligible, ELIGIBLE),
            (self.closed, CLOSED),
            (e.reported_at.is_some(), REPORTED),
            (e.backlog.is_some(), BACKLOG),
            (e.streams.is_some(), STREAMS),
        ] {
            if on {
                flags |= bit;
            }
        }
        let settings = PickSettings::new(config);
        let (error_rate, _, error_updated) = e.errors.parts();
        if error_rate > 0.0 && error_updated.is_some() {
            flags |= ERRORS;
        }
        let (source, observed) = match (e.service_time, e.latency, e.latency_at) {
            (Some(s), _, Some(_)) if e.mean_latency.is_some_and(|m| contradicts(s, m, config)) => {
                (SERVICE_CONTRADICTED, e.mean_latency.unwrap_or(s))
            }
            (Some(_), _, _) => (SERVICE_REPORTED, 0.0),
            (None, Some(l), Some(_)) => (SERVICE_OBSERVED, l),
            _ => (SERVICE_TYPICAL, 0.0),
        };
        flags |= source << SERVICE_SHIFT;
        let reported_at = since(e.reported_at);
        PickView {
            origin,
            flags,
            created: since(Some(e.created)),
            reported_at,
            reported: DecayStamp::new(reported_at, settings.stale_rate),
            service: e.service_time.unwrap_or(0.0),
            observed,
            observed_at: DecayStamp::new(since(e.latency_at), settings.stale_rate),
            backlog: e.backlog.unwrap_or(0.0),
            streams: e.streams.unwrap_or(0.0),
            capacity: e.capacity.unwrap_or(1.0),
            inv_capacity: 1.0 / e.capacity.unwrap_or(1.0),
            error_rate,
            error_at: DecayStamp::new(since(error_updated), settings.error_rate),
        }
    }
}

impl PickView {
    /// The origin of its times.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// `t` in seconds since `origin` (0 if earlier): the time a pick's
    /// [`PickTime`] is made from.
    #[inline]
    pub fn seconds_since(origin: Instant, t: Instant) -> f64 {
        let d = t.saturating_duration_since(origin);
        d.as_secs() as f64 + f64::from(d.subsec_nanos()) * 1e-9
    }

    /// The view as words, to store (with its [`origin`](Self::origin),
    /// which a publisher keeps fixed) and rebuild with
    /// [`from_words`](Self::from_words).
    pub fn to_words(&self) -> [u64; PICK_VIEW_WORDS] {
        let [reported_whole, reported_power] = self.reported.to_words();
        let [observed_whole, observed_power] = self.observed_at.to_words();
        let [error_whole, error_power] = self.error_at.to_words();
        // What every unary pick reads first, then what only some read (see
        // `words_read`).
        [
            self.flags,
            self.created.to_bits(),
            self.reported_at.to_bits(),
            reported_whole,
            reported_power,
            self.service.to_bits(),
            self.backlog.to_bits(),
            self.capacity.to_bits(),
            self.inv_capacity.to_bits(),
            self.observed.to_bits(),
            observed_whole,
            observed_power,
            self.error_rate.to_bits(),
            error_whole,
            error_power,
            self.streams.to_bits(),
        ]
    }

    /// How many of the leading [`to_words`](Self::to_words) a pick reads
    /// to score a view whose first word (its flags) is `flags`: a stream's
    /// pick reads all; a unary pick skips the stream count, the error rate
    /// when the endpoint has not failed lately, and the observed latency
    /// when the reported service time is the one scored. The words past
    /// that many may be left 0 in [`from_words`](Self::from_words): the
    /// score does not read them.
    #[inline]
    pub fn words_read(flags: u64, stream: bool) -> usize {
        if stream {
            PICK_VIEW_WORDS
        } else if flags & ERRORS != 0 {
            15
        } else if matches!(
            (flags >> SERVICE_SHIFT) & 3,
            SERVICE_CONTRADICTED | SERVICE_OBSERVED
        ) {
            12
        } else {
            9
        }
    }

    /// The view with times from `origin` whose
    /// [`to_words`](Self::to_words) were `w`.
    #[inline]
    pub fn from_words(origin: Instant, w: [u64; PICK_VIEW_WORDS]) -> Self {
        let f = f64::from_bits;
        PickView {
            origin,
            flags: w[0],
            created: f(w[1]),
            reported_at: f(w[2]),
            reported: DecayStamp::from_words([w[3], w[4]]),
            service: f(w[5]),
            backlog: f(w[6]),
            capacity: f(w[7]),
            inv_capacity: f(w[8]),
            observed: f(w[9]),
            observed_at: DecayStamp::from_words([w[10], w[11]]),
            error_rate: f(w[12]),
            error_at: DecayStamp::from_words([w[13], w[14]]),
            streams: f(w[15]),
        }
    }

    #[inline]
    fn has(&self, bit: u64) -> bool {
        self.flags & bit != 0
    }

    /// What its flags say, for [`StandingCost::new`](crate::StandingCost::new).
    pub(crate) fn flag_parts(&self) -> PickViewParts {
        PickViewParts {
            eligible: self.has(ELIGIBLE),
            closed: self.has(CLOSED),
            reported: self.has(REPORTED),
            observed: matches!(
                (self.flags >> SERVICE_SHIFT) & 3,
                SERVICE_CONTRADICTED | SERVICE_OBSERVED
            ),
            errors: self.has(ERRORS),
            created: self.created,
        }
    }

    /// The smoothed reported number of other clients' unary calls on the
    /// endpoint (its backlog), 0 when not reported.
    pub fn backlog(&self) -> f64 {
        if self.has(BACKLOG) { self.backlog } else { 0.0 }
    }

    /// The endpoint's service time as last known, seconds: the reported one,
    /// else the latency this client observed there; `None` before either.
    pub fn service_time(&self) -> Option<f64> {
        match (self.flags >> SERVICE_SHIFT) & 3 {
            SERVICE_REPORTED | SERVICE_CONTRADICTED => Some(self.service),
            SERVICE_OBSERVED => Some(self.observed),
            _ => None,
        }
    }

    /// Whether the breaker admits a call (see [`CandidateView::eligible`]).
    pub fn eligible(&self) -> bool {
        self.has(ELIGIBLE)
    }

    /// The score of this endpoint for one pick, or `None` if the pick must
    /// pass it over: what [`CandidateView::score`] gives for the view this
    /// one was prepared from, with the same `local` and `pick` (whose score
    /// settings must be the ones it was prepared with).
    pub fn score(&self, local: LocalLoad, pick: &PickContext<'_>) -> Option<Score> {
        let time = PickTime::new(
            &PickSettings::new(pick.score),
            Self::seconds_since(self.origin, pick.now),
        );
        self.score_at(&time, local, pick)
    }

    /// [`score`](Self::score), with the pick's time `pick.now` given as
    /// `time` ([`PickTime`], from [`seconds_since`](Self::seconds_since) the
    /// view's origin and the [`PickSettings`] of `pick.score`): worked out
    /// once for all the views a pick scores.
    #[inline]
    pub fn score_at(
        &self,
        time: &PickTime,
        local: LocalLoad,
        pick: &PickContext<'_>,
    ) -> Option<Score> {
        if !pick.stream {
            return match self.unary_cost(time, local, pick) {
                UnaryCost::PassOver => None,
                UnaryCost::Probe => Some(Score::ZERO),
                UnaryCost::Compute(inputs) => Some(inputs.cost_alone(time)),
            };
        }
        let eligible = self.has(ELIGIBLE);
        if !pick.panic && !eligible {
            return None;
        }
        if !self.has(CLOSED) && eligible {
            return Some(Score::ZERO);
        }
        Some(self.stream_cost(time, local, &pick.fleet))
    }

    /// A unary pick's [`score_at`](Self::score_at), halfway: whether the
    /// pick passes this endpoint over or probes it, and otherwise what its
    /// cost is computed from ([`CostInputs`](crate::CostInputs)).
    /// `pick.stream` is not read.
    #[inline(always)]
    pub fn unary_cost(
        &self,
        time: &PickTime,
        local: LocalLoad,
        pick: &PickContext<'_>,
    ) -> UnaryCost {
        let eligible = self.has(ELIGIBLE);
        if !pick.panic && !eligible {
            return UnaryCost::PassOver;
        }
        if pick.warm_up >= self.warm_up_share(time) {
            return UnaryCost::PassOver;
        }
        if !self.has(CLOSED) && eligible {
            return UnaryCost::Probe;
        }
        UnaryCost::Compute(self.cost_inputs(time, local, pick))
    }

    /// See [`Estimate::warm_up_share`](crate::Estimate::warm_up_share).
    #[inline]
    pub(crate) fn warm_up_share(&self, time: &PickTime) -> f64 {
        let slow_start = time.settings.slow_start;
        let age = (time.now - self.created).max(0.0);
        if age >= slow_start {
            return 1.0;
        }
        (age / slow_start).clamp(MIN_WARM_UP_SHARE, 1.0)
    }

    /// The weight of the observed latency, by its age.
    #[inline]
    pub(crate) fn observed_weight(&self, time: &PickTime) -> f64 {
        self.observed_at.weight(time.stale)
    }

    /// The weight of reported values (see [`CostTerms::freshness`](crate::CostTerms::freshness)).
    #[inline]
    pub(crate) fn freshness(&self, time: &PickTime) -> f64 {
        if self.has(REPORTED) {
            self.reported.weight(time.stale)
        } else {
            0.0
        }
    }

    /// The failure penalty, seconds.
    #[inline]
    fn failure(&self, time: &PickTime) -> f64 {
        if self.has(ERRORS) {
            self.error_rate * self.error_at.weight(time.errors()) * time.settings.error_penalty
        } else {
            0.0
        }
    }

    /// See [`Estimate::terms`](crate::Estimate::terms): the same
    /// arithmetic, up to the backlog weight ([`CostInputs::cost_alone`] does the
    /// rest).
    #[inline(always)]
    pub(crate) fn cost_inputs(
        &self,
        time: &PickTime,
        local: LocalLoad,
        pick: &PickContext<'_>,
    ) -> CostInputs {
        let (fleet, config) = (&pick.fleet, pick.score);
        let relax = |v: f64, median: f64, w: f64| w * v + (1.0 - w) * median;
        let median = fleet.service_time;
        let typical = median * EXPLORATION;
        let dead_band = |s: f64| {
            let d = s - median;
            let outside = (d.abs() - config.service_time_tolerance * median).max(0.0);
            median + outside.copysign(d)
        };
        let observed = || relax(self.observed, typical, self.observed_at.weight(time.stale));
        let service_time = match (self.flags >> SERVICE_SHIFT) & 3 {
            SERVICE_REPORTED => relax(dead_band(self.service), typical, self.freshness(time)),
            SERVICE_CONTRADICTED => {
                relax(dead_band(self.service), typical, self.freshness(time)).max(observed())
            }
            SERVICE_OBSERVED => observed(),
            _ => typical,
        };
        let service_time = match local.in_flight_since {
            Some(since) if local.in_flight > 0 => {
                let age = pick.now.saturating_duration_since(since).as_secs_f64();
                service_time.max(config.in_flight_age_floor * age)
            }
            _ => service_time,
        };
        let (backlog, fleet_backlog) = if self.has(BACKLOG) {
            (self.backlog, fleet.backlog)
        } else {
            (0.0, 0.0)
        };
        let age = (time.now - self.reported_at).max(0.0);
        CostInputs {
            service_time,
            report_age_log2: age * LOG2_E,
            reported: if self.has(REPORTED) { 1.0 } else { 0.0 },
            backlog,
            fleet_backlog,
            in_flight: f64::from(local.in_flight),
            capacity: self.capacity,
            inv_capacity: self.inv_capacity,
            failure: self.failure(time),
        }
    }

    /// See [`Estimate::stream_cost`](crate::Estimate::stream_cost).
    #[inline]
    fn stream_cost(&self, time: &PickTime, local: LocalLoad, fleet: &FleetView) -> Score {
        let others = if self.has(STREAMS) {
            let freshness = self.freshness(time);
            freshness * self.streams + (1.0 - freshness) * fleet.streams
        } else {
            0.0
        };
        let streams = others + f64::from(local.streams) + self.failure(time) * 32.0;
        Score::new(streams)
    }
}

#[cfg(test)]
mod tests;
