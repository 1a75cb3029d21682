//! Conversions between the generated message and the validated domain type.

use orca_lb_core::{InvalidReport, LoadReport, RawLoadReport};

use crate::pb::OrcaLoadReport;

impl From<OrcaLoadReport> for RawLoadReport {
    fn from(pb: OrcaLoadReport) -> Self {
        #[allow(deprecated)]
        let rps = pb.rps;
        RawLoadReport {
            cpu_utilization: pb.cpu_utilization,
            mem_utilization: pb.mem_utilization,
            rps,
            request_cost: pb.request_cost,
            utilization: pb.utilization,
            rps_fractional: pb.rps_fractional,
            eps: pb.eps,
            named_metrics: pb.named_metrics,
            application_utilization: pb.application_utilization,
        }
    }
}

impl From<RawLoadReport> for OrcaLoadReport {
    fn from(raw: RawLoadReport) -> Self {
        #[allow(deprecated)]
        OrcaLoadReport {
            cpu_utilization: raw.cpu_utilization,
            mem_utilization: raw.mem_utilization,
            rps: raw.rps,
            request_cost: raw.request_cost,
            utilization: raw.utilization,
            rps_fractional: raw.rps_fractional,
            eps: raw.eps,
            named_metrics: raw.named_metrics,
            application_utilization: raw.application_utilization,
        }
    }
}

impl From<LoadReport> for OrcaLoadReport {
    fn from(report: LoadReport) -> Self {
        RawLoadReport::from(report).into()
    }
}

impl TryFrom<OrcaLoadReport> for LoadReport {
    type Error = InvalidReport;

    fn try_from(pb: OrcaLoadReport) -> Result<Self, Self::Error> {
        LoadReport::try_from(RawLoadReport::from(pb))
    }
}
