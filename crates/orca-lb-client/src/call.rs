//! One call on one endpoint, from pick to outcome.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use http::HeaderMap;
use tonic::Code;

use orca_lb_core::Outcome;

use crate::endpoint::Endpoint;
use crate::report::{grpc_status, report_in};
use crate::shared::Shared;

/// Counts a call in its endpoint's local load from the pick until its outcome
/// is known, and feeds the outcome, latency and load report back. If dropped
/// first (the caller went away), it releases the call without an outcome.
#[derive(Debug)]
pub(crate) struct CallGuard {
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    start: Instant,
    /// What this unary call added to its endpoint's in-flight start times.
    mark: u64,
    stream: bool,
    probe: bool,
    done: bool,
}

impl CallGuard {
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        shared: Arc<Shared>,
        stream: bool,
        probe: bool,
        now: Instant,
    ) -> Self {
        let mut mark = 0;
        if stream {
            endpoint.streams.fetch_add(1, Relaxed);
        } else {
            endpoint.in_flight.fetch_add(1, Relaxed);
            mark = endpoint.in_flight_mark(now);
            endpoint.in_flight_started.fetch_add(mark, Relaxed);
        }
        endpoint.picks_total.fetch_add(1, Relaxed);
        endpoint.metrics.picks.increment(1);
        Self {
            endpoint,
            shared,
            start: now,
            mark,
            stream,
            probe,
            done: false,
        }
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
    pub(crate) fn finish_with(&mut self, trailers: &HeaderMap) {
        let outcome = match grpc_status(trailers) {
            Some(code) if self.shared.config.failure_codes.contains(&Code::from(code)) => {
                Outcome::Failure
            }
            Some(_) => Outcome::Success,
            // A gRPC response always ends with a status.
            None => Outcome::Failure,
        };
        self.finish(outcome, Some(trailers));
    }

    /// The call ended with `outcome`, carrying `trailers` if any.
    pub(crate) fn finish(&mut self, outcome: Outcome, trailers: Option<&HeaderMap>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let now = tokio::time::Instant::now().into_std();
        // Release this call first: a report counts the client's other calls.
        if self.stream {
            self.endpoint.streams.fetch_sub(1, Relaxed);
        } else {
            self.endpoint.in_flight.fetch_sub(1, Relaxed);
            self.endpoint
                .in_flight_started
                .fetch_sub(self.mark, Relaxed);
        }
        match trailers.and_then(report_in) {
            Some(Ok(report)) => self.endpoint.on_report(&report, &self.shared, now),
            Some(Err(e)) => self.endpoint.on_invalid_report(&self.shared, &e),
            None => {}
        }
        // Stream lifetimes say nothing about service time.
        let latency = (!self.stream).then(|| now.saturating_duration_since(self.start));
        self.endpoint
            .on_outcome(outcome, latency, self.probe, &self.shared, now);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, None);
    }
}
