//! The RAII guard that counts one call from arrival to its last frame.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::tracker::LoadTracker;

/// Counts one call as in flight (and as a stream, for streaming methods) from
/// the moment the layer sees it until [`finish`](CallGuard::finish) or drop.
///
/// It moves from the service into the response future and then into the
/// response body, so a stream counts until its trailers are sent or its body
/// is dropped, as when the client goes away mid-stream.
#[derive(Debug)]
pub(crate) struct CallGuard {
    tracker: Arc<LoadTracker>,
    stream: bool,
    /// When the call started waiting for a slot, while it waits.
    queued: Option<Instant>,
    service_start: Option<Instant>,
    permit: Option<OwnedSemaphorePermit>,
    finished: bool,
}

impl CallGuard {
    pub(crate) fn start(tracker: Arc<LoadTracker>, stream: bool) -> Self {
        tracker.call_started(stream);
        Self {
            tracker,
            stream,
            queued: None,
            service_start: None,
            permit: None,
            finished: false,
        }
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

    /// The handler produced its response: a unary call's service ends and its
    /// worker slot is freed. Streams keep counting until their body ends.
    pub(crate) fn end_service(&mut self, now: Instant) {
        if let Some(start) = self.service_start.take() {
            self.tracker
                .service_ended(now.saturating_duration_since(start), now);
        }
        self.permit = None;
    }

    /// The call is over, with this `grpc-status` (`None`: no status seen,
    /// such as a client that went away; counted, not as an error).
    pub(crate) fn finish(&mut self, status: Option<u16>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.queued.take().is_some() {
            self.tracker.dequeued();
        }
        self.permit = None;
        let failed = matches!(status, Some(code) if code != 0);
        self.tracker.call_finished(self.stream, failed);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}
