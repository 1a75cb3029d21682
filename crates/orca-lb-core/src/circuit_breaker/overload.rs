//! Time-averaged overload signals from load reports.

use std::time::{Duration, Instant};

use super::{CircuitBreakerConfig, OverloadSignal};
use crate::{Ewma, LoadReport};

/// The averages of the three overload signals since the breaker's last
/// transition.
#[derive(Debug, Clone)]
pub(super) struct Overload {
    utilization: Signal,
    cpu: Signal,
    queue_depth: Signal,
}

/// One averaged signal and how many distinct server samples carried it.
#[derive(Debug, Clone)]
struct Signal {
    ewma: Ewma,
    reports: u32,
    /// The last counted value and when it came.
    counted: Option<(f64, Instant)>,
    /// See [`CircuitBreakerConfig::overload_sample_interval`].
    sample_interval: Duration,
}

// === impl Overload ===

impl Overload {
    pub(super) fn new(decay: Duration, sample_interval: Duration) -> Self {
        Self {
            utilization: Signal::new(decay, sample_interval),
            cpu: Signal::new(decay, sample_interval),
            queue_depth: Signal::new(decay, sample_interval),
        }
    }

    /// Forgets every sample, so a past overload cannot outlive the state it
    /// was measured in.
    pub(super) fn reset(&mut self) {
        let decay = self.cpu.ewma.decay();
        *self = Self::new(decay, self.cpu.sample_interval);
    }

    /// Feeds one report taken at `now`.
    ///
    /// A utilization of exactly 0 means "not reported" (proto3 defaults, as
    /// gRPC's weighted round robin reads them) and is skipped, so a backend
    /// that reports only `application_utilization` does not drag its CPU
    /// average to zero. Queue depth is a named metric: present means
    /// reported, 0 included.
    pub(super) fn observe(&mut self, report: &LoadReport, now: Instant) {
        let utilization = report.effective_utilization();
        if utilization > 0.0 {
            self.utilization.observe(utilization, now);
        }
        let cpu = report.cpu_utilization();
        if cpu > 0.0 {
            self.cpu.observe(cpu, now);
        }
        if let Some(depth) = report.queue_depth() {
            self.queue_depth.observe(depth, now);
        }
    }

    /// The first signal, in the order utilization, CPU, queue depth, whose
    /// average is above its threshold after at least `min_reports` reports
    /// (and at least one).
    pub(super) fn exceeded(
        &self,
        config: &CircuitBreakerConfig,
        min_reports: u32,
    ) -> Option<OverloadSignal> {
        let min_reports = min_reports.max(1);
        let above = |signal: &Signal, threshold: f64| {
            signal
                .ewma
                .value()
                .filter(|&v| signal.reports >= min_reports && v > threshold)
        };
        if let Some(v) = above(&self.utilization, config.overload_utilization) {
            return Some(OverloadSignal::Utilization(v));
        }
        if let Some(v) = above(&self.cpu, config.overload_cpu) {
            return Some(OverloadSignal::Cpu(v));
        }
        let threshold = config.overload_queue_depth?;
        above(&self.queue_depth, threshold).map(OverloadSignal::QueueDepth)
    }
}

// === impl Signal ===

impl Signal {
    fn new(decay: Duration, sample_interval: Duration) -> Self {
        Self {
            ewma: Ewma::new(decay),
            reports: 0,
            counted: None,
            sample_interval,
        }
    }

    /// Averages `value`, and counts it unless it repeats the last counted
    /// sample (the same value within the sample interval).
    fn observe(&mut self, value: f64, now: Instant) {
        self.ewma.observe(value, now);
        let repeated = self.counted.is_some_and(|(last, at)| {
            last.to_bits() == value.to_bits()
                && now.saturating_duration_since(at) < self.sample_interval
        });
        if !repeated {
            self.reports = self.reports.saturating_add(1);
            self.counted = Some((value, now));
        }
    }
}
