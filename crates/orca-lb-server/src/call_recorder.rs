//! Per-call metrics a handler adds to its own call's report.

use std::sync::Arc;

use orca_lb_core::{Field, named_metrics};
use parking_lot::Mutex;

use crate::RecordError;
use crate::refusal_log::Source;
use crate::report_budget::{BoundedReport, Entries, STANDARD_FIELDS_BYTES, set_within};
use crate::tracker::LoadTracker;

/// Records metrics for one call, sent in that call's
/// `endpoint-load-metrics-bin` trailer only.
///
/// The layer puts one in every request's extensions. In a tonic handler:
///
/// ```
/// use orca_lb_server::CallRecorder;
///
/// fn handle(request: &tonic::Request<()>) {
///     if let Some(recorder) = CallRecorder::of(request) {
///         recorder.record_request_cost("db_reads", 3.0).unwrap();
///         recorder.record_utilization("gpu", 0.4).unwrap();
///     }
/// }
/// # handle(&tonic::Request::new(()));
/// ```
///
/// Entries recorded here come after the server-wide ones in the report, so a
/// name recorded both ways decodes as the per-call value. Names longer than
/// `max_name_len`, and entries that would take the report past
/// `max_report_bytes`, are refused (see
/// [`ReportingConfig`](crate::ReportingConfig)).
#[derive(Debug, Clone)]
pub struct CallRecorder {
    inner: Arc<CallInner>,
}

#[derive(Debug)]
struct CallInner {
    tracker: Arc<LoadTracker>,
    metrics: Mutex<CallMetrics>,
}

#[derive(Debug, Default)]
struct CallMetrics {
    request_cost: Entries,
    utilization: Entries,
    named_metrics: Entries,
    /// Encoded size of the entries above.
    bytes: usize,
}

/// Which map of the report an entry goes to.
#[derive(Clone, Copy)]
enum Map {
    RequestCost,
    Utilization,
    NamedMetric,
}

impl CallMetrics {
    fn map(&mut self, map: Map) -> &mut Entries {
        match map {
            Map::RequestCost => &mut self.request_cost,
            Map::Utilization => &mut self.utilization,
            Map::NamedMetric => &mut self.named_metrics,
        }
    }
}

impl CallRecorder {
    pub(crate) fn new(tracker: Arc<LoadTracker>) -> Self {
        Self {
            inner: Arc::new(CallInner {
                tracker,
                metrics: Mutex::new(CallMetrics::default()),
            }),
        }
    }

    /// The recorder of a call, if the reporting layer is in front of it.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&CallRecorder> {
        request.extensions().get::<CallRecorder>()
    }

    /// Records a request cost (finite, `>= 0`), such as bytes read.
    pub fn record_request_cost(&self, name: &str, value: f64) -> Result<(), RecordError> {
        self.record(Map::RequestCost, Field::RequestCost(name), name, value)
    }

    /// Records a named utilization, in `[0, 1]`.
    pub fn record_utilization(&self, name: &str, value: f64) -> Result<(), RecordError> {
        self.record(Map::Utilization, Field::Utilization(name), name, value)
    }

    /// Records a named metric (finite). orca-lb's own names are reserved.
    pub fn record_named_metric(&self, name: &str, value: f64) -> Result<(), RecordError> {
        if named_metrics::is_known(name) {
            let e = RecordError::ReservedName(name.to_string());
            self.inner.tracker.refused(Source::CallRecorder, name, &e);
            return Err(e);
        }
        self.record(Map::NamedMetric, Field::NamedMetric(name), name, value)
    }

    fn record(
        &self,
        map: Map,
        field: Field<'_>,
        name: &str,
        value: f64,
    ) -> Result<(), RecordError> {
        let tracker = &self.inner.tracker;
        let result = self.try_record(map, field, name, value);
        if let Err(e) = &result {
            tracker.refused(Source::CallRecorder, name, e);
        }
        result
    }

    fn try_record(
        &self,
        map: Map,
        field: Field<'_>,
        name: &str,
        value: f64,
    ) -> Result<(), RecordError> {
        let tracker = &self.inner.tracker;
        tracker.check_name(name)?;
        let v = field.check(value)?;
        let server_wide = tracker.named_bytes();
        let mut m = self.inner.metrics.lock();
        let used = STANDARD_FIELDS_BYTES + server_wide + m.bytes;
        let max = tracker.config.max_report_bytes;
        m.bytes += set_within(m.map(map), name, v, used, max)?;
        Ok(())
    }

    pub(crate) fn encode(&self, report: &mut BoundedReport<'_>) {
        let m = self.inner.metrics.lock();
        for (k, v) in &m.request_cost {
            report.request_cost(k, *v);
        }
        for (k, v) in &m.utilization {
            report.utilization(k, *v);
        }
        for (k, v) in &m.named_metrics {
            report.named_metric(k, *v);
        }
    }
}
