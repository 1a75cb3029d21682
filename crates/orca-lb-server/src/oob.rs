//! The out-of-band `xds.service.orca.v3.OpenRcaService`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use orca_lb_proto::pb::open_rca_service_server::OpenRcaService;
use orca_lb_proto::pb::{OrcaLoadReport, OrcaLoadReportRequest};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::LoadRecorder;
use crate::tracker::LoadTracker;

/// Streams a server's load to out-of-band subscribers.
///
/// Each subscriber gets one report at once, then one every
/// `max(report_interval, min_oob_interval)`; a request without an interval
/// gets the minimum. Reports carry the server-wide state (no per-call
/// metrics). Subscribers read the shared load state: a thousand of them still
/// cost one sampler. A stream ends when its client goes away. Beyond
/// `max_oob_subscribers` at once, subscriptions are refused with
/// `RESOURCE_EXHAUSTED` and counted.
#[derive(Debug, Clone)]
pub struct OrcaService {
    recorder: LoadRecorder,
}

impl OrcaService {
    /// A service reporting the load recorded by `recorder`.
    pub fn new(recorder: LoadRecorder) -> Self {
        Self { recorder }
    }

    /// The interval a subscriber asking for `requested` gets.
    pub fn interval_for(
        &self,
        requested: Option<&prost_types::Duration>,
    ) -> Result<Duration, Status> {
        let min = self.recorder.tracker().config.min_oob_interval;
        let requested = match requested {
            None => Duration::ZERO,
            Some(d) => Duration::try_from(*d).map_err(|_| {
                Status::invalid_argument(format!(
                    "report_interval must be a non-negative duration, got {}s {}ns",
                    d.seconds, d.nanos
                ))
            })?,
        };
        Ok(requested.max(min))
    }
}

#[tonic::async_trait]
impl OpenRcaService for OrcaService {
    type StreamCoreMetricsStream = ReportStream;

    async fn stream_core_metrics(
        &self,
        request: Request<OrcaLoadReportRequest>,
    ) -> Result<Response<ReportStream>, Status> {
        let period = self.interval_for(request.get_ref().report_interval.as_ref())?;
        let tracker = self.recorder.tracker();
        if !tracker.try_oob_subscribe() {
            tracker.metrics.refused_oob_subscribers.increment(1);
            return Err(Status::resource_exhausted(format!(
                "too many out-of-band subscribers (at most {})",
                tracker.config.max_oob_subscribers
            )));
        }
        tracing::debug!(?period, "out-of-band load reporting stream opened");
        Ok(Response::new(ReportStream::new(tracker.clone(), period)))
    }
}

/// The stream of reports one subscriber receives.
#[derive(Debug)]
pub struct ReportStream {
    tracker: Arc<LoadTracker>,
    interval: Interval,
}

impl ReportStream {
    /// A stream for a subscriber already counted by `try_oob_subscribe`.
    fn new(tracker: Arc<LoadTracker>, period: Duration) -> Self {
        // The first tick completes at once: a report goes out immediately.
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { tracker, interval }
    }
}

impl Drop for ReportStream {
    fn drop(&mut self) {
        self.tracker.oob_unsubscribed();
    }
}

impl Stream for ReportStream {
    type Item = Result<OrcaLoadReport, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let at = ready!(self.interval.poll_tick(cx));
        let raw = self.tracker.raw_report(at.into_std());
        Poll::Ready(Some(Ok(raw.into())))
    }
}
