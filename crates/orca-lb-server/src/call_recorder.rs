//! Per-call metrics a handler adds to its own call's report.

use std::sync::Arc;

use bytes::BufMut;
use orca_lb_core::{Field, named_metrics};
use orca_lb_proto::encode::ReportEncoder;
use parking_lot::Mutex;

use crate::RecordError;
use crate::recorder::{checked, reject};

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
/// name recorded both ways decodes as the per-call value.
#[derive(Debug, Clone, Default)]
pub struct CallRecorder {
    inner: Arc<Mutex<CallMetrics>>,
}

#[derive(Debug, Default)]
struct CallMetrics {
    request_cost: Vec<(Box<str>, f64)>,
    utilization: Vec<(Box<str>, f64)>,
    named_metrics: Vec<(Box<str>, f64)>,
}

impl CallRecorder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The recorder of a call, if the reporting layer is in front of it.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&CallRecorder> {
        request.extensions().get::<CallRecorder>()
    }

    /// Records a request cost (finite, `>= 0`), such as bytes read.
    pub fn record_request_cost(&self, name: &str, value: f64) -> Result<(), RecordError> {
        let v = checked(Field::RequestCost(name), value)?;
        upsert(&mut self.inner.lock().request_cost, name, v);
        Ok(())
    }

    /// Records a named utilization, in `[0, 1]`.
    pub fn record_utilization(&self, name: &str, value: f64) -> Result<(), RecordError> {
        let v = checked(Field::Utilization(name), value)?;
        upsert(&mut self.inner.lock().utilization, name, v);
        Ok(())
    }

    /// Records a named metric (finite). orca-lb's own names are reserved.
    pub fn record_named_metric(&self, name: &str, value: f64) -> Result<(), RecordError> {
        if named_metrics::is_known(name) {
            return Err(reject(RecordError::ReservedName(name.to_string())));
        }
        let v = checked(Field::NamedMetric(name), value)?;
        upsert(&mut self.inner.lock().named_metrics, name, v);
        Ok(())
    }

    pub(crate) fn encode<B: BufMut>(&self, enc: &mut ReportEncoder<'_, B>) {
        let m = self.inner.lock();
        for (k, v) in &m.request_cost {
            enc.request_cost(k, *v);
        }
        for (k, v) in &m.utilization {
            enc.utilization(k, *v);
        }
        for (k, v) in &m.named_metrics {
            enc.named_metric(k, *v);
        }
    }
}

fn upsert(entries: &mut Vec<(Box<str>, f64)>, name: &str, v: f64) {
    match entries.iter_mut().find(|(n, _)| &**n == name) {
        Some((_, value)) => *value = v,
        None => entries.push((name.into(), v)),
    }
}
