//! One load report on one line.

use std::fmt::Write as _;

use orca_lb_core::LoadReport;

use orca_lb_core::escaped::escape;

/// `report` as `name=value` pairs: the standard ORCA fields, then keyed
/// utilizations and request costs as `util[name]` and `cost[name]`, then
/// named metrics, orca-lb's own without their `orca_lb.` prefix. Keys are
/// sorted, so two reports line up, and printed through
/// [`escape`](orca_lb_core::escaped::escape): they come from the server.
pub fn report(report: &LoadReport) -> String {
    let raw = report.as_raw();
    let mut out = format!(
        "cpu={:.3} mem={:.3} app_util={:.3} rps={:.1} eps={:.1}",
        raw.cpu_utilization,
        raw.mem_utilization,
        raw.application_utilization,
        report.qps(),
        raw.eps
    );
    for (label, map) in [
        ("util", &raw.utilization),
        ("cost", &raw.request_cost),
        ("", &raw.named_metrics),
    ] {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in entries {
            if label.is_empty() {
                let k = k.strip_prefix("orca_lb.").unwrap_or(k);
                let _ = write!(out, " {}={v:.3}", escape(k));
            } else {
                let _ = write!(out, " {label}[{}]={v:.3}", escape(k));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use orca_lb_core::{RawLoadReport, named_metrics};

    use super::*;

    #[test]
    fn fields_in_a_stable_order() {
        let mut raw = RawLoadReport {
            cpu_utilization: 0.5,
            rps_fractional: 12.0,
            ..RawLoadReport::default()
        };
        raw.named_metrics
            .insert(named_metrics::IN_FLIGHT.into(), 3.0);
        raw.named_metrics.insert("app.hits".into(), 1.0);
        raw.utilization.insert("gpu".into(), 0.25);
        let r = LoadReport::try_from(raw).unwrap();
        assert_eq!(
            report(&r),
            "cpu=0.500 mem=0.000 app_util=0.000 rps=12.0 eps=0.0 util[gpu]=0.250 app.hits=1.000 in_flight=3.000"
        );
    }
}
