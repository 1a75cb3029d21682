//! The validated ORCA load report.

use std::collections::HashMap;
use std::fmt;

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
            Field::RequestCost(name) => write!(f, "request_cost[{name:?}]"),
            Field::Utilization(name) => write!(f, "utilization[{name:?}]"),
            Field::NamedMetric(name) => write!(f, "named_metrics[{name:?}]"),
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

    /// Calls waiting for a worker slot ([`named_metrics::QUEUE_DEPTH`]).
    pub fn queue_depth(&self) -> Option<f64> {
        self.named_metric(named_metrics::QUEUE_DEPTH)
    }

    /// Calls in flight on the server ([`named_metrics::IN_FLIGHT`]).
    pub fn in_flight(&self) -> Option<f64> {
        self.named_metric(named_metrics::IN_FLIGHT)
    }

    /// Open streams on the server ([`named_metrics::ACTIVE_STREAMS`]).
    pub fn active_streams(&self) -> Option<f64> {
        self.named_metric(named_metrics::ACTIVE_STREAMS)
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
