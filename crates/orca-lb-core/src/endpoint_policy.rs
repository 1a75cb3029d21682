//! One endpoint's whole policy: its signals and its breaker, and how a pick
//! sees it.

use std::time::{Duration, Instant};

use crate::{
    BreakerState, CircuitBreaker, CircuitBreakerConfig, EndpointState, Estimate, LoadReport,
    LocalLoad, PickContext, PickView, Score, ScoreConfig, Transition,
};

/// How a call ended, as far as the endpoint's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A response whose status says nothing bad about the endpoint.
    Success,
    /// A status counted as a failure, or a broken response.
    Failure,
    /// The connection could not be made.
    ConnectFailure,
    /// The caller went away; nothing learned.
    Cancelled,
}

/// What [`EndpointPolicy::admit`] decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission {
    /// An ordinary call: the breaker is Closed, or panic mode ignores it.
    Call,
    /// A HalfOpen probe: its outcome decides whether the endpoint closes.
    /// The caller reports the outcome with `probe` set.
    Probe,
    /// Refused: the breaker is not Closed and has no probe to spare.
    Refused,
}

impl Admission {
    /// Whether the call holds a HalfOpen probe.
    pub fn is_probe(self) -> bool {
        self == Admission::Probe
    }
}

/// The signals ([`EndpointState`]) and the [`CircuitBreaker`] of one
/// endpoint, updated together: the unit the balancer (and the simulator)
/// keeps per endpoint.
#[derive(Debug, Clone)]
pub struct EndpointPolicy {
    state: EndpointState,
    breaker: CircuitBreaker,
}

/// What a pick needs to know of one endpoint, copied out after each update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateView {
    /// The score inputs.
    pub estimate: Estimate,
    /// Whether the breaker is Closed.
    pub closed: bool,
    /// Whether the breaker admits a call (Closed, or HalfOpen with a probe
    /// to spare).
    pub eligible: bool,
}

impl EndpointPolicy {
    /// A new, Closed endpoint first seen at `now`.
    pub fn new(score: &ScoreConfig, breaker: CircuitBreakerConfig, now: Instant) -> Self {
        Self {
            state: EndpointState::new(score, now),
            breaker: CircuitBreaker::new(breaker),
        }
    }

    /// The signals.
    pub fn state(&self) -> &EndpointState {
        &self.state
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// What picks read.
    pub fn view(&self) -> CandidateView {
        CandidateView {
            estimate: self.state.estimate(),
            closed: self.breaker.state() == BreakerState::Closed,
            eligible: self.breaker.is_eligible(),
        }
    }

    /// What picks read, prepared for picks scored with `config` (see
    /// [`PickView`]), its times counted from the endpoint's creation.
    pub fn pick_view(&self, config: &ScoreConfig) -> PickView {
        self.view().prepare(config, self.state.created())
    }

    /// Takes in a report received while this client had `local` calls on
    /// the endpoint (not counting the call that carried it).
    pub fn on_report(
        &mut self,
        report: &LoadReport,
        local: LocalLoad,
        may_eject: bool,
        now: Instant,
    ) -> Option<Transition> {
        self.state.on_report(report, local, now);
        self.breaker.on_report(report, now, may_eject)
    }

    /// Takes in a call's outcome. `latency` is known for unary calls;
    /// `probe` says whether the call held a HalfOpen probe.
    pub fn on_outcome(
        &mut self,
        outcome: Outcome,
        latency: Option<Duration>,
        probe: bool,
        may_eject: bool,
        now: Instant,
    ) -> Option<Transition> {
        let failed = outcome != Outcome::Success;
        if outcome != Outcome::Cancelled {
            // A failure without a measured latency still counts (as at least
            // the error penalty, in `on_response`).
            if let Some(latency) = latency.or(failed.then_some(Duration::ZERO)) {
                self.state.on_response(latency, failed, now);
            }
        }
        match outcome {
            Outcome::Success => self.breaker.on_success(now),
            Outcome::Failure => self.breaker.on_failure(now, may_eject),
            Outcome::ConnectFailure => self.breaker.on_connect_failure(now, may_eject),
            Outcome::Cancelled => {
                if probe {
                    self.breaker.on_probe_cancelled();
                }
                None
            }
        }
    }

    /// Drives the breaker's deadline, if it has passed.
    pub fn on_deadline(&mut self, now: Instant) -> Option<Transition> {
        if self.breaker.next_transition().is_some_and(|at| at <= now) {
            self.breaker.on_deadline(now)
        } else {
            None
        }
    }

    /// A connect probe's result after the ejection ended: HalfOpen if it
    /// connected, else ejected again for longer.
    pub fn on_connect_probe(&mut self, connected: bool, now: Instant) -> Option<Transition> {
        let t = self.breaker.on_deadline(now);
        if !connected && t.is_some() {
            return self.breaker.on_connect_failure(now, true).or(t);
        }
        t
    }

    /// Reserves a call: an ordinary one when Closed, else one of the
    /// HalfOpen probes, else (with none to spare, or Open) an ordinary one
    /// only in `panic` mode.
    pub fn admit(&mut self, panic: bool) -> Admission {
        if self.breaker.state() == BreakerState::Closed {
            return Admission::Call;
        }
        if self.breaker.try_acquire_probe() {
            Admission::Probe
        } else if panic {
            Admission::Call
        } else {
            Admission::Refused
        }
    }
}

impl CandidateView {
    /// The score of this endpoint for one pick, or `None` if the pick must
    /// pass it over.
    ///
    /// - Passed over when its breaker refuses (unless `panic`), or, for a
    ///   unary call, while it warms up and the pick's draw `u` (uniform in
    ///   `[0, 1)`) is at least its warm-up share. Streams are not held back
    ///   by slow start: a stream's cost is the streams open there, which
    ///   rises by one with each stream opened, so a new endpoint fills up at
    ///   the rate streams open, and holding it back would leave it empty
    ///   while streams opened elsewhere stay there for their lifetime.
    /// - A half-open endpoint with a probe to spare scores zero: it comes back
    ///   only if probes reach it, and there are only a few of them.
    /// - Otherwise the stream or unary cost.
    ///
    /// `local` is this client's own load on the endpoint; `pick` what the
    /// pick knows beyond the endpoints (its warm-up draw is `u` above).
    pub fn score(&self, local: LocalLoad, pick: &PickContext<'_>) -> Option<Score> {
        if !pick.panic && !self.eligible {
            return None;
        }
        if !pick.stream && pick.warm_up >= self.estimate.warm_up_share(pick.score, pick.now) {
            return None;
        }
        if !self.closed && self.eligible {
            return Some(Score::ZERO);
        }
        Some(if pick.stream {
            self.estimate
                .stream_cost(local, &pick.fleet, pick.score, pick.now)
        } else {
            self.estimate.cost(local, &pick.fleet, pick.score, pick.now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(
        clippy::disallowed_methods,
        reason = "tests need one real instant to offset from"
    )]
    fn t0() -> Instant {
        Instant::now()
    }

    fn policy(t: Instant) -> EndpointPolicy {
        let score = ScoreConfig {
            slow_start: Duration::ZERO,
            ..ScoreConfig::default()
        };
        let breaker = CircuitBreakerConfig {
            consecutive_errors: 2,
            half_open_probes: 1,
            ..CircuitBreakerConfig::default()
        };
        EndpointPolicy::new(&score, breaker, t)
    }

    fn score(p: &EndpointPolicy, panic: bool, t: Instant) -> Option<Score> {
        let cfg = ScoreConfig {
            slow_start: Duration::ZERO,
            ..ScoreConfig::default()
        };
        let pick = PickContext {
            stream: false,
            warm_up: 0.5,
            panic,
            fleet: crate::FleetView::unknown(cfg.default_service_time),
            score: &cfg,
            now: t,
        };
        p.view().score(LocalLoad::default(), &pick)
    }

    #[test]
    fn ejection_probe_and_recovery_as_a_pick_sees_them() {
        let t = t0();
        let mut p = policy(t);
        assert!(score(&p, false, t).is_some());
        assert_eq!(p.admit(false), Admission::Call);

        assert_eq!(p.on_outcome(Outcome::Failure, None, false, true, t), None);
        let opened = p
            .on_outcome(Outcome::Failure, None, false, true, t)
            .unwrap();
        assert_eq!(opened.to, BreakerState::Open);
        assert_eq!(score(&p, false, t), None, "Open: passed over");
        assert!(
            score(&p, true, t).is_some(),
            "panic mode ignores the breaker"
        );
        assert_eq!(p.admit(false), Admission::Refused);
        assert_eq!(p.admit(true), Admission::Call);

        let later = t + Duration::from_secs(1);
        let half = p.on_deadline(later).unwrap();
        assert_eq!(half.to, BreakerState::HalfOpen);
        assert_eq!(
            score(&p, false, later),
            Some(Score::ZERO),
            "a probe goes first"
        );
        assert_eq!(p.admit(false), Admission::Probe);
        assert_eq!(score(&p, false, later), None, "the one probe is out");
        let closed = p
            .on_outcome(
                Outcome::Success,
                Some(Duration::from_millis(5)),
                true,
                true,
                later,
            )
            .unwrap();
        assert_eq!(closed.to, BreakerState::Closed);
        assert!(score(&p, false, later).unwrap() > Score::ZERO);
    }

    #[test]
    fn a_cancelled_probe_gives_its_slot_back() {
        let t = t0();
        let mut p = policy(t);
        p.on_outcome(Outcome::ConnectFailure, None, false, true, t);
        let later = t + Duration::from_secs(2);
        assert_eq!(
            p.on_connect_probe(true, later).map(|t| t.to),
            Some(BreakerState::HalfOpen)
        );
        assert_eq!(p.admit(false), Admission::Probe);
        assert_eq!(p.admit(false), Admission::Refused);
        p.on_outcome(Outcome::Cancelled, None, true, true, later);
        assert_eq!(p.admit(false), Admission::Probe);
    }

    #[test]
    fn a_failed_connect_probe_ejects_again_for_longer() {
        let t = t0();
        let mut p = policy(t);
        p.on_outcome(Outcome::ConnectFailure, None, false, true, t);
        let first = p.breaker().next_transition().unwrap();
        let t2 = p.on_connect_probe(false, first).unwrap();
        assert_eq!(t2.to, BreakerState::Open);
        let second = p.breaker().next_transition().unwrap();
        assert!(second - first > first - t, "the second ejection is longer");
    }
}
