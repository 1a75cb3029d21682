//! A backend's load at one instant, and the report built from it.

use std::collections::HashMap;

use crate::{RawLoadReport, named_metrics};

/// A backend's load at one instant: what a report carries besides the
/// application's own named metrics.
///
/// Plain numbers, `Copy`: building one allocates nothing, so a server can
/// take one per call. [`named_metrics`](Self::named_metrics) lists orca-lb's
/// own entries for an encoder; [`to_raw`](Self::to_raw) builds the message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadSnapshot {
    /// CPU utilization, `0..=1`.
    pub cpu_utilization: f64,
    /// Memory utilization, `0..=1`.
    pub mem_utilization: f64,
    /// Utilization as [`UtilizationSource::reported`](super::UtilizationSource::reported) gives it.
    pub application_utilization: f64,
    /// Completed calls per second over the rate window.
    pub rps: f64,
    /// Failed calls per second over the rate window.
    pub eps: f64,
    /// Calls waiting, in the server's queue and the application's.
    pub queue_depth: usize,
    /// Calls in flight, waiting ones and open streams included.
    pub in_flight: usize,
    /// Open streams.
    pub active_streams: usize,
    /// Worker slots, when the server has them.
    pub capacity: Option<usize>,
    /// The service-time average, `None` before the first call.
    pub service_time_ms: Option<f64>,
}

/// The most named metrics [`LoadSnapshot::named_metrics`] yields.
const OWN_NAMED_METRICS: usize = 5;

impl LoadSnapshot {
    /// orca-lb's own named metrics, in a fixed order.
    ///
    /// A zero queue depth or stream count is left out: `in_flight`, always
    /// present, says they are zero (see [`named_metrics`](crate::named_metrics)).
    /// Capacity and service time are left out when there is none yet.
    pub fn named_metrics(&self) -> impl Iterator<Item = (&'static str, f64)> + use<> {
        [
            (self.queue_depth > 0).then_some((named_metrics::QUEUE_DEPTH, self.queue_depth as f64)),
            Some((named_metrics::IN_FLIGHT, self.in_flight as f64)),
            (self.active_streams > 0)
                .then_some((named_metrics::ACTIVE_STREAMS, self.active_streams as f64)),
            self.capacity.map(|c| (named_metrics::CAPACITY, c as f64)),
            self.service_time_ms
                .map(|v| (named_metrics::SERVICE_TIME_MS, v)),
        ]
        .into_iter()
        .flatten()
    }

    /// The report as a message: the standard fields and
    /// [`named_metrics`](Self::named_metrics).
    pub fn to_raw(&self) -> RawLoadReport {
        let mut named = HashMap::with_capacity(OWN_NAMED_METRICS);
        named.extend(self.named_metrics().map(|(k, v)| (k.to_owned(), v)));
        RawLoadReport {
            cpu_utilization: self.cpu_utilization,
            mem_utilization: self.mem_utilization,
            application_utilization: self.application_utilization,
            rps_fractional: self.rps,
            eps: self.eps,
            named_metrics: named,
            ..RawLoadReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoadReport;

    fn busy() -> LoadSnapshot {
        LoadSnapshot {
            cpu_utilization: 0.5,
            mem_utilization: 0.25,
            application_utilization: 0.75,
            rps: 120.0,
            eps: 2.0,
            queue_depth: 3,
            in_flight: 11,
            active_streams: 2,
            capacity: Some(8),
            service_time_ms: Some(12.5),
        }
    }

    #[test]
    fn report_carries_every_field() {
        let raw = busy().to_raw();
        assert_eq!(
            (
                raw.cpu_utilization,
                raw.mem_utilization,
                raw.application_utilization,
                raw.rps_fractional,
                raw.eps
            ),
            (0.5, 0.25, 0.75, 120.0, 2.0)
        );
        let expected: HashMap<String, f64> = [
            (named_metrics::QUEUE_DEPTH, 3.0),
            (named_metrics::IN_FLIGHT, 11.0),
            (named_metrics::ACTIVE_STREAMS, 2.0),
            (named_metrics::CAPACITY, 8.0),
            (named_metrics::SERVICE_TIME_MS, 12.5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(raw.named_metrics, expected);
        let report = LoadReport::try_from(raw).expect("a valid report");
        assert_eq!(report.queue_depth(), Some(3.0));
    }

    #[test]
    fn idle_report_leaves_out_zero_counts_and_missing_values() {
        let idle = LoadSnapshot {
            application_utilization: super::super::MIN_REPORTED_UTILIZATION,
            ..LoadSnapshot::default()
        };
        let names: Vec<_> = idle.named_metrics().collect();
        assert_eq!(names, [(named_metrics::IN_FLIGHT, 0.0)]);
        let report = LoadReport::try_from(idle.to_raw()).expect("a valid report");
        // Read back as zero, not as unknown.
        assert_eq!(report.queue_depth(), Some(0.0));
        assert_eq!(report.active_streams(), Some(0.0));
        assert_eq!(report.capacity(), None);
        assert_eq!(report.service_time_ms(), None);
    }

    #[test]
    fn named_metrics_come_in_a_fixed_order() {
        let names: Vec<_> = busy().named_metrics().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                named_metrics::QUEUE_DEPTH,
                named_metrics::IN_FLIGHT,
                named_metrics::ACTIVE_STREAMS,
                named_metrics::CAPACITY,
                named_metrics::SERVICE_TIME_MS,
            ]
        );
    }
}
