//! One call on one endpoint, from pick to outcome.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;

use orca_lb_core::Outcome;
use orca_lb_proto::grpc_status;

use crate::endpoint::Endpoint;
use crate::local_calls::CallMark;
use crate::report::report_in;
use crate::shared::Shared;

/// Counts a call in its endpoint's local load from the pick until its outcome
/// is known, and feeds the outcome, latency and load report back. If dropped
/// first (the caller went away), it releases the call without an outcome.
///
/// A unary call's duration, from its first pick to its status, goes into the
/// balancer's `orca_lb_client_call_duration_seconds` once: when the call
/// ends, not when an attempt re-picked elsewhere does, and not when the
/// caller drops it.
#[derive(Debug)]
pub(crate) struct CallGuard {
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    /// When this attempt was picked: its latency, for the endpoint.
    start: Instant,
    /// When the call's first attempt was picked: its duration, for the
    /// histogram.
    call_start: Instant,
    /// What this call added to its endpoint's local load.
    mark: CallMark,
    stream: bool,
    probe: bool,
    /// The attempt's outcome was fed back.
    done: bool,
    /// The call's duration was recorded, or will not be.
    timed: bool,
}

impl CallGuard {
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        shared: Arc<Shared>,
        stream: bool,
        probe: bool,
        now: Instant,
    ) -> Self {
        let mark = endpoint.start_call(stream, now);
        Self {
            endpoint,
            shared,
            start: now,
            call_start: now,
            mark,
            stream,
            probe,
            done: false,
            timed: false,
        }
    }

    /// This attempt carries on the call `failed` started, whose attempt
    /// never reached a server: the call's duration counts from its first
    /// pick.
    pub(crate) fn continuing(mut self, failed: &CallGuard) -> Self {
        self.call_start = failed.call_start;
        self
    }

    /// When the call's first attempt was picked.
    pub(crate) fn call_start(&self) -> Instant {
        self.call_start
    }

    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn is_stream(&self) -> bool {
        self.stream
    }

    /// The call ended with these trailers (or trailers-only headers).
    ///
    /// A stream its server ended at its max age (the
    /// [`STREAM_ENDED_TRAILER`](orca_lb_proto::STREAM_ENDED_TRAILER)
    /// trailer) succeeded, whatever its status: the server ended a healthy
    /// stream on purpose, for its caller to open it again elsewhere.
    pub(crate) fn finish_with(&mut self, trailers: &HeaderMap) {
        let outcome = match grpc_status(trailers) {
            _ if self.stream && ended_at_max_age(trailers) => Outcome::Success,
            Some(code) if self.shared.config.failure_codes.contains(&code) => Outcome::Failure,
            Some(_) => Outcome::Success,
            // A gRPC response always ends with a status.
            None => Outcome::Failure,
        };
        self.finish(outcome, Some(trailers));
    }

    /// The call ended with `outcome`, carrying `trailers` if any.
    pub(crate) fn finish(&mut self, outcome: Outcome, trailers: Option<&HeaderMap>) {
        if self.done && self.timed {
            return;
        }
        let now = tokio::time::Instant::now().into_std();
        self.end_attempt(outcome, trailers, now);
        self.end_call(outcome, now);
    }

    /// This attempt failed with `outcome` without reaching a server, and the
    /// call may go on elsewhere: feeds the outcome back, and leaves the
    /// call's duration to whichever attempt ends it ([`finish`](Self::finish)
    /// on this one if no other is made).
    pub(crate) fn finish_attempt(&mut self, outcome: Outcome) {
        let now = tokio::time::Instant::now().into_std();
        self.end_attempt(outcome, None, now);
    }

    /// This attempt was handed back unserved by its server, with these
    /// trailers-only headers, and the call goes on elsewhere: releases it
    /// and feeds the report back, but no outcome or latency (the server
    /// did nothing wrong, and did no work); the call's duration is left to
    /// the attempt that ends it.
    pub(crate) fn finish_handed_back(&mut self, headers: &HeaderMap) {
        let now = tokio::time::Instant::now().into_std();
        self.end_attempt(Outcome::Cancelled, Some(headers), now);
    }

    /// Records the call's duration, once, for a unary call that ended with a
    /// status or an error (not one the caller dropped). One histogram
    /// sample into a handle registered with the balancer: no allocation, no
    /// lock of orca-lb's.
    fn end_call(&mut self, outcome: Outcome, now: Instant) {
        if std::mem::replace(&mut self.timed, true) {
            return;
        }
        if self.stream || outcome == Outcome::Cancelled {
            return;
        }
        let duration = now.saturating_duration_since(self.call_start);
        self.shared
            .metrics
            .call_duration
            .record(duration.as_secs_f64());
    }

    /// Feeds this attempt's outcome, latency and report back, once.
    fn end_attempt(&mut self, outcome: Outcome, trailers: Option<&HeaderMap>, now: Instant) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // Release this call first: a report counts the client's other calls.
        self.endpoint.end_call(self.mark);
        match trailers.and_then(report_in) {
            Some(Ok(report)) => self.shared.set.on_report(&self.endpoint, &report, now),
            Some(Err(e)) => self
                .endpoint
                .on_invalid_report(&self.shared.config.target, &e),
            None => {}
        }
        // Stream lifetimes say nothing about service time.
        let latency = (!self.stream).then(|| now.saturating_duration_since(self.start));
        self.shared
            .set
            .on_outcome(&self.endpoint, outcome, latency, self.probe, now);
    }
}

/// Whether `trailers` say the server ended the stream at its max age.
fn ended_at_max_age(trailers: &HeaderMap) -> bool {
    trailers
        .get(orca_lb_proto::STREAM_ENDED_TRAILER)
        .is_some_and(|v| v.as_bytes() == orca_lb_proto::STREAM_ENDED_MAX_AGE.as_bytes())
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, None);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn only_the_max_age_trailer_marks_a_stream_ended_by_its_server() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("14"));
        assert!(!ended_at_max_age(&trailers), "a plain UNAVAILABLE");
        trailers.insert(
            orca_lb_proto::STREAM_ENDED_TRAILER,
            HeaderValue::from_static("something-else"),
        );
        assert!(!ended_at_max_age(&trailers), "another reason");
        trailers.insert(
            orca_lb_proto::STREAM_ENDED_TRAILER,
            HeaderValue::from_static(orca_lb_proto::STREAM_ENDED_MAX_AGE),
        );
        assert!(ended_at_max_age(&trailers));
    }
}
