//! Shared pieces of orca-lb's examples.
#![warn(missing_docs)]

use std::fmt::Write as _;
use std::time::Duration;

use orca_lb_core::LoadReport;

/// Parses a duration written as `250ms`, `2s`, `1.5s` or a bare number of
/// milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else {
        (s, 1e-3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 20ms or 1.5s)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} must be a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// One report as `name=value` pairs on one line, the named metrics sorted.
pub fn format_report(report: &LoadReport) -> String {
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
        ("cost", &raw.request_cost),
        ("util", &raw.utilization),
        ("", &raw.named_metrics),
    ] {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in entries {
            let k = k.strip_prefix("orca_lb.").unwrap_or(k);
            if label.is_empty() {
                let _ = write!(out, " {k}={v:.3}");
            } else {
                let _ = write!(out, " {label}[{k}]={v:.3}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_millis(7)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
