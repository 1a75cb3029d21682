//! The error a config's `validate()` returns.

use std::fmt;

/// A configuration value that is out of range.
///
/// Returned by [`CircuitBreakerConfig::validate`](crate::CircuitBreakerConfig::validate)
/// and [`EjectionBudget::validate`](crate::EjectionBudget::validate). The
/// message names the config, the field, its value and what is wrong with it:
///
/// ```text
/// invalid circuit breaker config: max_ejection_time (1s) is below base_ejection_time (2s)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    config: &'static str,
    field: &'static str,
    value: String,
    problem: String,
}

// === impl InvalidConfig ===

impl InvalidConfig {
    /// `field` of `config` holds `value`, which `problem` (a phrase such as
    /// "must be at least 1").
    pub(crate) fn new(
        config: &'static str,
        field: &'static str,
        value: impl fmt::Debug,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            config,
            field,
            value: format!("{value:?}"),
            problem: problem.into(),
        }
    }

    /// The name of the offending field, as spelled in the config struct.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: {} ({}) {}",
            self.config, self.field, self.value, self.problem
        )
    }
}

impl std::error::Error for InvalidConfig {}
