//! The server-wide handle through which an application adds to its reports.

use std::sync::Arc;

use orca_lb_core::{Field, LoadReport, named_metrics};
use orca_lb_proto::pb::open_rca_service_server::OpenRcaServiceServer;

use crate::RecordError;
use crate::oob::OrcaService;
use crate::refusal_log::Source;
use crate::tracker::LoadTracker;

/// A handle on one server's load, returned with its
/// [`ReportingLayer`](crate::ReportingLayer).
///
/// Cheap to clone. What it sets goes into every report from then on, per call
/// and out of band, like a `tonic_health` reporter for load. Values out of
/// range, names longer than `max_name_len` and entries that would take the
/// report past `max_report_bytes` are refused and counted
/// (`orca_lb_server_rejected_metrics_total`); they are never sent. The first
/// refusal of each kind is logged, later ones in a summary line a minute.
#[derive(Debug, Clone)]
pub struct LoadRecorder {
    tracker: Arc<LoadTracker>,
}

impl LoadRecorder {
    pub(crate) fn new(tracker: Arc<LoadTracker>) -> Self {
        Self { tracker }
    }

    pub(crate) fn tracker(&self) -> &Arc<LoadTracker> {
        &self.tracker
    }

    /// Sets `application_utilization` (`>= 0`, may exceed 1), replacing the
    /// layer's own estimate.
    pub fn set_application_utilization(&self, value: f64) -> Result<(), RecordError> {
        let result = Field::ApplicationUtilization
            .check(value)
            .map_err(RecordError::from);
        match result {
            Ok(v) => {
                self.tracker.set_app_utilization(v);
                Ok(())
            }
            Err(e) => {
                self.tracker
                    .refused(Source::LoadRecorder, "application_utilization", &e);
                Err(e)
            }
        }
    }

    /// Goes back to the layer's own utilization estimate.
    pub fn clear_application_utilization(&self) {
        self.tracker.set_app_utilization(f64::NAN);
    }

    /// Sets the depth of the application's own queue; it is added to the
    /// layer's queue in `queue_depth`.
    pub fn set_queue_depth(&self, depth: usize) {
        self.tracker.set_app_queue(depth);
    }

    /// Sets a named metric (finite) in every report. orca-lb's own names are
    /// reserved.
    pub fn set_named_metric(&self, name: &str, value: f64) -> Result<(), RecordError> {
        let result = self.try_set_named_metric(name, value);
        if let Err(e) = &result {
            self.tracker.refused(Source::LoadRecorder, name, e);
        }
        result
    }

    fn try_set_named_metric(&self, name: &str, value: f64) -> Result<(), RecordError> {
        if named_metrics::is_known(name) {
            return Err(RecordError::ReservedName(name.to_string()));
        }
        self.tracker.check_name(name)?;
        let v = Field::NamedMetric(name).check(value)?;
        self.tracker.set_named(name, v)
    }

    /// Stops sending a named metric.
    pub fn remove_named_metric(&self, name: &str) {
        self.tracker.remove_named(name);
    }

    /// Calls accepted and not finished, streams included.
    pub fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    /// Streaming calls open now.
    pub fn active_streams(&self) -> usize {
        self.tracker.active_streams()
    }

    /// Calls waiting for a worker slot plus the application's own queue.
    pub fn queue_depth(&self) -> usize {
        self.tracker.queue_depth()
    }

    /// Out-of-band subscribers connected now.
    pub fn oob_subscribers(&self) -> usize {
        self.tracker.oob_subscribers()
    }

    /// The server-wide report as it would be sent out of band now.
    pub fn report(&self) -> LoadReport {
        let raw = self
            .tracker
            .raw_report(tokio::time::Instant::now().into_std());
        LoadReport::try_from(raw).expect("the tracker only holds validated values")
    }

    /// The `xds.service.orca.v3.OpenRcaService` for this server, to add next
    /// to the application's services.
    pub fn oob_service(&self) -> OpenRcaServiceServer<OrcaService> {
        OpenRcaServiceServer::new(OrcaService::new(self.clone()))
    }
}
