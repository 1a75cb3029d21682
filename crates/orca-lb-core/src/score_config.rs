//! Tunables of the score.

use std::fmt;
use std::time::Duration;

/// How [`EndpointState`](crate::EndpointState) smooths signals and how
/// [`Estimate::cost`](crate::Estimate::cost) turns them into a [`Score`](crate::Score).
///
/// `docs/balancing.md` explains each default.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScoreConfig {
    /// Time constant of the EWMAs of reported signals. Servers smooth their
    /// own service time already, so this mostly steadies the instantaneous
    /// counts (backlog, streams). Default: 100 ms.
    pub report_decay: Duration,
    /// Time constant of the observed-latency peak EWMA. Default: 2 s.
    pub latency_decay: Duration,
    /// How fast a report's view goes stale: its weight is
    /// `exp(-age / stale_after)`, the rest goes to the fleet median.
    /// Default: 2 s.
    pub stale_after: Duration,
    /// What a failed call costs: added to the score once per unit of error
    /// rate, and the least latency a failure counts as. Default: 1 s.
    pub error_penalty: Duration,
    /// Step of the error rate per outcome (see [`ErrorRate`](crate::ErrorRate)).
    /// Default: 0.25.
    pub error_step: f64,
    /// Time constant with which the error rate fades. An endpoint that
    /// failed a call or two is picked no more (with best-of-k picks, its
    /// penalty loses to any of the others drawn), so neither the breaker's
    /// probes nor new outcomes bring it back: this fading does. Shorter
    /// brings a recovered endpoint back sooner and sends a failing one more
    /// calls that fail. Default: 3.5 s (`docs/balancing.md`, "Many
    /// clients").
    pub error_decay: Duration,
    /// A new endpoint's share of traffic ramps up linearly over this long
    /// (see [`Estimate::warm_up_share`](crate::Estimate::warm_up_share)).
    /// Zero disables. Default: 3 s.
    pub slow_start: Duration,
    /// Service time assumed for an endpoint before anything is known about
    /// it or the fleet. Default: 20 ms.
    pub default_service_time: Duration,
    /// How fast a reported backlog (other clients' calls) goes stale, in the
    /// endpoint's service times: its weight is
    /// `exp(-age / (backlog_stale_services * service_time))`, the rest goes
    /// to the fleet median. A backlog changes every service time, so it ages
    /// much faster than the service time itself; with many clients each hears
    /// from an endpoint only now and then, and an old backlog is noise that all
    /// of them would act on. Too fast loses what news there is (in the
    /// simulator, S4 worsens below about one service time), and at 2 a
    /// recovered endpoint took longer to get its traffic back (with 1,000
    /// endpoints and 100 clients). Default: 3.
    pub backlog_stale_services: f64,
    /// What every call costs wherever it goes (network, encoding), added to
    /// every score. With the picker's tie tolerance, it keeps differences of
    /// microseconds between nearly idle endpoints from deciding picks.
    /// Default: 1 ms.
    pub base_latency: Duration,
    /// Scores within this fraction of each other count as a tie, broken at
    /// random (see [`P2c::with_tie_tolerance`](crate::P2c::with_tie_tolerance)).
    /// Default: 0.05.
    pub tie_tolerance: f64,
    /// How many random candidates a unary pick compares: the cheapest of
    /// `choices` distinct endpoints drawn at random (all of them in a fleet
    /// of at most `choices`) wins (see [`P2c::pick_best_of`](crate::P2c::pick_best_of)).
    /// 2 is the power of two choices. More choices find a lightly loaded
    /// endpoint more often when many independent clients each see the load
    /// through reports some calls old (`docs/balancing.md`, "Many
    /// clients"). From 2 to [`MAX_CHOICES`](crate::MAX_CHOICES) (8).
    /// Default: 8.
    pub choices: usize,
    /// What each call already at an endpoint adds to a new call's completion
    /// time, as a fraction of a service time per slot, even while slots are
    /// free. Calls in service share CPU, memory bandwidth and the network,
    /// and the backlog is an estimate; without this term every endpoint with
    /// a free slot would cost exactly its service time, and two equal
    /// endpoints would be told apart only by noise. Default: 0.5.
    pub contention: f64,
    /// A service time within this fraction of the fleet median counts as the
    /// median, and one beyond it counts only by how far it lies outside:
    /// `median + sign(d) * max(0, |d| - service_time_tolerance * median)`,
    /// `d` the reported service time less the median. Reported service times
    /// carry noise, and every client reads the same reports: without this dead
    /// band, all clients would prefer whichever of equal endpoints looks a
    /// hair faster at the moment, and herd onto it. Shrinking rather than
    /// passing through what lies outside keeps noise just past the edge
    /// small too; real differences (a slow endpoint) are far larger and keep
    /// all but the band's width. Default: 0.1.
    pub service_time_tolerance: f64,
    /// The service time used for an endpoint is at least this multiple of
    /// the mean age of this client's unary calls in flight there. News of an
    /// endpoint comes with its responses, and when it slows down its slow
    /// responses are the last to arrive; calls still in flight there long
    /// after its estimated service time are evidence that it is slower than
    /// estimated, before any response says so. Below 1, because the calls
    /// in flight at a healthy endpoint are on average about as old as its
    /// service time (exponential service; older with a queue): the floor
    /// must bind only well past that. Zero disables. Default: 0.4.
    pub in_flight_age_floor: f64,
    /// A reported service time is believed only while the average latency
    /// of successful calls this client observes there (a plain EWMA with
    /// `latency_decay`) is at most this many times it, plus
    /// [`network_allowance`](Self::network_allowance). Beyond, the report is
    /// contradicted by what the client sees (a backend that reports ~0 ms
    /// while its calls take 50 ms) and the observed average is used instead
    /// (see [`Estimate::terms`](crate::Estimate::terms)). Observed latency
    /// includes the queue at the endpoint, which the reported service time
    /// does not, so the factor leaves room for a deep queue. Default: 10.
    pub claim_tolerance: f64,
    /// The network and client time an observed latency may include beyond
    /// the endpoint's own processing, for the check of
    /// [`claim_tolerance`](Self::claim_tolerance). Default: 5 ms.
    pub network_allowance: Duration,
}

// === setters of ScoreConfig ===

impl ScoreConfig {
    /// Sets [`report_decay`](Self::report_decay).
    #[must_use]
    pub fn with_report_decay(mut self, report_decay: Duration) -> Self {
        self.report_decay = report_decay;
        self
    }

    /// Sets [`latency_decay`](Self::latency_decay).
    #[must_use]
    pub fn with_latency_decay(mut self, latency_decay: Duration) -> Self {
        self.latency_decay = latency_decay;
        self
    }

    /// Sets [`stale_after`](Self::stale_after).
    #[must_use]
    pub fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    /// Sets [`error_penalty`](Self::error_penalty).
    #[must_use]
    pub fn with_error_penalty(mut self, error_penalty: Duration) -> Self {
        self.error_penalty = error_penalty;
        self
    }

    /// Sets [`error_step`](Self::error_step).
    #[must_use]
    pub fn with_error_step(mut self, error_step: f64) -> Self {
        self.error_step = error_step;
        self
    }

    /// Sets [`error_decay`](Self::error_decay).
    #[must_use]
    pub fn with_error_decay(mut self, error_decay: Duration) -> Self {
        self.error_decay = error_decay;
        self
    }

    /// Sets [`slow_start`](Self::slow_start).
    #[must_use]
    pub fn with_slow_start(mut self, slow_start: Duration) -> Self {
        self.slow_start = slow_start;
        self
    }

    /// Sets [`default_service_time`](Self::default_service_time).
    #[must_use]
    pub fn with_default_service_time(mut self, default_service_time: Duration) -> Self {
        self.default_service_time = default_service_time;
        self
    }

    /// Sets [`backlog_stale_services`](Self::backlog_stale_services).
    #[must_use]
    pub fn with_backlog_stale_services(mut self, backlog_stale_services: f64) -> Self {
        self.backlog_stale_services = backlog_stale_services;
        self
    }

    /// Sets [`base_latency`](Self::base_latency).
    #[must_use]
    pub fn with_base_latency(mut self, base_latency: Duration) -> Self {
        self.base_latency = base_latency;
        self
    }

    /// Sets [`tie_tolerance`](Self::tie_tolerance).
    #[must_use]
    pub fn with_tie_tolerance(mut self, tie_tolerance: f64) -> Self {
        self.tie_tolerance = tie_tolerance;
        self
    }

    /// Sets [`choices`](Self::choices).
    #[must_use]
    pub fn with_choices(mut self, choices: usize) -> Self {
        self.choices = choices;
        self
    }

    /// Sets [`contention`](Self::contention).
    #[must_use]
    pub fn with_contention(mut self, contention: f64) -> Self {
        self.contention = contention;
        self
    }

    /// Sets [`service_time_tolerance`](Self::service_time_tolerance).
    #[must_use]
    pub fn with_service_time_tolerance(mut self, service_time_tolerance: f64) -> Self {
        self.service_time_tolerance = service_time_tolerance;
        self
    }

    /// Sets [`in_flight_age_floor`](Self::in_flight_age_floor).
    #[must_use]
    pub fn with_in_flight_age_floor(mut self, in_flight_age_floor: f64) -> Self {
        self.in_flight_age_floor = in_flight_age_floor;
        self
    }

    /// Sets [`claim_tolerance`](Self::claim_tolerance).
    #[must_use]
    pub fn with_claim_tolerance(mut self, claim_tolerance: f64) -> Self {
        self.claim_tolerance = claim_tolerance;
        self
    }

    /// Sets [`network_allowance`](Self::network_allowance).
    #[must_use]
    pub fn with_network_allowance(mut self, network_allowance: Duration) -> Self {
        self.network_allowance = network_allowance;
        self
    }
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            report_decay: Duration::from_millis(100),
            latency_decay: Duration::from_secs(2),
            stale_after: Duration::from_secs(2),
            error_penalty: Duration::from_secs(1),
            error_step: 0.25,
            error_decay: Duration::from_millis(3_500),
            slow_start: Duration::from_secs(3),
            default_service_time: Duration::from_millis(20),
            backlog_stale_services: 3.0,
            base_latency: Duration::from_millis(1),
            tie_tolerance: 0.05,
            choices: 8,
            contention: 0.5,
            service_time_tolerance: 0.1,
            in_flight_age_floor: 0.4,
            claim_tolerance: 10.0,
            network_allowance: Duration::from_millis(5),
        }
    }
}

/// A [`ScoreConfig`] field is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidScoreConfig {
    field: &'static str,
    why: &'static str,
}

impl InvalidScoreConfig {
    /// The offending field.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for InvalidScoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid score config: {} {}", self.field, self.why)
    }
}

impl std::error::Error for InvalidScoreConfig {}

impl ScoreConfig {
    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidScoreConfig> {
        let err = |field, why| Err(InvalidScoreConfig { field, why });
        for (field, d) in [
            ("report_decay", self.report_decay),
            ("latency_decay", self.latency_decay),
            ("stale_after", self.stale_after),
            ("error_decay", self.error_decay),
            ("default_service_time", self.default_service_time),
        ] {
            if d.is_zero() {
                return err(field, "must be greater than zero");
            }
        }
        if !(self.tie_tolerance.is_finite() && (0.0..1.0).contains(&self.tie_tolerance)) {
            return err("tie_tolerance", "must be in [0, 1)");
        }
        if !(2..=crate::MAX_CHOICES).contains(&self.choices) {
            return err(
                "choices",
                "must be from 2 to 8 (2 is the power of two choices)",
            );
        }
        if !(self.service_time_tolerance.is_finite()
            && (0.0..1.0).contains(&self.service_time_tolerance))
        {
            return err("service_time_tolerance", "must be in [0, 1)");
        }
        if !(self.backlog_stale_services.is_finite() && self.backlog_stale_services > 0.0) {
            return err("backlog_stale_services", "must be a number above 0");
        }
        if !(self.contention.is_finite() && self.contention >= 0.0) {
            return err("contention", "must be a number >= 0");
        }
        if !(self.in_flight_age_floor.is_finite() && self.in_flight_age_floor >= 0.0) {
            return err("in_flight_age_floor", "must be a number >= 0");
        }
        if !(self.claim_tolerance.is_finite() && self.claim_tolerance >= 1.0) {
            return err("claim_tolerance", "must be a number >= 1");
        }
        if !(self.error_step.is_finite() && self.error_step > 0.0 && self.error_step <= 1.0) {
            return err("error_step", "must be in (0, 1]");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_fields_are_named() {
        assert_eq!(ScoreConfig::default().validate(), Ok(()));
        let bad = ScoreConfig {
            error_step: f64::NAN,
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "invalid score config: error_step must be in (0, 1]"
        );
        let bad = ScoreConfig {
            stale_after: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "stale_after");
        for choices in [0, 1, 9, 100] {
            let bad = ScoreConfig::default().with_choices(choices);
            assert_eq!(
                bad.validate().unwrap_err().to_string(),
                "invalid score config: choices must be from 2 to 8 (2 is the power of two choices)"
            );
        }
        for choices in 2..=8 {
            assert_eq!(
                ScoreConfig::default().with_choices(choices).validate(),
                Ok(())
            );
        }
        for v in [f64::NAN, -0.1, f64::INFINITY] {
            let bad = ScoreConfig {
                in_flight_age_floor: v,
                ..Default::default()
            };
            assert_eq!(
                bad.validate().unwrap_err().to_string(),
                "invalid score config: in_flight_age_floor must be a number >= 0"
            );
        }
    }
}
