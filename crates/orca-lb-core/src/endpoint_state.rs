//! Everything one client knows about one endpoint's load.

use std::time::{Duration, Instant};

use crate::{ErrorRate, Ewma, FleetView, LoadReport, PeakEwma, Score, ScoreConfig};

/// The fraction of the fleet median service time that an endpoint without
/// fresh news is assumed to take.
///
/// Slightly optimistic, so that an endpoint nobody has tried, or one whose
/// bad news has gone stale, is tried again rather than left out for good: a
/// pick takes the cheaper of two, and an endpoint exactly as costly as the
/// median would lose every tie-break to an endpoint just below it.
pub const EXPLORATION: f64 = 0.9;

/// The least share of traffic a new endpoint may take (see
/// [`Estimate::warm_up_share`]).
pub const MIN_WARM_UP_SHARE: f64 = 0.1;

/// Successful calls an endpoint must have answered before its reported
/// service time is checked against their average latency: with fewer, one
/// call that waited in a queue would be the whole average.
pub const MIN_CLAIM_CHECK_SAMPLES: u64 = 8;

/// This client's own calls on an endpoint right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalLoad {
    /// Unary calls this client has in flight on the endpoint.
    pub in_flight: u32,
    /// Streams this client has open on the endpoint.
    pub streams: u32,
    /// Mean start time of the unary calls in flight (`None` when there are
    /// none, or when the caller does not track it: the in-flight age floor,
    /// [`ScoreConfig::in_flight_age_floor`], then does nothing).
    pub in_flight_since: Option<Instant>,
}

/// The smoothed signals of one endpoint: what it reported (ORCA), and what
/// this client observed (latency, failures).
///
/// Updated on every report and response; [`estimate`](Self::estimate)
/// copies out what the score needs, so a pick reads a small `Copy` value.
#[derive(Debug, Clone)]
pub struct EndpointState {
    created: Instant,
    error_penalty: Duration,
    service_time: Ewma,
    backlog: Ewma,
    streams: Ewma,
    utilization: Ewma,
    cpu: Ewma,
    queue_depth: Ewma,
    capacity: Option<f64>,
    last_report: Option<Instant>,
    reports: u64,
    latency: PeakEwma,
    /// Plain average of successful calls' latencies, to check reports
    /// against (a peak average jumps on one slow call).
    mean_latency: Ewma,
    /// Successful calls averaged into `mean_latency`.
    successes: u64,
    errors: ErrorRate,
    responses: u64,
}

/// A copy of what the score reads, taken after an update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// When the endpoint joined (for slow start).
    pub created: Instant,
    /// Smoothed reported service time, seconds.
    pub service_time: Option<f64>,
    /// Smoothed number of other clients' unary calls at the endpoint.
    pub backlog: Option<f64>,
    /// Smoothed number of other clients' streams at the endpoint.
    pub streams: Option<f64>,
    /// Reported worker slots.
    pub capacity: Option<f64>,
    /// When the last report arrived.
    pub reported_at: Option<Instant>,
    /// Observed latency (peak EWMA, seconds) at its last update.
    pub latency: Option<f64>,
    /// When latency was last observed.
    pub latency_at: Option<Instant>,
    /// Plain (not peak) average latency of successful calls, seconds, once
    /// there were [`MIN_CLAIM_CHECK_SAMPLES`] of them: what a reported
    /// service time is checked against (see
    /// [`ScoreConfig::claim_tolerance`]).
    pub mean_latency: Option<f64>,
    /// Recent failure rate.
    pub errors: ErrorRate,
}

/// The parts of a cost, for display and debugging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostTerms {
    /// Service time used, seconds (reported, else observed, relaxed toward
    /// the fleet median as it ages; the observed latency when it contradicts
    /// the report, see [`ScoreConfig::claim_tolerance`]; at least
    /// `in_flight_age_floor` times the mean age of this client's unary calls
    /// in flight there).
    pub service_time: f64,
    /// Calls expected at the endpoint when this one arrives, this client's
    /// included.
    pub backlog: f64,
    /// Worker slots assumed (1 when not reported).
    pub capacity: f64,
    /// Expected completion time:
    /// `service_time * (1 + (max(0, backlog + 1 - capacity) + contention * backlog) / capacity)`.
    pub completion: f64,
    /// Failure penalty added, seconds: error rate x `error_penalty`.
    pub failure: f64,
    /// The fixed cost of any call, seconds (`base_latency`).
    pub base: f64,
    /// Weight of reported values (1 fresh, toward 0 as they age).
    pub freshness: f64,
}

impl CostTerms {
    /// The total: `base + completion + failure`.
    pub fn total(&self) -> Score {
        Score::new(self.base + self.completion + self.failure)
    }
}

// === impl EndpointState ===

impl EndpointState {
    /// A new endpoint, first seen at `now`.
    pub fn new(config: &ScoreConfig, now: Instant) -> Self {
        let ewma = || Ewma::new(config.report_decay);
        Self {
            created: now,
            error_penalty: config.error_penalty,
            service_time: ewma(),
            backlog: ewma(),
            streams: ewma(),
            utilization: ewma(),
            cpu: ewma(),
            queue_depth: ewma(),
            capacity: None,
            last_report: None,
            reports: 0,
            latency: PeakEwma::new(config.latency_decay),
            mean_latency: Ewma::new(config.latency_decay),
            successes: 0,
            errors: ErrorRate::new(config.error_step, config.error_decay),
            responses: 0,
        }
    }

    /// Takes in a validated report, received while this client had `local`
    /// calls on the endpoint (excluding the call that carried the report).
    pub fn on_report(&mut self, report: &LoadReport, local: LocalLoad, now: Instant) {
        self.reports += 1;
        self.last_report = Some(now);
        self.utilization
            .observe(report.effective_utilization(), now);
        self.cpu.observe(report.cpu_utilization(), now);
        if let Some(ms) = report.service_time_ms() {
            self.service_time.observe(ms / 1e3, now);
        }
        if let Some(q) = report.queue_depth() {
            self.queue_depth.observe(q, now);
        }
        if let Some(c) = report.capacity() {
            self.capacity = (c >= 1.0).then_some(c);
        }
        let streams = report.active_streams();
        if let Some(in_flight) = report.in_flight() {
            // The server counts streams as in flight; the backlog that
            // competes for worker slots is the unary part. A queue the
            // application reports beyond its calls in flight is work ahead
            // too.
            let unary = (in_flight - streams.unwrap_or(0.0)).max(0.0);
            let present = unary.max(report.queue_depth().unwrap_or(0.0));
            let others = (present - f64::from(local.in_flight)).max(0.0);
            self.backlog.observe(others, now);
        }
        if let Some(s) = streams {
            self.streams
                .observe((s - f64::from(local.streams)).max(0.0), now);
        }
    }

    /// Takes in the outcome of a call that took `latency`. A failure counts
    /// as at least `error_penalty` of latency: a fast failure must not look
    /// like a fast endpoint.
    pub fn on_response(&mut self, latency: Duration, failed: bool, now: Instant) {
        self.responses += 1;
        let latency = if failed {
            latency.max(self.error_penalty)
        } else {
            latency
        };
        self.latency.observe(latency.as_secs_f64(), now);
        if !failed {
            self.mean_latency.observe(latency.as_secs_f64(), now);
            self.successes += 1;
        }
        self.errors.observe(failed, now);
    }

    /// What the score needs, as of the last update.
    pub fn estimate(&self) -> Estimate {
        Estimate {
            created: self.created,
            service_time: self.service_time.value(),
            backlog: self.backlog.value(),
            streams: self.streams.value(),
            capacity: self.capacity,
            reported_at: self.last_report,
            latency: self.latency.last_value(),
            latency_at: self.latency.last_update(),
            mean_latency: self
                .mean_latency
                .value()
                .filter(|_| self.successes >= MIN_CLAIM_CHECK_SAMPLES),
            errors: self.errors,
        }
    }

    /// When it was first seen.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Smoothed reported effective utilization.
    pub fn utilization(&self) -> Option<f64> {
        self.utilization.value()
    }

    /// Smoothed reported CPU utilization.
    pub fn cpu(&self) -> Option<f64> {
        self.cpu.value()
    }

    /// Smoothed reported queue depth.
    pub fn queue_depth(&self) -> Option<f64> {
        self.queue_depth.value()
    }

    /// Reports taken in.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// Responses taken in.
    pub fn responses(&self) -> u64 {
        self.responses
    }

    /// Age of the last report.
    pub fn report_age(&self, now: Instant) -> Option<Duration> {
        self.last_report.map(|t| now.saturating_duration_since(t))
    }
}

// === impl Estimate ===

impl Estimate {
    /// The cost of sending one unary call now, with its terms.
    pub fn terms(
        &self,
        local: LocalLoad,
        fleet: &FleetView,
        config: &ScoreConfig,
        now: Instant,
    ) -> CostTerms {
        let stale = config.stale_after.as_secs_f64();
        let freshness = self.reported_at.map_or(0.0, |t| {
            (-now.saturating_duration_since(t).as_secs_f64() / stale).exp()
        });
        let relax = |v: f64, median: f64, w: f64| w * v + (1.0 - w) * median;
        let typical = fleet.service_time * EXPLORATION;

        let median = fleet.service_time;
        // A dead band: within the tolerance a service time counts as the
        // median, and beyond it only by how far it lies outside the band, so
        // the estimate does not jump at the band's edge.
        let dead_band = |s: f64| {
            let d = s - median;
            let outside = (d.abs() - config.service_time_tolerance * median).max(0.0);
            median + outside.copysign(d)
        };
        let observed = |l: f64, at: Instant| {
            let w = (-now.saturating_duration_since(at).as_secs_f64() / stale).exp();
            relax(l, typical, w)
        };
        let service_time = match (self.service_time, self.latency, self.latency_at) {
            // A report the client's own observation contradicts (far faster
            // than its calls take on average, beyond network time) loses its
            // weight: the observed average counts instead.
            (Some(s), _, Some(at))
                if self.mean_latency.is_some_and(|m| contradicts(s, m, config)) =>
            {
                let mean = self.mean_latency.unwrap_or(s);
                relax(dead_band(s), typical, freshness).max(observed(mean, at))
            }
            (Some(s), _, _) => relax(dead_band(s), typical, freshness),
            (None, Some(l), Some(at)) => observed(l, at),
            _ => typical,
        };
        // Calls of ours in flight there for longer than its estimated service
        // time are news that it is slower: news that responses bring late.
        let service_time = match local.in_flight_since {
            Some(since) if local.in_flight > 0 => {
                let age = now.saturating_duration_since(since).as_secs_f64();
                service_time.max(config.in_flight_age_floor * age)
            }
            _ => service_time,
        };
        let backlog_stale = (config.backlog_stale_services * service_time).max(1e-3);
        let backlog_freshness = self.reported_at.map_or(0.0, |t| {
            let age = now.saturating_duration_since(t).as_secs_f64();
            (-age / backlog_stale).exp()
        });
        let others = self
            .backlog
            .map_or(0.0, |b| relax(b, fleet.backlog, backlog_freshness));
        let backlog = others + f64::from(local.in_flight);
        let capacity = self.capacity.unwrap_or(1.0);
        let waiting = (backlog + 1.0 - capacity).max(0.0) + config.contention * backlog;
        let completion = service_time * (1.0 + waiting / capacity);
        let failure = self.errors.value_at(now) * config.error_penalty.as_secs_f64();
        CostTerms {
            service_time,
            backlog,
            capacity,
            completion,
            failure,
            base: config.base_latency.as_secs_f64(),
            freshness,
        }
    }

    /// The cost of sending one unary call now.
    pub fn cost(
        &self,
        local: LocalLoad,
        fleet: &FleetView,
        config: &ScoreConfig,
        now: Instant,
    ) -> Score {
        self.terms(local, fleet, config, now).total()
    }

    /// The cost of opening one stream now: the streams expected on the
    /// endpoint, plus a failure penalty. Streams hold no worker slot, so
    /// their count is what spreads them.
    ///
    /// The streams expected are every client's as the server last reported
    /// them: the other clients' (the report's count less this client's own
    /// streams when it came), relaxed toward the fleet median as the report
    /// ages (over [`ScoreConfig::stale_after`]), plus this client's streams
    /// now, so that its own opens since the report count at once.
    ///
    /// The relaxation matters when many clients open streams at once (a
    /// wave of reopens after servers end streams at their max age): every
    /// client's view of the others' opens is as old as its last report, and
    /// a stale count kept at full weight would send all of them to the same
    /// few endpoints. In the simulator's scale-out scenario with a 20 s max
    /// age, relaxing counts ten times more slowly left the spread at 1.40
    /// times the mean 20 s after the scale-out, against 1.19.
    pub fn stream_cost(
        &self,
        local: LocalLoad,
        fleet: &FleetView,
        config: &ScoreConfig,
        now: Instant,
    ) -> Score {
        let stale = config.stale_after.as_secs_f64();
        let freshness = self.reported_at.map_or(0.0, |t| {
            (-now.saturating_duration_since(t).as_secs_f64() / stale).exp()
        });
        let others = self
            .streams
            .map_or(0.0, |s| freshness * s + (1.0 - freshness) * fleet.streams);
        let failure = self.errors.value_at(now) * config.error_penalty.as_secs_f64();
        // Each failure-rate unit weighs like a few dozen streams.
        let streams = others + f64::from(local.streams) + failure * 32.0;
        Score::new(streams)
    }

    /// The share of its normal traffic a new endpoint may take now: rises
    /// linearly from [`MIN_WARM_UP_SHARE`] to 1 over `slow_start`.
    ///
    /// The balancer considers an endpoint for a pick with this probability,
    /// so a new endpoint ramps up instead of being flooded: a cost multiplier
    /// would not do, as a pick between two endpoints takes the cheaper
    /// outright and the ramp would be all or nothing.
    pub fn warm_up_share(&self, config: &ScoreConfig, now: Instant) -> f64 {
        let window = config.slow_start.as_secs_f64();
        if window <= 0.0 {
            return 1.0;
        }
        let age = now.saturating_duration_since(self.created).as_secs_f64();
        (age / window).clamp(MIN_WARM_UP_SHARE, 1.0)
    }
}

/// Whether observed latency `latency` contradicts reported service time
/// `reported` (both seconds): it exceeds
/// [`claim_tolerance`](ScoreConfig::claim_tolerance) times it plus the
/// [`network_allowance`](ScoreConfig::network_allowance).
pub(crate) fn contradicts(reported: f64, latency: f64, config: &ScoreConfig) -> bool {
    latency > config.claim_tolerance * reported + config.network_allowance.as_secs_f64()
}

#[cfg(test)]
mod tests;
