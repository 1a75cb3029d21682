//! Allocation-free encoding of `OrcaLoadReport`.
//!
//! A server sends a report on every call, so building a `pb::OrcaLoadReport`
//! (three `HashMap<String, f64>`) per call would cost several allocations.
//! [`ReportEncoder`] writes the same bytes straight into a caller's buffer:
//! the output decodes with any protobuf implementation to the values written.
//!
//! ```
//! use orca_lb_proto::{encode::ReportEncoder, pb::OrcaLoadReport};
//! use prost::Message;
//!
//! let mut buf = Vec::new();
//! ReportEncoder::new(&mut buf)
//!     .application_utilization(0.5)
//!     .rps_fractional(120.0)
//!     .named_metric("queue_depth", 3.0);
//!
//! let report = OrcaLoadReport::decode(buf.as_slice()).unwrap();
//! assert_eq!(report.application_utilization, 0.5);
//! assert_eq!(report.named_metrics["queue_depth"], 3.0);
//! ```

use bytes::BufMut;
use orca_lb_core::LoadReport;

// Field numbers of xds.data.orca.v3.OrcaLoadReport (see docs/orca.md).
const CPU_UTILIZATION: u32 = 1;
const MEM_UTILIZATION: u32 = 2;
const REQUEST_COST: u32 = 4;
const UTILIZATION: u32 = 5;
const RPS_FRACTIONAL: u32 = 6;
const EPS: u32 = 7;
const NAMED_METRICS: u32 = 8;
const APPLICATION_UTILIZATION: u32 = 9;

const WIRE_I64: u32 = 1;
const WIRE_LEN: u32 = 2;

/// Writes an `OrcaLoadReport` field by field into a buffer.
///
/// Scalar fields equal to `0.0` are skipped, as proto3 does: on the wire, zero
/// means "not reported". Map entries are always written. Fields may be written
/// in any order, and a scalar written twice decodes as the last value written.
/// The encoder does not validate: pass values already checked with
/// [`orca_lb_core::Field::check`].
#[derive(Debug)]
pub struct ReportEncoder<'a, B> {
    buf: &'a mut B,
}

impl<'a, B: BufMut> ReportEncoder<'a, B> {
    /// Appends to `buf`.
    pub fn new(buf: &'a mut B) -> Self {
        Self { buf }
    }

    /// `cpu_utilization` (field 1).
    pub fn cpu_utilization(&mut self, v: f64) -> &mut Self {
        self.double(CPU_UTILIZATION, v)
    }

    /// `mem_utilization` (field 2).
    pub fn mem_utilization(&mut self, v: f64) -> &mut Self {
        self.double(MEM_UTILIZATION, v)
    }

    /// One `request_cost` entry (field 4).
    pub fn request_cost(&mut self, name: &str, v: f64) -> &mut Self {
        self.map_entry(REQUEST_COST, name, v)
    }

    /// One `utilization` entry (field 5).
    pub fn utilization(&mut self, name: &str, v: f64) -> &mut Self {
        self.map_entry(UTILIZATION, name, v)
    }

    /// `rps_fractional` (field 6).
    pub fn rps_fractional(&mut self, v: f64) -> &mut Self {
        self.double(RPS_FRACTIONAL, v)
    }

    /// `eps` (field 7).
    pub fn eps(&mut self, v: f64) -> &mut Self {
        self.double(EPS, v)
    }

    /// One `named_metrics` entry (field 8).
    pub fn named_metric(&mut self, name: &str, v: f64) -> &mut Self {
        self.map_entry(NAMED_METRICS, name, v)
    }

    /// `application_utilization` (field 9).
    pub fn application_utilization(&mut self, v: f64) -> &mut Self {
        self.double(APPLICATION_UTILIZATION, v)
    }

    /// Every field of a validated report.
    pub fn report(&mut self, report: &LoadReport) -> &mut Self {
        let raw = report.as_raw();
        self.cpu_utilization(raw.cpu_utilization)
            .mem_utilization(raw.mem_utilization)
            .rps_fractional(raw.rps_fractional)
            .eps(raw.eps)
            .application_utilization(raw.application_utilization);
        for (k, &v) in &raw.request_cost {
            self.request_cost(k, v);
        }
        for (k, &v) in &raw.utilization {
            self.utilization(k, v);
        }
        for (k, &v) in &raw.named_metrics {
            self.named_metric(k, v);
        }
        self
    }

    fn double(&mut self, field: u32, v: f64) -> &mut Self {
        debug_assert!(v.is_finite(), "field {field} = {v}");
        if v != 0.0 {
            put_varint(self.buf, u64::from(field << 3 | WIRE_I64));
            self.buf.put_f64_le(v);
        }
        self
    }

    fn map_entry(&mut self, field: u32, key: &str, v: f64) -> &mut Self {
        debug_assert!(v.is_finite(), "field {field}[{key}] = {v}");
        // Entry message: key (field 1, string), value (field 2, double).
        let key_len = key.len() as u64;
        let entry_len = 1 + varint_len(key_len) + key_len + 1 + 8;
        put_varint(self.buf, u64::from(field << 3 | WIRE_LEN));
        put_varint(self.buf, entry_len);
        put_varint(self.buf, u64::from(1 << 3 | WIRE_LEN));
        put_varint(self.buf, key_len);
        self.buf.put_slice(key.as_bytes());
        put_varint(self.buf, u64::from(2 << 3 | WIRE_I64));
        self.buf.put_f64_le(v);
        self
    }
}

/// The encoded size in bytes of one map entry (`request_cost`,
/// `utilization` or `named_metrics`) named `key`, tag and length included:
/// what writing it adds to a report.
pub fn map_entry_len(key: &str) -> usize {
    let key_len = key.len() as u64;
    let entry_len = 1 + varint_len(key_len) + key_len + 1 + 8;
    (1 + varint_len(entry_len) + entry_len) as usize
}

fn put_varint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn varint_len(v: u64) -> u64 {
    // 7 bits per byte, at least one byte.
    u64::from((64 - (v | 1).leading_zeros()).div_ceil(7))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::OrcaLoadReport;
    use orca_lb_core::RawLoadReport;
    use prost::Message;

    #[test]
    fn matches_prost_for_every_field() {
        let mut raw = RawLoadReport {
            cpu_utilization: 0.25,
            mem_utilization: 0.5,
            rps_fractional: 123.5,
            eps: 1.5,
            application_utilization: 1.75,
            ..Default::default()
        };
        raw.request_cost.insert("db".into(), 3.0);
        raw.utilization.insert("gpu".into(), 0.9);
        raw.named_metrics.insert("queue_depth".into(), 4.0);
        // A key longer than 127 bytes needs a two-byte length.
        raw.named_metrics.insert("k".repeat(200), 0.0);
        let report = LoadReport::try_from(raw).unwrap();

        let mut buf = Vec::new();
        ReportEncoder::new(&mut buf).report(&report);
        let decoded = OrcaLoadReport::decode(buf.as_slice()).unwrap();
        assert_eq!(decoded, OrcaLoadReport::from(report));
    }

    #[test]
    fn zero_scalars_are_omitted() {
        let mut buf = Vec::new();
        ReportEncoder::new(&mut buf).cpu_utilization(0.0).eps(0.0);
        assert!(buf.is_empty());
    }

    #[test]
    fn map_entry_len_is_what_an_entry_adds() {
        for name in ["", "a", &"n".repeat(120), &"n".repeat(200)] {
            let mut buf = Vec::new();
            ReportEncoder::new(&mut buf).named_metric(name, 1.5);
            assert_eq!(
                map_entry_len(name),
                buf.len(),
                "name of {} bytes",
                name.len()
            );
        }
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len() as u64, varint_len(v), "{v}");
            assert_eq!(
                prost::encoding::decode_varint(&mut b.as_slice()).unwrap(),
                v
            );
        }
    }
}
