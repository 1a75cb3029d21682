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
#[derive(Debug)]
pub(crate) struct CallGuard {
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    start: Instant,
    /// What this call added to its endpoint's local load.
    mark: CallMark,
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
        let mark = endpoint.start_call(stream, now);
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
            Some(code) if self.shared.config.failure_codes.contains(&code) => Outcome::Failure,
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

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, None);
    }
}
