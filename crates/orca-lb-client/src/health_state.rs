//! What an endpoint's health stream last said.

use std::fmt;

/// An endpoint's health, as its `grpc.health.v1.Health/Watch` stream last
/// told it (see [`HealthCheck`](crate::HealthCheck)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// No answer yet, or the stream broke and is being re-established: not
    /// picked (as gRPC keeps such a connection out of `READY`).
    Unknown,
    /// `SERVING`: picked as usual.
    Serving,
    /// `NOT_SERVING`, `SERVICE_UNKNOWN`, `UNKNOWN`, or the watch refused with
    /// `NOT_FOUND` (the service is not registered): not picked; calls and
    /// streams already open continue.
    NotServing,
    /// The server has no health service (`UNIMPLEMENTED`): picked as if
    /// serving, and not asked again.
    Unimplemented,
}

impl HealthState {
    /// Whether picks may choose an endpoint in this state.
    pub fn is_pickable(self) -> bool {
        matches!(self, HealthState::Serving | HealthState::Unimplemented)
    }

    /// The word a display shows: `unknown`, `serving`, `not serving`,
    /// `unimplemented`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Serving => "serving",
            HealthState::NotServing => "not serving",
            HealthState::Unimplemented => "unimplemented",
        }
    }

    /// The metric label value: `unknown`, `serving`, `not_serving`,
    /// `unimplemented`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            HealthState::NotServing => "not_serving",
            other => other.as_str(),
        }
    }

    pub(crate) const ALL: [HealthState; 4] = [
        HealthState::Unknown,
        HealthState::Serving,
        HealthState::NotServing,
        HealthState::Unimplemented,
    ];

    pub(crate) fn code(self) -> u8 {
        match self {
            HealthState::Unknown => 1,
            HealthState::Serving => 2,
            HealthState::NotServing => 3,
            HealthState::Unimplemented => 4,
        }
    }

    /// The state of a code from [`code`](Self::code); `None` for 0 (health
    /// checking off).
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(HealthState::Unknown),
            2 => Some(HealthState::Serving),
            3 => Some(HealthState::NotServing),
            4 => Some(HealthState::Unimplemented),
            _ => None,
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_zero_means_off() {
        for state in HealthState::ALL {
            assert_eq!(HealthState::from_code(state.code()), Some(state));
        }
        assert_eq!(HealthState::from_code(0), None);
    }

    #[test]
    fn only_serving_and_unimplemented_are_pickable() {
        let pickable: Vec<_> = HealthState::ALL
            .into_iter()
            .filter(|s| s.is_pickable())
            .collect();
        assert_eq!(pickable, [HealthState::Serving, HealthState::Unimplemented]);
        assert_eq!(HealthState::NotServing.to_string(), "not serving");
        assert_eq!(HealthState::NotServing.label(), "not_serving");
    }
}
