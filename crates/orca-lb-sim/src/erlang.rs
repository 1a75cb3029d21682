//! The pooled M/M/k queue: Erlang's C formula.

use serde::{Deserialize, Serialize};

/// The M/M/k queue with every worker of every backend pooled behind one
/// FIFO queue: the physical limit when all backends are the same
/// exponential server.
///
/// Latencies are response times (wait plus service) plus the round trip on
/// the network, so they compare with measured latencies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErlangC {
    /// Servers (worker slots), `k`.
    pub servers: u64,
    /// Arrivals per second, `lambda`.
    pub rate: f64,
    /// Mean service time, milliseconds: `1 / mu`.
    pub service_ms: f64,
    /// Utilization, `lambda / (k mu)`.
    pub rho: f64,
    /// The probability that a call waits (Erlang C).
    pub p_wait: f64,
    /// Mean wait in the queue, milliseconds.
    pub mean_wait_ms: f64,
    /// Mean latency, milliseconds.
    pub mean_ms: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile latency, milliseconds.
    pub p999_ms: f64,
}

impl ErlangC {
    /// The M/M/k queue with `servers` workers of mean service time
    /// `service_ms`, offered `rate` calls per second, with `round_trip_ms`
    /// of network added to every latency. `None` if it is unstable.
    pub fn new(servers: u64, rate: f64, service_ms: f64, round_trip_ms: f64) -> Option<Self> {
        let mu = 1e3 / service_ms;
        let k = servers as f64;
        let a = rate / mu;
        if servers == 0 || a >= k || rate <= 0.0 {
            return None;
        }
        let p_wait = erlang_c(servers, a);
        // The wait, given there is one, is exponential with rate theta.
        let theta = k * mu - rate;
        let mean_wait = p_wait / theta;
        let tail = |t: f64| {
            let sum = if (theta - mu).abs() < 1e-9 * mu {
                (1.0 + mu * t) * (-mu * t).exp()
            } else {
                (theta * (-mu * t).exp() - mu * (-theta * t).exp()) / (theta - mu)
            };
            (1.0 - p_wait) * (-mu * t).exp() + p_wait * sum
        };
        let quantile = |q: f64| {
            // P(T > t) falls from 1 at t = 0: bisect.
            let (mut lo, mut hi) = (0.0_f64, 1.0 / mu);
            while tail(hi) > 1.0 - q {
                hi *= 2.0;
            }
            for _ in 0..100 {
                let mid = (lo + hi) / 2.0;
                if tail(mid) > 1.0 - q {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            hi * 1e3 + round_trip_ms
        };
        Some(Self {
            servers,
            rate,
            service_ms,
            rho: a / k,
            p_wait,
            mean_wait_ms: mean_wait * 1e3,
            mean_ms: (mean_wait + 1.0 / mu) * 1e3 + round_trip_ms,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
        })
    }
}

/// The probability of waiting in M/M/k with offered load `a` (Erlangs),
/// through the Erlang B recursion, which stays stable for thousands of
/// servers.
pub fn erlang_c(servers: u64, a: f64) -> f64 {
    let mut b = 1.0;
    for n in 1..=servers {
        b = a * b / (n as f64 + a * b);
    }
    let k = servers as f64;
    k * b / (k - a * (1.0 - b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_values() {
        // M/M/1: P(wait) = rho, W = rho / (mu - lambda).
        let q = ErlangC::new(1, 50.0, 10.0, 0.0).unwrap();
        assert!((q.p_wait - 0.5).abs() < 1e-12);
        assert!((q.mean_wait_ms - 10.0).abs() < 1e-9);
        // The response time of M/M/1 is Exp(mu - lambda): median ln2 / 50 s.
        assert!((q.p50_ms - 2f64.ln() / 50.0 * 1e3).abs() < 1e-6);
        // Erlang C for k = 2, a = 1: 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!(ErlangC::new(4, 1000.0, 20.0, 0.0).is_none(), "unstable");
    }
}
