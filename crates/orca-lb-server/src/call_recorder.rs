//! Per-call metrics a handler adds to its own call's report.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use orca_lb_core::{Field, named_metrics};
use parking_lot::Mutex;

use crate::RecordError;
use crate::current_call;
use crate::refusal_log::Source;
use crate::report_budget::{BoundedReport, Entries, STANDARD_FIELDS_BYTES, set_within};
use crate::tracker::LoadTracker;

/// Records metrics for one call, sent in that call's
/// `endpoint-load-metrics-bin` trailer only.
///
/// The layer gives every call one; a handler gets it with
/// [`of`](CallRecorder::of). In a tonic handler:
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
/// A clone records into the same call, from any thread or task, until the
/// call's report is written.
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
    /// Weak, so that a recorder kept for reuse (see [`SPARE`]) does not keep
    /// a dropped layer's tracker, and its sampler task, alive. While the call
    /// is in flight its guard holds the tracker.
    tracker: Weak<LoadTracker>,
    metrics: Mutex<CallMetrics>,
}

/// Recorders of calls that have ended, for the next calls on the same
/// thread: a call whose handler did not keep its recorder gives it back
/// (see [`CallRecorder::recycle`]), so a recorder costs no allocation of its
/// own on the path of most calls.
const SPARE_MAX: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Arc<CallInner>>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug, Default)]
struct CallMetrics {
    request_cost: Entries,
    utilization: Entries,
    named_metrics: Entries,
    /// Encoded size of the entries above.
    bytes: usize,
    /// The call's report has been written: nothing more goes in.
    ended: bool,
}

/// Which map of the report an entry goes to.
#[derive(Clone, Copy)]
enum Map {
    RequestCost,
    Utilization,
    NamedMetric,
}

impl CallMetrics {
    fn clear(&mut self) {
        self.request_cost.clear();
        self.utilization.clear();
        self.named_metrics.clear();
        self.bytes = 0;
        self.ended = false;
    }

    fn is_empty(&self) -> bool {
        self.request_cost.is_empty() && self.utilization.is_empty() && self.named_metrics.is_empty()
    }

    fn map(&mut self, map: Map) -> &mut Entries {
        match map {
            Map::RequestCost => &mut self.request_cost,
            Map::Utilization => &mut self.utilization,
            Map::NamedMetric => &mut self.named_metrics,
        }
    }
}

impl CallRecorder {
    pub(crate) fn new(tracker: &Arc<LoadTracker>) -> Self {
        let spare = SPARE.with_borrow_mut(|spare| match spare.last() {
            Some(inner) if std::ptr::eq(inner.tracker.as_ptr(), Arc::as_ptr(tracker)) => {
                spare.pop()
            }
            _ => None,
        });
        let inner = spare.unwrap_or_else(|| {
            Arc::new(CallInner {
                tracker: Arc::downgrade(tracker),
                metrics: Mutex::new(CallMetrics::default()),
            })
        });
        Self { inner }
    }

    /// Gives the recorder back for reuse by a later call on this thread,
    /// once its call has ended and its report is written. Only a recorder
    /// nobody else holds is kept: a handler that kept a copy keeps it to
    /// itself.
    pub(crate) fn recycle(self) {
        let mut inner = self.inner;
        let Some(unique) = Arc::get_mut(&mut inner) else {
            return;
        };
        unique.metrics.get_mut().clear();
        SPARE.with_borrow_mut(|spare| {
            // One layer's recorders at a time: another layer's are dropped.
            if spare
                .last()
                .is_some_and(|last| !Weak::ptr_eq(&last.tracker, &inner.tracker))
            {
                spare.clear();
            }
            if spare.len() < SPARE_MAX {
                spare.push(inner);
            }
        });
    }

    /// Whether `other` records into the same call.
    #[cfg(test)]
    pub(crate) fn same_call(&self, other: &CallRecorder) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The recorder of the call `request` belongs to, if the reporting layer
    /// (with [`call_recorder`](crate::ReportingConfig::call_recorder) on) is
    /// in front of it.
    ///
    /// Ask from the handler itself: the layer finds the call it is serving on
    /// this thread at that moment, so a task the handler spawns finds none.
    /// Take the recorder first and move it (or a clone) into such a task.
    ///
    /// The same goes for stacks that run the handler's code on a task of
    /// their own, between the layer and the handler: a service that serves
    /// each call on a task it spawns, or a tower `Buffer` in front of a
    /// service that asks in its `call` (a tonic handler behind a `Buffer`
    /// finds its recorder: it runs in the future the buffer hands back to
    /// the layer's task). For those, turn on
    /// [`call_recorder_in_extensions`](crate::ReportingConfig::call_recorder_in_extensions):
    /// the recorder then travels in the request, and is found wherever the
    /// request is, for one allocation per call. The first time a handler
    /// asks where the layer is not serving its call, a warning is logged.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<CallRecorder> {
        current_call::recorder_of(request.extensions())
    }

    /// [`of`](CallRecorder::of), for a tower service below the layer that
    /// handles `http` requests rather than tonic ones.
    pub fn of_http<B>(request: &http::Request<B>) -> Option<CallRecorder> {
        current_call::recorder_of(request.extensions())
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
            if let Some(tracker) = self.inner.tracker.upgrade() {
                tracker.refused(Source::CallRecorder, name, &e);
            }
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
        let Some(tracker) = self.inner.tracker.upgrade() else {
            // The layer is gone, and with it every call and its report.
            return Err(RecordError::CallEnded);
        };
        let result = self.try_record(&tracker, map, field, name, value);
        if let Err(e) = &result {
            tracker.refused(Source::CallRecorder, name, e);
        }
        result
    }

    fn try_record(
        &self,
        tracker: &LoadTracker,
        map: Map,
        field: Field<'_>,
        name: &str,
        value: f64,
    ) -> Result<(), RecordError> {
        tracker.check_name(name)?;
        let v = field.check(value)?;
        let server_wide = tracker.named_bytes();
        let mut m = self.inner.metrics.lock();
        if m.ended {
            return Err(RecordError::CallEnded);
        }
        let used = STANDARD_FIELDS_BYTES + server_wide + m.bytes;
        let max = tracker.config.max_report_bytes;
        m.bytes += set_within(m.map(map), name, v, used, max)?;
        Ok(())
    }

    /// Ends the call's recording if it recorded nothing: `true`, and later
    /// records are refused with [`RecordError::CallEnded`], as after
    /// [`encode`](Self::encode). `false`, changing nothing, if it holds
    /// entries.
    pub(crate) fn end_if_empty(&self) -> bool {
        let mut m = self.inner.metrics.lock();
        if m.is_empty() {
            m.ended = true;
            true
        } else {
            false
        }
    }

    /// Writes the call's entries into its report; later records are
    /// refused with [`RecordError::CallEnded`].
    pub(crate) fn encode(&self, report: &mut BoundedReport<'_>) {
        let mut m = self.inner.metrics.lock();
        m.ended = true;
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
