//! The RAII guard that counts one call from arrival to its last frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tonic::Code;

use crate::tracker::LoadTracker;

/// Counts one call as in flight (and as a stream, for streaming methods) from
/// the moment the layer sees it until [`finish`](InFlightCall::finish) or drop.
///
/// It moves from the service into the response future and then into the
/// response body, so a stream counts until its trailers are sent or its body
/// is dropped, as when the client goes away mid-stream.
#[derive(Debug)]
pub(crate) struct InFlightCall {
    tracker: Arc<LoadTracker>,
    stream: bool,
    /// When the call started waiting for a slot, while it waits.
    queued: Option<Instant>,
    service_start: Option<Instant>,
    /// When a unary call's service ended: the instant its report is
    /// written for, since its trailers follow at once.
    service_end: Option<Instant>,
    permit: Option<OwnedSemaphorePermit>,
    finished: bool,
    /// The stream's max age, for a stream that has one.
    max_age: Option<Duration>,
}

impl InFlightCall {
    pub(crate) fn start(tracker: Arc<LoadTracker>, stream: bool) -> Self {
        tracker.call_started(stream);
        Self {
            tracker,
            stream,
            queued: None,
            service_start: None,
            service_end: None,
            permit: None,
            finished: false,
            max_age: None,
        }
    }

    /// Gives the call (a stream) a max age, after which its response body
    /// ends it.
    pub(crate) fn set_max_age(&mut self, age: Option<Duration>) {
        self.max_age = age;
    }

    /// The stream's max age, if it has one.
    pub(crate) fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    pub(crate) fn tracker(&self) -> &Arc<LoadTracker> {
        &self.tracker
    }

    /// The call waits for a worker slot.
    pub(crate) fn enqueue(&mut self, now: Instant) {
        debug_assert!(self.queued.is_none());
        self.queued = Some(now);
        self.tracker.enqueued();
    }

    /// The call starts being served, holding `permit` if slots are limited.
    pub(crate) fn begin_service(&mut self, permit: Option<OwnedSemaphorePermit>, now: Instant) {
        if self.queued.take().is_some() {
            self.tracker.dequeued();
        }
        self.permit = permit;
        if !self.stream {
            self.service_start = Some(now);
        }
    }

    /// The handler produced its response: a unary call's service ends (now:
    /// the clock is read for unary calls only) and its worker slot is freed.
    /// Streams keep counting until their body ends.
    pub(crate) fn end_service(&mut self) {
        if self.service_start.is_some() {
            self.end_service_at(tokio::time::Instant::now().into_std());
        }
        self.permit = None;
    }

    /// [`end_service`](Self::end_service), at `now`.
    pub(crate) fn end_service_at(&mut self, now: Instant) {
        if let Some(start) = self.service_start.take() {
            self.tracker
                .service_ended(now.saturating_duration_since(start));
            self.service_end = Some(now);
        }
        self.permit = None;
    }

    /// The instant the call's report is written for: when its service ended
    /// for a unary call, whose trailers come right after; now for a stream.
    pub(crate) fn report_time(&self) -> Instant {
        self.service_end
            .unwrap_or_else(|| tokio::time::Instant::now().into_std())
    }

    /// The call is over, with this `grpc-status`.
    ///
    /// `None` means no status was seen: the client went away (a cancelled
    /// call, or a deadline that ran out on the client's side) and the server
    /// dropped the call. A stream that ends so is a normal ending, counted but
    /// not as an error. A unary call dropped while it waited for a slot or
    /// while its handler ran is counted as an error, since its caller got
    /// none of what it asked for, and the time its handler ran counts as busy:
    /// an overloaded backend whose calls run out of time must look busy and
    /// failing to the balancers that read its reports, not idle and healthy.
    pub(crate) fn finish(&mut self, status: Option<Code>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let abandoned = status.is_none() && (self.queued.is_some() || self.service_start.is_some());
        if self.queued.take().is_some() {
            self.tracker.dequeued();
        }
        if let Some(start) = self.service_start.take() {
            let now = tokio::time::Instant::now().into_std();
            self.tracker
                .service_abandoned(now.saturating_duration_since(start));
        }
        self.permit = None;
        let failed = abandoned || matches!(status, Some(code) if code != Code::Ok);
        self.tracker.call_finished(self.stream, failed);
    }
}

impl InFlightCall {
    /// The call leaves unserved, handed back before it queued or ran: no
    /// longer in flight, and counted in neither the request rate nor the
    /// error rate, since another backend serves it.
    pub(crate) fn finish_unserved(&mut self) {
        if self.finished {
            return;
        }
        debug_assert!(self.queued.is_none() && self.service_start.is_none());
        self.finished = true;
        self.permit = None;
        self.tracker.call_released(self.stream);
    }
}

impl Drop for InFlightCall {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sampler::SystemLoad;
    use crate::{ReportingConfig, StreamingMethods};

    fn tracker(now: Instant) -> Arc<LoadTracker> {
        let config = ReportingConfig {
            capacity: Some(1),
            ..ReportingConfig::default()
        };
        let load = SystemLoad {
            cpu_utilization: 0.0,
            mem_utilization: 0.0,
        };
        Arc::new(LoadTracker::new(
            config,
            StreamingMethods::default(),
            load,
            now,
        ))
    }

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[tokio::test(start_paused = true)]
    async fn a_unary_call_dropped_in_its_handler_counts_as_busy_and_failed() {
        let t0 = now();
        let tracker = tracker(t0);
        let mut guard = InFlightCall::start(tracker.clone(), false);
        guard.begin_service(None, t0);
        tokio::time::advance(Duration::from_millis(400)).await;
        drop(guard);

        let rates = tracker.rates(t0 + Duration::from_secs(1));
        assert_eq!(rates.rps, 1.0);
        assert_eq!(rates.eps, 1.0, "the caller got nothing: an error");
        assert!((rates.busy - 0.4).abs() < 1e-9, "busy {}", rates.busy);
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(
            tracker.snapshot(t0).service_time_ms,
            None,
            "a cut-off call's time is not a service time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_unary_call_dropped_while_queued_counts_as_failed() {
        let t0 = now();
        let tracker = tracker(t0);
        let mut guard = InFlightCall::start(tracker.clone(), false);
        guard.enqueue(t0);
        assert_eq!(tracker.queue_depth(), 1);
        drop(guard);

        let rates = tracker.rates(t0 + Duration::from_secs(1));
        assert_eq!((rates.rps, rates.eps, rates.busy), (1.0, 1.0, 0.0));
        assert_eq!(tracker.queue_depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn finished_calls_and_dropped_streams_are_not_errors() {
        let t0 = now();
        let tracker = tracker(t0);

        let mut ok = InFlightCall::start(tracker.clone(), false);
        ok.begin_service(None, t0);
        ok.end_service_at(t0 + Duration::from_millis(100));
        ok.finish(Some(Code::Ok));
        drop(ok);

        // A stream the client walks away from.
        let mut stream = InFlightCall::start(tracker.clone(), true);
        stream.begin_service(None, t0);
        assert_eq!(tracker.active_streams(), 1);
        drop(stream);

        let mut failed = InFlightCall::start(tracker.clone(), false);
        failed.begin_service(None, t0);
        failed.end_service_at(t0);
        failed.finish(Some(Code::Unavailable));

        let rates = tracker.rates(t0 + Duration::from_secs(1));
        assert_eq!((rates.rps, rates.eps), (3.0, 1.0));
        assert!((rates.busy - 0.1).abs() < 1e-9, "busy {}", rates.busy);
        assert_eq!((tracker.in_flight(), tracker.active_streams()), (0, 0));
    }
}
