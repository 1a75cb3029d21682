//! Keeping an encoded report within `max_report_bytes`.

use orca_lb_proto::encode::{ReportEncoder, map_entry_len};

use crate::RecordError;
use crate::refusal_log::Source;
use crate::tracker::LoadTracker;

/// Room kept for the fields every report carries: five doubles and
/// orca-lb's own five named metrics, about 230 bytes at most.
pub(crate) const STANDARD_FIELDS_BYTES: usize = 256;

/// Application entries of one report map, as the server and a call's
/// recorder hold them until a report is encoded.
pub(crate) type Entries = Vec<(Box<str>, f64)>;

/// Sets `name` to `v` in `entries`, or adds it if a report with `used` bytes
/// already taken still has room for it within `max_report_bytes`. Returns
/// the bytes added (0 when `name` was there already).
pub(crate) fn set_within(
    entries: &mut Entries,
    name: &str,
    v: f64,
    used: usize,
    max_report_bytes: usize,
) -> Result<usize, RecordError> {
    if let Some((_, value)) = entries.iter_mut().find(|(n, _)| &**n == name) {
        *value = v;
        return Ok(0);
    }
    let len = map_entry_len(name);
    if used + len > max_report_bytes {
        return Err(RecordError::ReportFull {
            max: max_report_bytes,
        });
    }
    entries.push((name.into(), v));
    Ok(len)
}

/// A report being encoded into a buffer, with a size limit that application
/// entries must fit in. The standard fields are written without a check
/// (they are bounded, and always sent); each application entry goes in only
/// if it fits, and one that does not is counted and logged as dropped.
#[derive(Debug)]
pub(crate) struct BoundedReport<'a> {
    buf: &'a mut Vec<u8>,
    tracker: &'a LoadTracker,
}

impl<'a> BoundedReport<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>, tracker: &'a LoadTracker) -> Self {
        Self { buf, tracker }
    }

    /// An encoder for the standard fields, which are always written.
    pub(crate) fn standard(&mut self) -> ReportEncoder<'_, Vec<u8>> {
        ReportEncoder::new(self.buf)
    }

    /// Whether nothing was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn fits(&self, name: &str) -> bool {
        let max = self.tracker.config.max_report_bytes;
        if self.buf.len() + map_entry_len(name) <= max {
            return true;
        }
        self.tracker
            .refused(Source::Report, name, &RecordError::ReportFull { max });
        false
    }

    /// A `named_metrics` entry, if it fits.
    pub(crate) fn named_metric(&mut self, name: &str, v: f64) {
        if self.fits(name) {
            ReportEncoder::new(self.buf).named_metric(name, v);
        }
    }

    /// A `request_cost` entry, if it fits.
    pub(crate) fn request_cost(&mut self, name: &str, v: f64) {
        if self.fits(name) {
            ReportEncoder::new(self.buf).request_cost(name, v);
        }
    }

    /// A `utilization` entry, if it fits.
    pub(crate) fn utilization(&mut self, name: &str, v: f64) {
        if self.fits(name) {
            ReportEncoder::new(self.buf).utilization(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use orca_lb_core::load_model::LoadSnapshot;
    use orca_lb_core::named_metrics;

    use super::*;
    use crate::snapshot_encoding::encode_snapshot;

    #[test]
    fn the_standard_fields_fit_in_their_reserve() {
        // Every field at its largest encoding: all present, nothing zero.
        let snapshot = LoadSnapshot {
            cpu_utilization: 1.0,
            mem_utilization: 1.0,
            application_utilization: 1.0,
            rps: 1.0,
            eps: 1.0,
            queue_depth: usize::MAX,
            in_flight: usize::MAX,
            active_streams: usize::MAX,
            capacity: Some(usize::MAX),
            service_time_ms: Some(1.0),
        };
        let mut buf = Vec::new();
        encode_snapshot(&snapshot, &mut ReportEncoder::new(&mut buf));
        assert!(
            buf.len() <= STANDARD_FIELDS_BYTES,
            "{} bytes for {:?}",
            buf.len(),
            named_metrics::QUEUE_DEPTH
        );
    }
}
