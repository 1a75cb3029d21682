//! Per-endpoint circuit breaking on errors and on reported overload.

mod config;
mod error;
mod overload;
mod state;
#[cfg(test)]
mod tests;

use std::time::Instant;

pub use self::config::CircuitBreakerConfig;
pub use self::error::InvalidConfig;
use self::overload::Overload;
pub use self::state::{BreakerState, OpenReason, OverloadSignal, Transition};
use crate::LoadReport;

/// Decides whether one endpoint gets calls, from the outcomes of its calls
/// and the load it reports.
///
/// ```text
///            errors or overload          ejection time over
///   Closed ─────────────────────► Open ─────────────────────► HalfOpen
///     ▲                            ▲                             │
///     │                            └─── a probe fails, or ───────┤
///     │                                 overload is reported     │
///     └──────────────── every probe succeeds ────────────────────┘
/// ```
///
/// The breaker opens when [`consecutive_errors`] calls fail in a row, at
/// once when a connection is refused, and when the endpoint reports
/// sustained overload (see [`on_report`](Self::on_report)). It stays Open
/// for an ejection time that doubles with each ejection in a row, then lets
/// [`half_open_probes`] probe calls through. This is Envoy's consecutive
/// error outlier detection plus ORCA-driven overload.
///
/// # Driving it
///
/// The breaker is pure: every event carries its time, and it never sleeps.
/// The shell feeds it call outcomes ([`on_success`](Self::on_success),
/// [`on_failure`](Self::on_failure),
/// [`on_connect_failure`](Self::on_connect_failure)) and reports
/// ([`on_report`](Self::on_report)), and when it is Open, wakes it at
/// [`next_transition`](Self::next_transition) with
/// [`on_deadline`](Self::on_deadline). Each event that changes the state
/// returns the [`Transition`], for logs and metrics.
///
/// Opening from Closed takes `may_eject`: whether the balancer's
/// [`EjectionBudget`](crate::EjectionBudget) allows one more endpoint out.
/// When it does not, the breaker stays Closed and keeps counting, and asks
/// again on the next error or report.
///
/// # Probes
///
/// In HalfOpen, the shell calls [`try_acquire_probe`](Self::try_acquire_probe)
/// before sending a call, and the call's outcome releases the probe. A probe
/// dropped without an outcome must be given back with
/// [`on_probe_cancelled`](Self::on_probe_cancelled), or the breaker waits
/// for it forever.
///
/// The breaker counts probes, it does not tell calls apart: in HalfOpen, an
/// outcome counts as a probe's while a probe is in flight. With none in
/// flight it belongs to a call sent before the breaker opened, which says
/// nothing about the endpoint after its ejection, and is ignored. Outcomes
/// arriving while Open are ignored for the same reason.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use orca_lb_core::{BreakerState, CircuitBreaker, CircuitBreakerConfig, OpenReason};
///
/// let config = CircuitBreakerConfig::default()
///     .with_consecutive_errors(3)
///     .with_half_open_probes(1);
/// config.validate()?;
/// let mut breaker = CircuitBreaker::new(config);
/// let t0 = Instant::now();
///
/// // Three failures in a row open it for the base ejection time (1 s).
/// breaker.on_failure(t0, true);
/// breaker.on_failure(t0, true);
/// let opened = breaker.on_failure(t0, true).expect("the third error opens");
/// assert_eq!(opened.reason, Some(OpenReason::ConsecutiveErrors(3)));
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(!breaker.is_eligible());
///
/// // The shell wakes it at its deadline; it then admits one probe.
/// let deadline = breaker.next_transition().expect("open until a deadline");
/// assert_eq!(deadline, t0 + Duration::from_secs(1));
/// breaker.on_deadline(deadline);
/// assert_eq!(breaker.state(), BreakerState::HalfOpen);
/// assert!(breaker.try_acquire_probe());
/// assert!(!breaker.try_acquire_probe());
///
/// // The probe succeeds: traffic flows again.
/// breaker.on_success(deadline + Duration::from_millis(20));
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// assert_eq!(breaker.next_transition(), None);
/// # Ok::<(), orca_lb_core::InvalidConfig>(())
/// ```
///
/// [`consecutive_errors`]: CircuitBreakerConfig::consecutive_errors
/// [`half_open_probes`]: CircuitBreakerConfig::half_open_probes
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    phase: Phase,
    /// Failures in a row while Closed; reset by a success and by every
    /// transition.
    consecutive_errors: u32,
    /// Times opened, ever.
    ejections: u32,
    /// Ejections in a row: `k` in the ejection time formula.
    streak: u32,
    overload: Overload,
    last_transition: Option<(Instant, Transition)>,
}

/// The state with what each one needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// `since`: when the breaker last closed, `None` if it never opened.
    Closed {
        since: Option<Instant>,
    },
    Open {
        until: Instant,
    },
    /// Probes admitted are `in_flight + passed`: each admitted probe ends in
    /// a success (`passed`), a failure (which reopens) or a cancellation.
    HalfOpen {
        in_flight: u32,
        passed: u32,
    },
}

// === impl CircuitBreaker ===

impl CircuitBreaker {
    /// A Closed breaker.
    ///
    /// `config` should have passed [`CircuitBreakerConfig::validate`]; debug
    /// builds panic if it does not. Release builds carry on: zero
    /// `consecutive_errors` opens on the first error, zero
    /// `half_open_probes` admits one probe anyway.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        if cfg!(debug_assertions)
            && let Err(err) = config.validate()
        {
            panic!("{err}");
        }
        Self {
            overload: Overload::new(config.overload_decay, config.overload_sample_interval),
            config,
            phase: Phase::Closed { since: None },
            consecutive_errors: 0,
            ejections: 0,
            streak: 0,
            last_transition: None,
        }
    }

    /// The settings it was built with.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The current state.
    ///
    /// It changes only on events: an Open breaker past its deadline stays
    /// Open until [`on_deadline`](Self::on_deadline).
    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// The last change of state and when it happened, or `None` if the
    /// breaker has never left Closed.
    pub fn last_transition(&self) -> Option<(Instant, Transition)> {
        self.last_transition
    }

    /// How many times the breaker has opened, reopening from HalfOpen
    /// included.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// Calls failed in a row while Closed (0 in the other states). It can
    /// exceed [`consecutive_errors`](CircuitBreakerConfig::consecutive_errors)
    /// when the ejection budget refused to let the endpoint out.
    pub fn consecutive_errors(&self) -> u32 {
        self.consecutive_errors
    }

    /// Whether a call may be sent now: always when Closed, never when Open,
    /// and when HalfOpen while fewer than
    /// [`half_open_probes`](CircuitBreakerConfig::half_open_probes) probes
    /// have been admitted.
    pub fn is_eligible(&self) -> bool {
        match self.phase {
            Phase::Closed { .. } => true,
            Phase::Open { .. } => false,
            Phase::HalfOpen { in_flight, passed } => in_flight + passed < self.probes(),
        }
    }

    /// When the breaker should next be woken with
    /// [`on_deadline`](Self::on_deadline): the end of the ejection when Open,
    /// `None` otherwise.
    pub fn next_transition(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open { until } => Some(until),
            Phase::Closed { .. } | Phase::HalfOpen { .. } => None,
        }
    }

    /// Asks to send a call: `true` when Closed, `false` when Open, and when
    /// HalfOpen, admits one probe if the budget has one left.
    ///
    /// An admitted probe is released by its outcome
    /// ([`on_success`](Self::on_success), [`on_failure`](Self::on_failure),
    /// [`on_connect_failure`](Self::on_connect_failure)) or by
    /// [`on_probe_cancelled`](Self::on_probe_cancelled).
    pub fn try_acquire_probe(&mut self) -> bool {
        if !self.is_eligible() {
            return false;
        }
        if let Phase::HalfOpen { in_flight, .. } = &mut self.phase {
            *in_flight += 1;
        }
        true
    }

    /// Gives back a probe whose call ended without an outcome (cancelled or
    /// dropped), so another can be admitted. Does nothing outside HalfOpen
    /// or with no probe in flight.
    pub fn on_probe_cancelled(&mut self) {
        if let Phase::HalfOpen { in_flight, .. } = &mut self.phase {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    /// A call succeeded at `now`.
    ///
    /// Closed: resets the consecutive errors. HalfOpen: counts a passed
    /// probe; the last one closes the breaker, unless the reports received
    /// since the ejection ended show overload (even fewer than
    /// [`overload_min_reports`](CircuitBreakerConfig::overload_min_reports):
    /// the endpoint is still on trial), in which case it reopens with
    /// [`OpenReason::Overload`] instead.
    pub fn on_success(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Closed { .. } => {
                self.consecutive_errors = 0;
                None
            }
            Phase::Open { .. } | Phase::HalfOpen { in_flight: 0, .. } => None,
            Phase::HalfOpen { in_flight, passed } => {
                let passed = passed + 1;
                if passed < self.probes() {
                    self.phase = Phase::HalfOpen {
                        in_flight: in_flight - 1,
                        passed,
                    };
                    return None;
                }
                Some(match self.overload.exceeded(&self.config, 1) {
                    Some(signal) => self.open(now, OpenReason::Overload(signal)),
                    None => self.transition(now, Phase::Closed { since: Some(now) }, None),
                })
            }
        }
    }

    /// A call failed at `now`.
    ///
    /// Closed: counts a consecutive error, and opens the breaker with
    /// [`OpenReason::ConsecutiveErrors`] when there are
    /// [`consecutive_errors`](CircuitBreakerConfig::consecutive_errors) of
    /// them and `may_eject` is true. HalfOpen: a failed probe reopens it with
    /// [`OpenReason::ProbeFailed`] and the next, longer ejection time,
    /// whatever `may_eject` says: the endpoint already counts as ejected, so
    /// reopening takes nothing more from the budget.
    pub fn on_failure(&mut self, now: Instant, may_eject: bool) -> Option<Transition> {
        match self.phase {
            Phase::Closed { .. } => {
                self.consecutive_errors = self.consecutive_errors.saturating_add(1);
                let errors = self.consecutive_errors;
                (may_eject && errors >= self.config.consecutive_errors)
                    .then(|| self.open(now, OpenReason::ConsecutiveErrors(errors)))
            }
            Phase::Open { .. } | Phase::HalfOpen { in_flight: 0, .. } => None,
            Phase::HalfOpen { .. } => Some(self.open(now, OpenReason::ProbeFailed)),
        }
    }

    /// A connection to the endpoint failed at `now`.
    ///
    /// Opens the breaker at once with [`OpenReason::ConnectFailed`], without
    /// waiting for more errors: a refused connection will refuse the next
    /// call too. From Closed this needs `may_eject`; when refused, the
    /// failure counts as one consecutive error. From HalfOpen it reopens
    /// whatever `may_eject` says, as a failed probe does, and whether or not
    /// a probe is in flight: a connection fails now, not before the ejection.
    pub fn on_connect_failure(&mut self, now: Instant, may_eject: bool) -> Option<Transition> {
        match self.phase {
            Phase::Closed { .. } if may_eject => Some(self.open(now, OpenReason::ConnectFailed)),
            Phase::Closed { .. } => {
                self.consecutive_errors = self.consecutive_errors.saturating_add(1);
                None
            }
            Phase::Open { .. } => None,
            Phase::HalfOpen { .. } => Some(self.open(now, OpenReason::ConnectFailed)),
        }
    }

    /// The endpoint sent `report`, taken at `now`.
    ///
    /// The report feeds time-averaged utilization, CPU and queue depth
    /// (decay [`overload_decay`](CircuitBreakerConfig::overload_decay)). Once
    /// a signal has come in
    /// [`overload_min_reports`](CircuitBreakerConfig::overload_min_reports)
    /// reports since the last transition and its average is above its
    /// threshold, the breaker opens with [`OpenReason::Overload`]: from
    /// Closed if `may_eject`, from HalfOpen whatever `may_eject` says (as a
    /// failed probe). Signals are checked in the order utilization, CPU,
    /// queue depth; the first one above its threshold is the reason.
    ///
    /// The averages start afresh at every transition, so an overload that
    /// opened the breaker cannot reopen it the moment it recovers: only
    /// reports received since count. Reports while Open are ignored, as they
    /// would be forgotten when the ejection ends anyway.
    pub fn on_report(
        &mut self,
        report: &LoadReport,
        now: Instant,
        may_eject: bool,
    ) -> Option<Transition> {
        let may_open = match self.phase {
            Phase::Closed { .. } => may_eject,
            Phase::HalfOpen { .. } => true,
            Phase::Open { .. } => return None,
        };
        self.overload.observe(report, now);
        let signal = self
            .overload
            .exceeded(&self.config, self.config.overload_min_reports)?;
        may_open.then(|| self.open(now, OpenReason::Overload(signal)))
    }

    /// Time has come to `now`: an Open breaker whose ejection is over moves
    /// to HalfOpen. Does nothing otherwise, so a late or spurious wake-up is
    /// harmless.
    pub fn on_deadline(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Open { until } if now >= until => Some(self.transition(
                now,
                Phase::HalfOpen {
                    in_flight: 0,
                    passed: 0,
                },
                None,
            )),
            _ => None,
        }
    }

    /// The probe budget, never zero so HalfOpen cannot get stuck.
    fn probes(&self) -> u32 {
        self.config.half_open_probes.max(1)
    }

    /// Opens the breaker for the next ejection time in the current streak.
    fn open(&mut self, now: Instant, reason: OpenReason) -> Transition {
        if let Phase::Closed { since: Some(since) } = self.phase
            && now.saturating_duration_since(since) >= self.config.max_ejection_time
        {
            self.streak = 0;
        }
        self.streak = self.streak.saturating_add(1);
        self.ejections = self.ejections.saturating_add(1);
        let until = now + self.config.ejection_time(self.streak);
        self.transition(now, Phase::Open { until }, Some(reason))
    }

    fn transition(&mut self, now: Instant, to: Phase, reason: Option<OpenReason>) -> Transition {
        let from = self.state();
        self.phase = to;
        self.consecutive_errors = 0;
        self.overload.reset();
        let transition = Transition {
            from,
            to: self.state(),
            reason,
        };
        self.last_transition = Some((now, transition));
        transition
    }
}
