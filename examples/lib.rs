//! Shared pieces of orca-lb's examples.
#![warn(missing_docs)]

use std::process::ExitCode;

pub use orca_lb_debug::duration_arg::parse_duration;
pub use orca_lb_debug::render::report as format_report;

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

/// An example's result as its exit code: an error is printed as a sentence,
/// with its causes, rather than as a debug dump.
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {}", orca_lb_core::error_chain(e.as_ref()));
    ExitCode::FAILURE
}
