//! Configuration of the reporting layer.

use std::time::Duration;

use crate::ConfigError;

/// Tunables of a [`ReportingLayer`](crate::ReportingLayer).
///
/// The defaults suit a server whose calls take milliseconds to a second.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportingConfig {
    /// Worker slots. When set, unary calls beyond this many wait in a FIFO
    /// queue (reported as queue depth) and `application_utilization` is the
    /// busy fraction of the slots, averaged over the window. Streams are not
    /// limited: they would hold a slot for their whole life. Default: none.
    pub capacity: Option<usize>,
    /// Span over which `rps_fractional`, `eps` and the busy fraction are
    /// measured. Default: 10 s.
    pub window: Duration,
    /// How often CPU and memory are sampled and the rate window advances, on a
    /// background task. Default: 1 s.
    pub sample_interval: Duration,
    /// Time constant of the unary service-time EWMA. Default: 1 s, short
    /// enough that a backend slowing down shows within a second or two.
    pub service_time_decay: Duration,
    /// Floor on the out-of-band report interval, whatever clients ask for.
    /// gRPC's servers use 30 s; ours can go lower. Default: 1 s.
    pub min_oob_interval: Duration,
    /// Put a [`CallRecorder`](crate::CallRecorder) in every request's
    /// extensions, for handlers that report per-call costs. It costs two small
    /// allocations per call; turn it off if no handler uses it. Default: on.
    pub call_recorder: bool,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        Self {
            capacity: None,
            window: Duration::from_secs(10),
            sample_interval: Duration::from_secs(1),
            service_time_decay: Duration::from_secs(1),
            min_oob_interval: Duration::from_secs(1),
            call_recorder: true,
        }
    }
}

impl ReportingConfig {
    /// Checks every field, naming the first one that is wrong and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == Some(0) {
            return Err(ConfigError::ZeroCapacity);
        }
        for (field, d) in [
            ("window", self.window),
            ("sample_interval", self.sample_interval),
            ("service_time_decay", self.service_time_decay),
            ("min_oob_interval", self.min_oob_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        if self.window < self.sample_interval * 2 {
            return Err(ConfigError::WindowTooShort {
                window: self.window,
                sample_interval: self.sample_interval,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ReportingConfig::default().validate(), Ok(()));
    }

    #[test]
    fn refuses_bad_fields_by_name() {
        let zero_cap = ReportingConfig {
            capacity: Some(0),
            ..Default::default()
        };
        assert_eq!(zero_cap.validate(), Err(ConfigError::ZeroCapacity));

        let zero_oob = ReportingConfig {
            min_oob_interval: Duration::ZERO,
            ..Default::default()
        };
        let err = zero_oob.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reporting config: min_oob_interval must be greater than zero"
        );

        let short = ReportingConfig {
            window: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(matches!(
            short.validate(),
            Err(ConfigError::WindowTooShort { .. })
        ));
    }
}
