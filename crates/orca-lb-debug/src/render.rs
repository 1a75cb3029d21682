//! What the `orca-lb` CLI prints: a [`pb::State`] as a [`table`] or as
//! [`json`], and a load report as one [`report`] line.
//!
//! Both views read the message, not a snapshot, so they show exactly what
//! came over the wire.

mod json;
mod report;
mod table;

pub use json::json;
pub use report::report;
pub use table::table;

use std::time::Duration;

use crate::pb;

/// The word shown for an endpoint's state: `connecting`, `ready`, `ejected`,
/// `half-open`, `draining` (`unknown` for values this version does not know).
pub fn state_word(state: i32) -> &'static str {
    match pb::EndpointState::try_from(state) {
        Ok(pb::EndpointState::Connecting) => "connecting",
        Ok(pb::EndpointState::Ready) => "ready",
        Ok(pb::EndpointState::Ejected) => "ejected",
        Ok(pb::EndpointState::HalfOpen) => "half-open",
        Ok(pb::EndpointState::Draining) => "draining",
        Ok(pb::EndpointState::Unspecified) | Err(_) => "unknown",
    }
}

/// The words shown for an endpoint's health: `serving`, `not serving`,
/// `unknown`, `unimplemented`; `None` with health checking off.
pub fn health_words(health: i32) -> Option<&'static str> {
    match pb::EndpointHealth::try_from(health) {
        Ok(pb::EndpointHealth::Unspecified) => None,
        Ok(pb::EndpointHealth::Serving) => Some("serving"),
        Ok(pb::EndpointHealth::NotServing) => Some("not serving"),
        Ok(pb::EndpointHealth::Unimplemented) => Some("unimplemented"),
        Ok(pb::EndpointHealth::Unknown) | Err(_) => Some("unknown"),
    }
}

/// The word shown for a circuit state: `closed`, `open`, `half-open`.
pub fn circuit_word(state: i32) -> &'static str {
    match pb::CircuitState::try_from(state) {
        Ok(pb::CircuitState::Closed) => "closed",
        Ok(pb::CircuitState::Open) => "open",
        Ok(pb::CircuitState::HalfOpen) => "half-open",
        Ok(pb::CircuitState::Unspecified) | Err(_) => "unknown",
    }
}

/// Why a circuit opened, in words: `3 consecutive errors`,
/// `overload: utilization 1.62`, `probe failed`, ...
pub fn reason_words(reason: &pb::OpenReason) -> String {
    use pb::open_reason::Kind;
    let v = reason.value.unwrap_or(f64::NAN);
    match Kind::try_from(reason.kind) {
        Ok(Kind::ConsecutiveErrors) => format!("{v:.0} consecutive errors"),
        Ok(Kind::OverloadUtilization) => format!("overload: utilization {v:.2}"),
        Ok(Kind::OverloadCpu) => format!("overload: cpu {v:.2}"),
        Ok(Kind::OverloadQueueDepth) => format!("overload: queue depth {v:.1}"),
        Ok(Kind::ProbeFailed) => "probe failed".to_string(),
        Ok(Kind::ConnectFailed) => "connect failed".to_string(),
        Ok(Kind::Unspecified) | Err(_) => "unknown reason".to_string(),
    }
}

/// A short age: `850ms`, `2.1s`, `3m05s`, `2h07m`.
pub fn age(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3_600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60)
    }
}

/// A protobuf duration as a `Duration` (negative ones as zero).
fn std_duration(d: &prost_types::Duration) -> Duration {
    Duration::try_from(*d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(Duration::from_millis(850)), "850ms");
        assert_eq!(age(Duration::from_millis(2_140)), "2.1s");
        assert_eq!(age(Duration::from_secs(185)), "3m05s");
        assert_eq!(age(Duration::from_secs(7_620)), "2h07m");
    }

    #[test]
    fn reasons() {
        use pb::open_reason::Kind;
        let r = |kind: Kind, value| pb::OpenReason {
            kind: kind.into(),
            value,
        };
        assert_eq!(
            reason_words(&r(Kind::ConsecutiveErrors, Some(5.0))),
            "5 consecutive errors"
        );
        assert_eq!(
            reason_words(&r(Kind::OverloadUtilization, Some(1.625))),
            "overload: utilization 1.62"
        );
        assert_eq!(
            reason_words(&r(Kind::ConnectFailed, None)),
            "connect failed"
        );
    }

    #[test]
    fn unknown_enum_values_are_named_not_dropped() {
        assert_eq!(state_word(99), "unknown");
        assert_eq!(circuit_word(99), "unknown");
        assert_eq!(state_word(pb::EndpointState::HalfOpen.into()), "half-open");
    }
}
