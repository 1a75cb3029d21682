//! Building the `endpoint-load-metrics-bin` header value.

use std::cell::RefCell;
use std::time::Instant;

use crate::call_recorder::CallRecorder;
use crate::report_budget::BoundedReport;
use crate::tracker::LoadTracker;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The per-call report key, as a header name.
pub(crate) static TRAILER: HeaderName = HeaderName::from_static(orca_lb_proto::TRAILER_KEY);

thread_local! {
    /// Scratch space for the protobuf bytes, reused across calls on a thread.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// The report for a call ending now, base64-encoded without padding as gRPC
/// sends binary metadata. Allocates once: the value itself. `None` when there
/// is nothing to send (never an empty value).
pub(crate) fn report_value(
    tracker: &LoadTracker,
    call: Option<&CallRecorder>,
    now: Instant,
) -> Option<HeaderValue> {
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        let mut report = BoundedReport::new(buf, tracker);
        tracker.encode(now, &mut report);
        if let Some(call) = call {
            call.encode(&mut report);
        }
        if report.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(base64::encoded_len(buf.len(), false)?);
        STANDARD_NO_PAD.encode_string(buf.as_slice(), &mut out);
        HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
    })
}

/// Adds the report to a trailer (or trailers-only header) map.
pub(crate) fn insert_report(
    headers: &mut HeaderMap,
    tracker: &LoadTracker,
    call: Option<&CallRecorder>,
    now: Instant,
) {
    if let Some(v) = report_value(tracker, call, now) {
        headers.insert(TRAILER.clone(), v);
    }
}
