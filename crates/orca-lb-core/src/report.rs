//! The validated ORCA load report.

use std::collections::HashMap;
use std::fmt;

use crate::DisplayName;
use crate::named_metrics;

/// The fields of an ORCA `OrcaLoadReport`, as they arrive from the wire or from
/// an application, not yet checked.
///
/// Turn it into a [`LoadReport`] with `LoadReport::try_from(raw)`. As in
/// proto3, a field left at `0.0` means "not reported".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawLoadReport {
    /// Fraction of the available CPU in use; `>= 0`, may exceed 1.
    pub cpu_utilization: f64,
    /// Fraction of the available memory in use, in `[0, 1]`.
    pub mem_utilization: f64,
    /// Deprecated integer requests per second; read only when
    /// `rps_fractional` is absent.
    pub rps: u64,
    /// Per-request absolute costs; finite and `>= 0`.
    pub request_cost: HashMap<String, f64>,
    /// Named utilizations, each in `[0, 1]`.
    pub utilization: HashMap<String, f64>,
    /// Requests per second; `>= 0`.
    pub rps_fractional: f64,
    /// Errors per second; `>= 0`.
    pub eps: f64,
    /// Opaque application metrics; finite. orca-lb's own names (see
    /// [`named_metrics`]) must also be `>= 0`.
    pub named_metrics: HashMap<String, f64>,
    /// Application-defined utilization; `>= 0`, may exceed 1.
    pub application_utilization: f64,
}

/// A load report whose every value is in range.
///
/// Built only through `TryFrom<RawLoadReport>`, so code that holds one never
/// has to check for NaN, infinities, negative values or utilizations above 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    raw: RawLoadReport,
}

/// Which field of a report a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field<'a> {
    /// `cpu_utilization`: `>= 0`, may exceed 1.
    CpuUtilization,
    /// `mem_utilization`: in `[0, 1]`.
    MemUtilization,
    /// `rps_fractional`: `>= 0`.
    RpsFractional,
    /// `eps`: `>= 0`.
    Eps,
    /// `application_utilization`: `>= 0`, may exceed 1.
    ApplicationUtilization,
    /// An entry of `request_cost`: `>= 0`.
    RequestCost(&'a str),
    /// An entry of `utilization`: in `[0, 1]`.
    Utilization(&'a str),
    /// An entry of `named_metrics`: finite; `>= 0` for orca-lb's own names.
    NamedMetric(&'a str),
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// The value is NaN or infinite.
    NotFinite,
    /// The value is below zero.
    Negative,
    /// A utilization that must be in `[0, 1]` is above 1.
    AboveOne,
}

/// A report, or one value meant for one, that is out of range.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidReport {
    field: String,
    value: f64,
    violation: Violation,
}

// === impl Field ===

impl Field<'_> {
    /// Checks `value` against this field's range.
    pub fn check(self, value: f64) -> Result<f64, InvalidReport> {
        let violation = if !value.is_finite() {
            Some(Violation::NotFinite)
        } else if value < 0.0 && self.must_be_non_negative() {
            Some(Violation::Negative)
        } else if value > 1.0 && self.is_fraction() {
            Some(Violation::AboveOne)
        } else {
            None
        };
        match violation {
            None => Ok(value),
            Some(violation) => Err(InvalidReport {
                field: self.to_string(),
                value,
                violation,
            }),
        }
    }

    fn must_be_non_negative(self) -> bool {
        match self {
            Field::NamedMetric(name) => named_metrics::is_known(name),
            _ => true,
        }
    }

    fn is_fraction(self) -> bool {
        matches!(self, Field::MemUtilization | Field::Utilization(_))
    }
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::CpuUtilization => f.write_str("cpu_utilization"),
            Field::MemUtilization => f.write_str("mem_utilization"),
            Field::RpsFractional => f.write_str("rps_fractional"),
            Field::Eps => f.write_str("eps"),
            Field::ApplicationUtilization => f.write_str("application_utilization"),
            Field::RequestCost(name) => write!(f, "request_cost[{}]", DisplayName(name)),
            Field::Utilization(name) => write!(f, "utilization[{}]", DisplayName(name)),
            Field::NamedMetric(name) => write!(f, "named_metrics[{}]", DisplayName(name)),
        }
    }
}

// === impl InvalidReport ===

impl InvalidReport {
    /// The offending field, as `cpu_utilization` or `utilization["gpu"]`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The offending value.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// What is wrong with it.
    pub fn violation(&self) -> Violation {
        self.violation
    }
}

impl fmt::Display for InvalidReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.violation {
            Violation::NotFinite => "is not a finite number",
            Violation::Negative => "is negative",
            Violation::AboveOne => "is above 1",
        };
        write!(
            f,
            "invalid load report: {} = {} {why}",
            self.field, self.value
        )
    }
}

impl std::error::Error for InvalidReport {}

// === impl LoadReport ===

impl TryFrom<RawLoadReport> for LoadReport {
    type Error = InvalidReport;

    fn try_from(raw: RawLoadReport) -> Result<Self, Self::Error> {
        Field::CpuUtilization.check(raw.cpu_utilization)?;
        Field::MemUtilization.check(raw.mem_utilization)?;
        Field::RpsFractional.check(raw.rps_fractional)?;
        Field::Eps.check(raw.eps)?;
        Field::ApplicationUtilization.check(raw.application_utilization)?;
        for (name, &v) in &raw.request_cost {
            Field::RequestCost(name).check(v)?;
        }
        for (name, &v) in &raw.utilization {
            Field::Utilization(name).check(v)?;
        }
        for (name, &v) in &raw.named_metrics {
            Field::NamedMetric(name).check(v)?;
        }
        Ok(LoadReport { raw })
    }
}

impl From<LoadReport> for RawLoadReport {
    fn from(report: LoadReport) -> Self {
        report.raw
    }
}

impl LoadReport {
    /// Fraction of the available CPU in use (0 if not reported).
    pub fn cpu_utilization(&self) -> f64 {
        self.raw.cpu_utilization
    }

    /// Fraction of the available memory in use (0 if not reported).
    pub fn mem_utilization(&self) -> f64 {
        self.raw.mem_utilization
    }

    /// Application-defined utilization (0 if not reported).
    pub fn application_utilization(&self) -> f64 {
        self.raw.application_utilization
    }

    /// Requests per second: `rps_fractional`, or the deprecated integer `rps`
    /// when that is all the backend sent.
    pub fn qps(&self) -> f64 {
        if self.raw.rps_fractional > 0.0 {
            self.raw.rps_fractional
        } else {
            self.raw.rps as f64
        }
    }

    /// Errors per second (0 if not reported).
    pub fn eps(&self) -> f64 {
        self.raw.eps
    }

    /// The utilization gRPC's weighted round robin balances on (gRFC A58):
    /// `application_utilization` when reported, else `cpu_utilization`.
    pub fn effective_utilization(&self) -> f64 {
        if self.raw.application_utilization > 0.0 {
            self.raw.application_utilization
        } else {
            self.raw.cpu_utilization
        }
    }

    /// A named metric, if the report carries it.
    pub fn named_metric(&self, name: &str) -> Option<f64> {
        self.raw.named_metrics.get(name).copied()
    }

    /// A named utilization, if the report carries it.
    pub fn utilization(&self, name: &str) -> Option<f64> {
        self.raw.utilization.get(name).copied()
    }

    /// A per-request cost, if the report carries it.
    pub fn request_cost(&self, name: &str) -> Option<f64> {
        self.raw.request_cost.get(name).copied()
    }

    /// Calls waiting for a worker slot ([`named_metrics::QUEUE_DEPTH`]);
    /// zero when the report carries `in_flight` but no queue depth (orca-lb
    /// servers omit zero counts).
    pub fn queue_depth(&self) -> Option<f64> {
        self.named_metric(named_metrics::QUEUE_DEPTH)
            .or_else(|| self.in_flight().map(|_| 0.0))
    }

    /// Calls in flight on the server ([`named_metrics::IN_FLIGHT`]).
    pub fn in_flight(&self) -> Option<f64> {
        self.named_metric(named_metrics::IN_FLIGHT)
    }

    /// Open streams on the server ([`named_metrics::ACTIVE_STREAMS`]); zero
    /// when the report carries `in_flight` but no stream count.
    pub fn active_streams(&self) -> Option<f64> {
        self.named_metric(named_metrics::ACTIVE_STREAMS)
            .or_else(|| self.in_flight().map(|_| 0.0))
    }

    /// The server's worker slots ([`named_metrics::CAPACITY`]).
    pub fn capacity(&self) -> Option<f64> {
        self.named_metric(named_metrics::CAPACITY)
    }

    /// Smoothed unary service time in milliseconds
    /// ([`named_metrics::SERVICE_TIME_MS`]).
    pub fn service_time_ms(&self) -> Option<f64> {
        self.named_metric(named_metrics::SERVICE_TIME_MS)
    }

    /// All fields, read-only.
    pub fn as_raw(&self) -> &RawLoadReport {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named metric that is not one of orca-lb's own.
    const APP_METRIC: &str = "app.temperature_delta";

    /// One field of each kind, keyed ones with a sample key.
    fn all_fields() -> Vec<Field<'static>> {
        let mut fields = vec![
            Field::CpuUtilization,
            Field::MemUtilization,
            Field::RpsFractional,
            Field::Eps,
            Field::ApplicationUtilization,
            Field::RequestCost("db_queries"),
            Field::Utilization("gpu"),
            Field::NamedMetric(APP_METRIC),
        ];
        fields.extend(named_metrics::ALL.map(Field::NamedMetric));
        fields
    }

    /// A report that is all zero except `value` in `field`.
    fn report_with(field: Field<'_>, value: f64) -> RawLoadReport {
        let mut raw = RawLoadReport::default();
        match field {
            Field::CpuUtilization => raw.cpu_utilization = value,
            Field::MemUtilization => raw.mem_utilization = value,
            Field::RpsFractional => raw.rps_fractional = value,
            Field::Eps => raw.eps = value,
            Field::ApplicationUtilization => raw.application_utilization = value,
            Field::RequestCost(name) => {
                raw.request_cost.insert(name.to_owned(), value);
            }
            Field::Utilization(name) => {
                raw.utilization.insert(name.to_owned(), value);
            }
            Field::NamedMetric(name) => {
                raw.named_metrics.insert(name.to_owned(), value);
            }
        }
        raw
    }

    /// Checks `value` in `field` both on its own and inside a whole report,
    /// and that both agree.
    #[track_caller]
    fn check(field: Field<'_>, value: f64) -> Result<(), InvalidReport> {
        let alone = field.check(value);
        let in_report = LoadReport::try_from(report_with(field, value));
        match (&alone, &in_report) {
            (Ok(v), Ok(report)) => {
                assert!(v.to_bits() == value.to_bits(), "{field}: returned {v}");
                assert_eq!(report.as_raw(), &report_with(field, value));
            }
            // Compared by parts: a NaN value is never `==` to itself.
            (Err(a), Err(b)) => {
                assert_eq!(a.field(), b.field());
                assert_eq!(a.violation(), b.violation(), "{field}");
                assert!(a.value().to_bits() == b.value().to_bits(), "{field}");
            }
            _ => panic!("{field} = {value}: check gave {alone:?}, try_from gave {in_report:?}"),
        }
        alone.map(|_| ())
    }

    #[track_caller]
    fn assert_rejected(field: Field<'_>, value: f64, violation: Violation) {
        let err = check(field, value).expect_err(&format!("{field} = {value} is refused"));
        assert_eq!(err.violation(), violation, "{field} = {value}");
        assert_eq!(err.field(), field.to_string());
        assert!(err.value().to_bits() == value.to_bits(), "{field}");
    }

    #[track_caller]
    fn assert_accepted(field: Field<'_>, value: f64) {
        if let Err(err) = check(field, value) {
            panic!("{field} = {value} is accepted, got: {err}");
        }
    }

    // === Field ===

    #[test]
    fn every_field_rejects_nan_and_infinities() {
        for field in all_fields() {
            for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                assert_rejected(field, value, Violation::NotFinite);
            }
        }
    }

    #[test]
    fn every_field_accepts_zero() {
        for field in all_fields() {
            assert_accepted(field, 0.0);
            assert_accepted(field, -0.0);
        }
    }

    #[test]
    fn negatives_are_rejected_except_in_application_named_metrics() {
        for field in all_fields() {
            for value in [-1.0, -f64::MIN_POSITIVE, f64::MIN] {
                if field == Field::NamedMetric(APP_METRIC) {
                    assert_accepted(field, value);
                } else {
                    assert_rejected(field, value, Violation::Negative);
                }
            }
        }
    }

    #[test]
    fn orca_lb_named_metrics_reject_negatives() {
        for name in named_metrics::ALL {
            assert_rejected(Field::NamedMetric(name), -1.0, Violation::Negative);
            assert_accepted(Field::NamedMetric(name), 12.5);
        }
    }

    #[test]
    fn fractions_reject_above_one() {
        for field in [Field::MemUtilization, Field::Utilization("gpu")] {
            assert_accepted(field, 1.0);
            assert_accepted(field, 0.5);
            assert_rejected(field, 1.0 + f64::EPSILON, Violation::AboveOne);
            assert_rejected(field, 1.5, Violation::AboveOne);
            assert_rejected(field, f64::MAX, Violation::AboveOne);
        }
    }

    #[test]
    fn unbounded_fields_accept_large_values() {
        for field in all_fields() {
            if !matches!(field, Field::MemUtilization | Field::Utilization(_)) {
                assert_accepted(field, 7.0);
                assert_accepted(field, 1e12);
            }
        }
        // Named explicitly: these two are utilizations that may exceed 1.
        assert_accepted(Field::CpuUtilization, 7.0);
        assert_accepted(Field::ApplicationUtilization, 7.0);
    }

    #[test]
    fn check_returns_the_value() {
        assert_eq!(Field::CpuUtilization.check(0.75), Ok(0.75));
        assert_eq!(Field::NamedMetric(APP_METRIC).check(-3.0), Ok(-3.0));
    }

    #[test]
    fn field_display_names_the_proto_field() {
        let cases = [
            (Field::CpuUtilization, "cpu_utilization"),
            (Field::MemUtilization, "mem_utilization"),
            (Field::RpsFractional, "rps_fractional"),
            (Field::Eps, "eps"),
            (Field::ApplicationUtilization, "application_utilization"),
            (Field::RequestCost("db"), r#"request_cost["db"]"#),
            (Field::Utilization("gpu"), r#"utilization["gpu"]"#),
            (
                Field::NamedMetric(named_metrics::QUEUE_DEPTH),
                r#"named_metrics["queue_depth"]"#,
            ),
        ];
        for (field, text) in cases {
            assert_eq!(field.to_string(), text);
        }
    }

    // === InvalidReport ===

    #[test]
    fn error_display_names_field_and_value() {
        let err = LoadReport::try_from(report_with(Field::MemUtilization, 1.5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid load report: mem_utilization = 1.5 is above 1"
        );

        let err = Field::NamedMetric(named_metrics::IN_FLIGHT)
            .check(-2.0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid load report: named_metrics["in_flight"] = -2 is negative"#
        );

        let err = Field::Utilization("gpu").check(f64::NAN).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid load report: utilization["gpu"] = NaN is not a finite number"#
        );
    }

    #[test]
    fn error_is_a_std_error_without_source() {
        let err = Field::Eps.check(-1.0).unwrap_err();
        let err: &dyn std::error::Error = &err;
        assert!(err.source().is_none());
    }

    // === LoadReport ===

    fn full_report() -> RawLoadReport {
        let map = |entries: &[(&str, f64)]| {
            entries
                .iter()
                .map(|&(k, v)| (k.to_owned(), v))
                .collect::<HashMap<_, _>>()
        };
        RawLoadReport {
            cpu_utilization: 1.25,
            mem_utilization: 0.5,
            rps: 40,
            request_cost: map(&[("db_queries", 3.0), ("cpu_ms", 12.5)]),
            utilization: map(&[("gpu", 0.75), ("disk", 1.0)]),
            rps_fractional: 41.5,
            eps: 0.25,
            named_metrics: map(&[
                (named_metrics::QUEUE_DEPTH, 4.0),
                (named_metrics::IN_FLIGHT, 9.0),
                (named_metrics::ACTIVE_STREAMS, 2.0),
                (named_metrics::CAPACITY, 8.0),
                (named_metrics::SERVICE_TIME_MS, 17.5),
                (APP_METRIC, -0.5),
            ]),
            application_utilization: 0.625,
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let raw = full_report();
        let report = LoadReport::try_from(raw.clone()).unwrap();
        assert_eq!(report.as_raw(), &raw);
        assert_eq!(RawLoadReport::from(report), raw);
    }

    #[test]
    fn empty_report_is_valid() {
        let report = LoadReport::try_from(RawLoadReport::default()).unwrap();
        assert_eq!(report, LoadReport::default());
        assert_eq!(report.qps(), 0.0);
        assert_eq!(report.effective_utilization(), 0.0);
        assert_eq!(report.queue_depth(), None);
    }

    #[test]
    fn one_bad_entry_rejects_the_whole_report() {
        let mut raw = full_report();
        raw.utilization.insert("gpu".to_owned(), 1.5);
        let err = LoadReport::try_from(raw).unwrap_err();
        assert_eq!(err.field(), r#"utilization["gpu"]"#);
        assert_eq!(err.violation(), Violation::AboveOne);
    }

    #[test]
    fn accessors_read_their_fields() {
        let report = LoadReport::try_from(full_report()).unwrap();
        assert_eq!(report.cpu_utilization(), 1.25);
        assert_eq!(report.mem_utilization(), 0.5);
        assert_eq!(report.application_utilization(), 0.625);
        assert_eq!(report.eps(), 0.25);
        assert_eq!(report.utilization("gpu"), Some(0.75));
        assert_eq!(report.utilization("tpu"), None);
        assert_eq!(report.request_cost("cpu_ms"), Some(12.5));
        assert_eq!(report.request_cost("net_bytes"), None);
        assert_eq!(report.named_metric(APP_METRIC), Some(-0.5));
        assert_eq!(report.queue_depth(), Some(4.0));
        assert_eq!(report.in_flight(), Some(9.0));
        assert_eq!(report.active_streams(), Some(2.0));
        assert_eq!(report.capacity(), Some(8.0));
        assert_eq!(report.service_time_ms(), Some(17.5));
    }

    #[test]
    fn qps_falls_back_to_rps_only_without_rps_fractional() {
        let qps = |rps, rps_fractional| {
            let raw = RawLoadReport {
                rps,
                rps_fractional,
                ..RawLoadReport::default()
            };
            LoadReport::try_from(raw).unwrap().qps()
        };
        assert_eq!(qps(12, 0.0), 12.0);
        assert_eq!(qps(12, 2.5), 2.5);
        assert_eq!(qps(0, 2.5), 2.5);
        assert_eq!(qps(0, 0.0), 0.0);
    }

    #[test]
    fn effective_utilization_prefers_application_utilization() {
        let effective = |cpu_utilization, application_utilization| {
            let raw = RawLoadReport {
                cpu_utilization,
                application_utilization,
                ..RawLoadReport::default()
            };
            LoadReport::try_from(raw).unwrap().effective_utilization()
        };
        assert_eq!(effective(0.9, 0.3), 0.3);
        assert_eq!(effective(0.2, 3.0), 3.0);
        assert_eq!(effective(0.9, 0.0), 0.9);
        assert_eq!(effective(0.0, 0.0), 0.0);
    }
}
