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

/// Round robin over plain tonic channels: what a gRPC user gets from the
/// `round_robin` policy, as the demo's point of comparison.
pub mod round_robin {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use orca_lb_core::baseline::RoundRobin;
    use tonic::body::Body;
    use tonic::transport::Channel;
    use tower::ServiceExt;

    /// A `Service` that sends each call to the next channel in turn.
    #[derive(Debug, Clone)]
    pub struct RoundRobinChannels {
        channels: Arc<[Channel]>,
        cursor: Arc<RoundRobin>,
    }

    impl RoundRobinChannels {
        /// Round robin over `channels` (at least one).
        pub fn new(channels: Vec<Channel>) -> Self {
            Self {
                channels: channels.into(),
                cursor: Arc::new(RoundRobin::new()),
            }
        }
    }

    type BoxFuture =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, tonic::transport::Error>> + Send>>;

    impl tower::Service<http::Request<Body>> for RoundRobinChannels {
        type Response = http::Response<Body>;
        type Error = tonic::transport::Error;
        type Future = BoxFuture;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let i = self
                .cursor
                .pick(self.channels.len(), |_| true)
                .expect("at least one channel");
            Box::pin(self.channels[i].clone().oneshot(request))
        }
    }
}

/// Latency and outcome counts over an interval.
pub mod stats {
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// What calls did over one interval, per backend and overall.
    #[derive(Debug, Default, Clone)]
    pub struct Window {
        latencies: Vec<Duration>,
        per_backend: BTreeMap<String, u64>,
        errors: u64,
    }

    impl Window {
        /// A call that `backend` answered after `latency`.
        pub fn ok(&mut self, backend: &str, latency: Duration) {
            self.latencies.push(latency);
            *self.per_backend.entry(backend.to_string()).or_default() += 1;
        }

        /// A call that failed after `latency`.
        pub fn error(&mut self, latency: Duration) {
            self.latencies.push(latency);
            self.errors += 1;
        }

        /// Calls that ended in the window.
        pub fn calls(&self) -> u64 {
            self.latencies.len() as u64
        }

        /// Failed calls.
        pub fn errors(&self) -> u64 {
            self.errors
        }

        /// Replies per backend.
        pub fn per_backend(&self) -> &BTreeMap<String, u64> {
            &self.per_backend
        }

        /// The `q` quantile (0..=1) of all calls' latency.
        pub fn quantile(&mut self, q: f64) -> Option<Duration> {
            if self.latencies.is_empty() {
                return None;
            }
            self.latencies.sort_unstable();
            let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
            Some(self.latencies[i])
        }

        /// Adds another window's calls to this one.
        pub fn merge(&mut self, other: &Window) {
            self.latencies.extend_from_slice(&other.latencies);
            for (k, v) in &other.per_backend {
                *self.per_backend.entry(k.clone()).or_default() += v;
            }
            self.errors += other.errors;
        }
    }
}
