//! What a circuit breaker reacts to, and for how long it ejects.

use std::time::Duration;

use super::InvalidConfig;

/// The settings of a [`CircuitBreaker`](crate::CircuitBreaker).
///
/// Build one with struct update syntax over [`Default`] and check it once
/// with [`validate`](Self::validate) where it enters the program:
///
/// ```
/// use std::time::Duration;
/// use orca_lb_core::CircuitBreakerConfig;
///
/// let config = CircuitBreakerConfig::default()
///     .with_consecutive_errors(3)
///     .with_max_ejection_time(Duration::from_secs(10));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Failed calls in a row that open the breaker. Default 5, Envoy's
    /// `consecutive_5xx` default: a single error says little, five in a row
    /// at any traffic level say the endpoint is failing. Must be at least 1.
    pub consecutive_errors: u32,

    /// How long the first ejection lasts. Default 1 s: long enough for calls
    /// to go elsewhere, short enough that a blip costs little capacity. Must
    /// be above zero.
    ///
    /// The k-th ejection in a row lasts `base_ejection_time * 2^(k-1)`, capped
    /// at [`max_ejection_time`](Self::max_ejection_time), so an endpoint that
    /// keeps failing its probes is tried less and less often. The count k
    /// goes back to zero once the endpoint has stayed Closed for
    /// `max_ejection_time` without being ejected again: a failure after that
    /// is a new incident, not the same one coming back.
    pub base_ejection_time: Duration,

    /// The longest an ejection lasts, and how long an endpoint must stay
    /// Closed before its next ejection starts again from
    /// [`base_ejection_time`](Self::base_ejection_time). Default 30 s: Envoy
    /// uses 300 s, but our ejections also come from overload, which clears
    /// within seconds once traffic moves away. At least `base_ejection_time`
    /// and at most [`EJECTION_TIME_LIMIT`](Self::EJECTION_TIME_LIMIT).
    pub max_ejection_time: Duration,

    /// Probe calls let through while HalfOpen. Default 3. All of them must
    /// succeed to close the breaker, and any failure reopens it for the next,
    /// longer ejection time: one success could be luck, three in a row on a
    /// still-broken endpoint rarely are, and three calls are a small price if
    /// it is broken. Must be at least 1.
    pub half_open_probes: u32,

    /// The time-averaged reported utilization above which the endpoint is
    /// overloaded. Default 3.0.
    ///
    /// The signal is [`LoadReport::effective_utilization`](crate::LoadReport::effective_utilization):
    /// `application_utilization` when reported, else `cpu_utilization`. It
    /// may exceed 1 because orca-lb's servers count waiting calls in
    /// `application_utilization` (calls present per worker slot), so 3.0
    /// reads "every worker busy and twice as many calls again waiting, on
    /// average": a backend that cannot keep up, not one having a busy second.
    /// Lower thresholds eject healthy backends in a busy fleet, whose load
    /// then lands on the rest (seen in the simulator at 1.5). Must be above
    /// zero; [`f64::INFINITY`] turns the signal off.
    pub overload_utilization: f64,

    /// The time-averaged reported `cpu_utilization` above which the endpoint
    /// is overloaded. Default 0.98: a CPU pinned at its limit queues every
    /// call, whatever the application reports. Must be above zero;
    /// [`f64::INFINITY`] turns the signal off.
    pub overload_cpu: f64,

    /// The time-averaged reported queue depth
    /// ([`LoadReport::queue_depth`](crate::LoadReport::queue_depth)) above
    /// which the endpoint is overloaded, or `None` (the default) to ignore
    /// queue depth. Off by default because a good limit depends on the
    /// service's concurrency and service time, which only its owner knows.
    /// Must be above zero when set.
    pub overload_queue_depth: Option<f64>,

    /// The time constant of the averages the overload thresholds apply to.
    /// Default 1 s: overload must be sustained, not one unlucky sample (see
    /// [`Ewma`](crate::Ewma); a value below [`Ewma::MIN_DECAY`](crate::Ewma::MIN_DECAY)
    /// is raised to it).
    pub overload_decay: Duration,

    /// Reports carrying a signal that must arrive, since the breaker's last
    /// transition, before that signal can open it. Default 3: with a fresh
    /// average the first report is the whole average, so a single outlier
    /// would otherwise open the breaker on its own.
    pub overload_min_reports: u32,

    /// How long a server keeps one load sample: reports whose value of a
    /// signal equals the last counted one, within this long of it, carry
    /// the same sample and count once toward
    /// [`overload_min_reports`](Self::overload_min_reports). A server samples
    /// its CPU about once a second and attaches that sample to every
    /// response in between; counting each response would let one sample
    /// open the breaker. A new value always counts (it is a new sample).
    /// Zero counts every report. Default 1 s, the server's default sampling
    /// interval.
    pub overload_sample_interval: Duration,
}

// === setters of CircuitBreakerConfig ===

impl CircuitBreakerConfig {
    /// Sets [`consecutive_errors`](Self::consecutive_errors).
    #[must_use]
    pub fn with_consecutive_errors(mut self, consecutive_errors: u32) -> Self {
        self.consecutive_errors = consecutive_errors;
        self
    }

    /// Sets [`base_ejection_time`](Self::base_ejection_time).
    #[must_use]
    pub fn with_base_ejection_time(mut self, base_ejection_time: Duration) -> Self {
        self.base_ejection_time = base_ejection_time;
        self
    }

    /// Sets [`max_ejection_time`](Self::max_ejection_time).
    #[must_use]
    pub fn with_max_ejection_time(mut self, max_ejection_time: Duration) -> Self {
        self.max_ejection_time = max_ejection_time;
        self
    }

    /// Sets [`half_open_probes`](Self::half_open_probes).
    #[must_use]
    pub fn with_half_open_probes(mut self, half_open_probes: u32) -> Self {
        self.half_open_probes = half_open_probes;
        self
    }

    /// Sets [`overload_utilization`](Self::overload_utilization).
    #[must_use]
    pub fn with_overload_utilization(mut self, overload_utilization: f64) -> Self {
        self.overload_utilization = overload_utilization;
        self
    }

    /// Sets [`overload_cpu`](Self::overload_cpu).
    #[must_use]
    pub fn with_overload_cpu(mut self, overload_cpu: f64) -> Self {
        self.overload_cpu = overload_cpu;
        self
    }

    /// Sets [`overload_queue_depth`](Self::overload_queue_depth).
    #[must_use]
    pub fn with_overload_queue_depth(
        mut self,
        overload_queue_depth: impl Into<Option<f64>>,
    ) -> Self {
        self.overload_queue_depth = overload_queue_depth.into();
        self
    }

    /// Sets [`overload_decay`](Self::overload_decay).
    #[must_use]
    pub fn with_overload_decay(mut self, overload_decay: Duration) -> Self {
        self.overload_decay = overload_decay;
        self
    }

    /// Sets [`overload_min_reports`](Self::overload_min_reports).
    #[must_use]
    pub fn with_overload_min_reports(mut self, overload_min_reports: u32) -> Self {
        self.overload_min_reports = overload_min_reports;
        self
    }

    /// Sets [`overload_sample_interval`](Self::overload_sample_interval).
    #[must_use]
    pub fn with_overload_sample_interval(mut self, overload_sample_interval: Duration) -> Self {
        self.overload_sample_interval = overload_sample_interval;
        self
    }
}

// === impl CircuitBreakerConfig ===

impl CircuitBreakerConfig {
    /// The upper bound on [`max_ejection_time`](Self::max_ejection_time): one
    /// day.
    ///
    /// Keeps every deadline `now + ejection_time` representable as an
    /// [`Instant`](std::time::Instant) on every platform; an endpoint out for
    /// longer than a day should be removed from discovery instead.
    pub const EJECTION_TIME_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

    /// Name used in [`InvalidConfig`] messages.
    const NAME: &'static str = "circuit breaker config";

    /// How long the `k`-th ejection in a row lasts:
    /// `base_ejection_time * 2^(k-1)`, capped at `max_ejection_time`
    /// (and at [`EJECTION_TIME_LIMIT`](Self::EJECTION_TIME_LIMIT)). `k`
    /// counts from 1; 0 is taken as 1.
    ///
    /// ```
    /// use orca_lb_core::CircuitBreakerConfig;
    ///
    /// let config = CircuitBreakerConfig::default();
    /// let secs: Vec<u64> = (1..=7).map(|k| config.ejection_time(k).as_secs()).collect();
    /// assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    /// ```
    pub fn ejection_time(&self, k: u32) -> Duration {
        let cap = self.max_ejection_time.min(Self::EJECTION_TIME_LIMIT);
        2_u32
            .checked_pow(k.saturating_sub(1))
            .and_then(|factor| self.base_ejection_time.checked_mul(factor))
            .map_or(cap, |time| time.min(cap))
    }

    /// Checks every field, returning the first that is out of range.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |field, value: &dyn std::fmt::Debug, problem: &str| {
            Err(InvalidConfig::new(Self::NAME, field, value, problem))
        };
        if self.consecutive_errors == 0 {
            return invalid(
                "consecutive_errors",
                &self.consecutive_errors,
                "must be at least 1",
            );
        }
        if self.base_ejection_time.is_zero() {
            return invalid(
                "base_ejection_time",
                &self.base_ejection_time,
                "must be above zero",
            );
        }
        if self.max_ejection_time < self.base_ejection_time {
            return invalid(
                "max_ejection_time",
                &self.max_ejection_time,
                &format!(
                    "is below base_ejection_time ({:?})",
                    self.base_ejection_time
                ),
            );
        }
        if self.max_ejection_time > Self::EJECTION_TIME_LIMIT {
            return invalid(
                "max_ejection_time",
                &self.max_ejection_time,
                &format!("is above the limit ({:?})", Self::EJECTION_TIME_LIMIT),
            );
        }
        if self.half_open_probes == 0 {
            return invalid(
                "half_open_probes",
                &self.half_open_probes,
                "must be at least 1",
            );
        }
        let thresholds = [
            ("overload_utilization", Some(self.overload_utilization)),
            ("overload_cpu", Some(self.overload_cpu)),
            ("overload_queue_depth", self.overload_queue_depth),
        ];
        for (field, threshold) in thresholds {
            match threshold {
                Some(t) if t.is_nan() || t <= 0.0 => {
                    return invalid(field, &t, "must be a number above zero");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_errors: 5,
            base_ejection_time: Duration::from_secs(1),
            max_ejection_time: Duration::from_secs(30),
            half_open_probes: 3,
            overload_utilization: 3.0,
            overload_cpu: 0.98,
            overload_queue_depth: None,
            overload_decay: Duration::from_secs(1),
            overload_min_reports: 3,
            overload_sample_interval: Duration::from_secs(1),
        }
    }
}
