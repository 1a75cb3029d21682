//! Building the `endpoint-load-metrics-bin` header value.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::call_recorder::CallRecorder;
use crate::report_budget::BoundedReport;
use crate::tracker::LoadTracker;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The per-call report key, as a header name.
pub(crate) static TRAILER: HeaderName = HeaderName::from_static(orca_lb_proto::TRAILER_KEY);

/// The base64 text of reports is written into blocks of this size, one
/// block per thread at a time, and each value is split off the block: a
/// value shares its block, so a call allocates nothing until its thread's
/// block is full (once every hundred or so calls). Then the thread goes
/// back to its previous block if every value cut from it has been dropped
/// (its trailers have been written to their connections), and allocates a
/// new one only if not. A block is freed when the thread has moved on from
/// it and its last value is dropped.
const TEXT_BLOCK: usize = 16 * 1024;

/// How many times in a row a thread sends the same report before it lets
/// HTTP/2 add the value to its header table (see [`Scratch::value`]).
const INDEXED_AFTER: u32 = 2;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What one thread reuses from one report to the next.
#[derive(Default)]
struct Scratch {
    /// The protobuf bytes of the report being built.
    encoded: Vec<u8>,
    /// The protobuf bytes of the last value made, and that value: a report
    /// equal to the last one (nothing changed in between, as between
    /// samples on an idle server) is sent as the same value, without
    /// encoding it again.
    last_encoded: Vec<u8>,
    last_value: Option<HeaderValue>,
    /// What the last value was made from, for reusing it (see
    /// [`ReportingConfig::report_reuse`](crate::ReportingConfig::report_reuse)).
    made: Option<Made>,
    /// How many times the last value was sent again after it was made.
    repeats: u32,
    /// The rest of the current text block.
    text: BytesMut,
    /// The end of the previous text block, to take it up again once the
    /// values cut from it are gone.
    previous: BytesMut,
}

/// The tracker and the state a value was made from, and when.
#[derive(Debug, Clone, Copy)]
struct Made {
    tracker: u64,
    generation: u64,
    at: Instant,
}

impl Made {
    fn of(tracker: &LoadTracker, at: Instant) -> Self {
        Self {
            tracker: tracker.id(),
            generation: tracker.generation(),
            at,
        }
    }

    /// Whether a value made as `self` may go out again as `now` says.
    fn still_holds(&self, now: &Made, reuse: Duration) -> bool {
        self.tracker == now.tracker
            && self.generation == now.generation
            && now.at.saturating_duration_since(self.at) < reuse
    }
}

impl Scratch {
    /// The last value, sent once more.
    fn repeat(&mut self) -> Option<HeaderValue> {
        let last = self.last_value.as_mut()?;
        self.repeats = self.repeats.saturating_add(1);
        if self.repeats == INDEXED_AFTER {
            last.set_sensitive(false);
        }
        Some(last.clone())
    }

    /// The value for the report in `self.encoded`.
    ///
    /// A new value is marked sensitive, so HPACK sends it as a literal that
    /// is never indexed: under load nearly every report is new (the calls in
    /// flight differ), and adding each to the connection's header table, on
    /// both ends, would only evict the entries that do repeat, such as the
    /// status. A value this thread sends [`INDEXED_AFTER`] times in a row is
    /// steady (a server whose load holds, at the precision reports carry),
    /// so from then on HPACK may add it to the table, and sends it as an
    /// index of a byte or two from the next time on: neither end encodes or
    /// decodes its text again. (A sensitive value that is already in the
    /// table goes as its index too.)
    fn value(&mut self) -> Option<HeaderValue> {
        if self.last_value.is_some() && self.last_encoded == self.encoded {
            return self.repeat();
        }
        let len = base64::encoded_len(self.encoded.len(), false)?;
        if self.text.capacity() < len {
            self.next_block(len);
        }
        self.text.resize(len, 0);
        STANDARD_NO_PAD
            .encode_slice(self.encoded.as_slice(), &mut self.text[..])
            .ok()?;
        let mut value = HeaderValue::from_maybe_shared(self.text.split().freeze()).ok()?;
        // Never indexed by HPACK: a report is new on nearly every call, so
        // adding it to the connection's header table (on both ends) would
        // only evict the entries that do repeat, such as the status.
        value.set_sensitive(true);
        self.last_encoded.clear();
        self.last_encoded.extend_from_slice(&self.encoded);
        self.last_value = Some(value.clone());
        self.repeats = 0;
        Some(value)
    }

    /// Moves on to a block with room for `len` bytes: the previous one if
    /// nothing cut from it is still in use, else a new one.
    fn next_block(&mut self, len: usize) {
        let size = TEXT_BLOCK.max(len);
        let next = if self.previous.try_reclaim(size) {
            std::mem::take(&mut self.previous)
        } else {
            BytesMut::with_capacity(size)
        };
        self.previous = std::mem::replace(&mut self.text, next);
    }
}

/// Whether a report may be the one its thread made last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Within [`ReportingConfig::report_reuse`](crate::ReportingConfig::report_reuse),
    /// if nothing it reads changed meanwhile and the call recorded nothing.
    Allowed,
    /// A new report, made now: for calls the layer refuses or ends, whose
    /// report tells the client why.
    Never,
}

/// The report for a call ending now, base64-encoded without padding as gRPC
/// sends binary metadata. `None` when there is nothing to send (never an
/// empty value).
pub(crate) fn report_value(
    tracker: &LoadTracker,
    call: Option<&CallRecorder>,
    now: Instant,
    reuse: Reuse,
) -> Option<HeaderValue> {
    SCRATCH.with_borrow_mut(|scratch| {
        let made = Made::of(tracker, now);
        // Ends the call's recording here if it recorded nothing.
        let recorded = call.filter(|c| !c.end_if_empty());
        if reuse == Reuse::Allowed
            && recorded.is_none()
            && scratch
                .made
                .is_some_and(|last| last.still_holds(&made, tracker.config.report_reuse))
        {
            return scratch.repeat();
        }
        let mut encoded = std::mem::take(&mut scratch.encoded);
        encoded.clear();
        let mut report = BoundedReport::new(&mut encoded, tracker);
        tracker.encode(now, &mut report);
        if let Some(call) = recorded {
            call.encode(&mut report);
        }
        let empty = report.is_empty();
        scratch.encoded = encoded;
        if empty {
            // Nothing to send, and nothing to send again either.
            scratch.made = None;
            return None;
        }
        let value = scratch.value();
        // A value made with the call's own entries is that call's alone.
        scratch.made = (value.is_some() && recorded.is_none()).then_some(made);
        value
    })
}

/// Adds the report for a call ending now to `headers` (trailers, or the
/// headers of a trailers-only response).
pub(crate) fn insert_report(
    headers: &mut HeaderMap,
    tracker: &LoadTracker,
    call: Option<&CallRecorder>,
    now: Instant,
    reuse: Reuse,
) {
    if let Some(v) = report_value(tracker, call, now, reuse) {
        headers.insert(TRAILER.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(reuse: Duration) -> std::sync::Arc<LoadTracker> {
        let config = crate::ReportingConfig::default().with_report_reuse(reuse);
        let load = crate::sampler::SystemLoad {
            cpu_utilization: 0.25,
            mem_utilization: 0.5,
        };
        std::sync::Arc::new(LoadTracker::new(
            config,
            crate::StreamingMethods::default(),
            load,
            Instant::now(),
        ))
    }

    fn mentions(value: &HeaderValue, name: &str) -> bool {
        decode(value)
            .windows(name.len())
            .any(|w| w == name.as_bytes())
    }

    #[test]
    fn a_report_goes_out_again_within_report_reuse_while_nothing_else_changed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let tracker = tracker(ms);
        let first = report_value(&tracker, None, t0, Reuse::Allowed).expect("report");
        // Calls come and go: the count in the report is a moment old.
        tracker.call_started(false);
        let again = report_value(&tracker, None, t0 + ms / 2, Reuse::Allowed).expect("report");
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        // Made anew: past the interval, when asked to, and when something
        // other than the calls changed.
        let later = report_value(&tracker, None, t0 + ms, Reuse::Allowed).expect("report");
        assert_ne!(decode(&later), decode(&first), "in flight: 1");
        tracker.call_started(false);
        let refused = report_value(&tracker, None, t0 + ms, Reuse::Never).expect("report");
        assert_ne!(decode(&refused), decode(&later), "in flight: 2");
        tracker.call_started(false);
        tracker.set_named("load", 0.5).unwrap();
        let set = report_value(&tracker, None, t0 + ms, Reuse::Allowed).expect("report");
        assert!(mentions(&set, "load"));
        // Another layer's tracker never gets this one's report.
        let other = self::tracker(ms);
        let theirs = report_value(&other, None, t0 + ms, Reuse::Allowed).expect("report");
        assert!(!mentions(&theirs, "load"));
    }

    #[test]
    fn a_call_that_recorded_entries_gets_a_report_of_its_own() {
        let t0 = Instant::now();
        let tracker = tracker(Duration::from_secs(1));
        let plain = report_value(&tracker, None, t0, Reuse::Allowed).expect("report");
        let call = CallRecorder::new(&tracker);
        call.record_request_cost("db_reads", 2.0).unwrap();
        let own = report_value(&tracker, Some(&call), t0, Reuse::Allowed).expect("report");
        assert!(mentions(&own, "db_reads"));
        // Its report was written: it takes nothing more.
        assert_eq!(
            call.record_request_cost("late", 1.0),
            Err(crate::RecordError::CallEnded)
        );
        // The next call, which recorded nothing, does not get it.
        let quiet = CallRecorder::new(&tracker);
        let next = report_value(&tracker, Some(&quiet), t0, Reuse::Allowed).expect("report");
        assert!(!mentions(&next, "db_reads"));
        assert_eq!(decode(&next), decode(&plain));
        // A call that recorded nothing ends its recording all the same.
        assert_eq!(
            quiet.record_request_cost("late", 1.0),
            Err(crate::RecordError::CallEnded)
        );
    }

    fn scratch_with(encoded: &[u8]) -> Scratch {
        let mut s = Scratch::default();
        s.encoded.extend_from_slice(encoded);
        s
    }

    fn decode(value: &HeaderValue) -> Vec<u8> {
        STANDARD_NO_PAD.decode(value.as_bytes()).expect("base64")
    }

    #[test]
    fn values_cut_from_one_block_stay_intact() {
        let mut s = scratch_with(b"first report");
        let first = s.value().expect("value");
        s.encoded.clear();
        s.encoded.extend_from_slice(b"second, longer report");
        let second = s.value().expect("value");
        assert_eq!(decode(&first), b"first report");
        assert_eq!(decode(&second), b"second, longer report");
    }

    #[test]
    fn an_unchanged_report_is_sent_as_the_same_value() {
        let mut s = scratch_with(b"same");
        let a = s.value().expect("value");
        let b = s.value().expect("value");
        assert_eq!(a, b);
        assert!(
            a.is_sensitive() && b.is_sensitive(),
            "new reports stay out of the HPACK table"
        );
        // The same bytes, not a second copy cut from the block.
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
        // Sent again and again: steady, so it may be indexed.
        let c = s.value().expect("value");
        let d = s.value().expect("value");
        assert_eq!(a.as_bytes().as_ptr(), d.as_bytes().as_ptr());
        assert!(!c.is_sensitive() && !d.is_sensitive());
        s.encoded.push(b'!');
        let e = s.value().expect("value");
        assert_eq!(decode(&e), b"same!");
        assert_ne!(a.as_bytes().as_ptr(), e.as_bytes().as_ptr());
        assert!(e.is_sensitive(), "a new report starts over");
    }

    /// The i-th of a series of distinct reports.
    fn next_report(s: &mut Scratch, i: u32) -> HeaderValue {
        s.encoded.clear();
        s.encoded.extend_from_slice(&i.to_le_bytes());
        s.encoded.extend_from_slice(&[7; 40]);
        s.value().expect("value")
    }

    /// Makes `n` distinct reports, keeping them while `keep`, and returns
    /// where each block they started began.
    fn blocks_started(s: &mut Scratch, n: u32, keep: bool) -> (Vec<usize>, Vec<HeaderValue>) {
        let mut starts = Vec::new();
        let mut kept = Vec::new();
        for i in 0..n {
            let room = s.text.capacity();
            let value = next_report(s, i);
            if s.text.capacity() > room {
                starts.push(value.as_bytes().as_ptr() as usize);
            }
            if keep {
                kept.push(value);
            }
        }
        (starts, kept)
    }

    #[test]
    fn a_block_whose_values_are_gone_is_used_again() {
        let mut s = Scratch::default();
        let per_block = (TEXT_BLOCK / base64::encoded_len(44, false).unwrap()) as u32;
        // Values dropped as they go, as trailers are written: the thread
        // goes back and forth between two blocks.
        let (starts, _) = blocks_started(&mut s, 10 * per_block, false);
        assert!(starts.len() >= 9, "{starts:?}");
        let mut distinct = starts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "{starts:?}");
        // Values still held keep their blocks: once the two free ones are
        // used up, new ones are taken, and every value reads as written.
        let (starts, kept) = blocks_started(&mut s, 3 * per_block, true);
        assert!(starts.len() >= 2, "{starts:?}");
        assert!(!distinct.contains(starts.last().unwrap()), "{starts:?}");
        for (i, v) in kept.iter().enumerate() {
            assert_eq!(&decode(v)[..4], &(i as u32).to_le_bytes());
        }
    }

    #[test]
    fn a_full_block_is_replaced_and_a_report_larger_than_a_block_fits() {
        let mut s = Scratch::default();
        let mut values = Vec::new();
        // Enough distinct reports to fill several blocks.
        for i in 0..2_000u32 {
            s.encoded.clear();
            s.encoded.extend_from_slice(&i.to_le_bytes());
            s.encoded.extend_from_slice(&[7; 40]);
            values.push((i, s.value().expect("value")));
        }
        for (i, v) in &values {
            let bytes = decode(v);
            assert_eq!(&bytes[..4], &i.to_le_bytes());
        }
        s.encoded = vec![9; TEXT_BLOCK * 2];
        let big = s.value().expect("value");
        assert_eq!(decode(&big), vec![9; TEXT_BLOCK * 2]);
    }
}
