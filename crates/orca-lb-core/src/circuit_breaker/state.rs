//! The states of a circuit breaker and the transitions between them.

use std::fmt;

/// The state of a [`CircuitBreaker`](crate::CircuitBreaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// The circuit is closed: calls pass to the endpoint.
    Closed,
    /// The circuit is open: the endpoint is ejected and gets no calls until
    /// its ejection time is over.
    Open,
    /// The ejection time is over: a limited number of probe calls pass, and
    /// their outcomes decide between Closed and Open.
    HalfOpen,
}

/// Why a [`CircuitBreaker`](crate::CircuitBreaker) opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OpenReason {
    /// This many calls failed in a row while Closed.
    ConsecutiveErrors(u32),
    /// The endpoint reported sustained overload.
    Overload(OverloadSignal),
    /// A probe call failed while HalfOpen.
    ProbeFailed,
    /// A connection to the endpoint was refused or failed.
    ConnectFailed,
}

/// Which reported signal showed overload, with its time-averaged value when
/// the breaker opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverloadSignal {
    /// Effective utilization, above
    /// [`overload_utilization`](crate::CircuitBreakerConfig::overload_utilization).
    Utilization(f64),
    /// CPU utilization, above
    /// [`overload_cpu`](crate::CircuitBreakerConfig::overload_cpu).
    Cpu(f64),
    /// Queue depth, above
    /// [`overload_queue_depth`](crate::CircuitBreakerConfig::overload_queue_depth).
    QueueDepth(f64),
}

/// A change of [`BreakerState`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// Why the breaker opened, when `to` is [`BreakerState::Open`]; `None`
    /// otherwise.
    pub reason: Option<OpenReason>,
}

// === impl BreakerState ===

impl fmt::Display for BreakerState {
    /// `closed`, `open` or `half-open`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}
