//! What a run measured: per policy, and for the scenario.

use serde::{Deserialize, Serialize};

use crate::erlang::ErlangC;
use crate::scenario::Bar;

/// Everything one run of a scenario measured, for every policy.
///
/// Serializes to the JSON the CLI writes; [`report`](crate::report) renders
/// tables and plots from it. Two runs with the same scenario, policies and
/// seed give equal `Results` (but for [`timings`](Self::timings)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The scenario's name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The seeds whose runs were pooled.
    pub seeds: Vec<u64>,
    /// Backends.
    pub backends: usize,
    /// Clients.
    pub clients: u32,
    /// Unary calls per second offered.
    pub rate: f64,
    /// Offered load over service rate at normal speed.
    pub rho: f64,
    /// The measurement window, seconds from the start.
    pub measure_s: [f64; 2],
    /// The event window, seconds from the start.
    pub event_window_s: Option<[f64; 2]>,
    /// Backends whose share is tracked.
    pub watched: Vec<usize>,
    /// The watched backends' share if calls followed service rates: before,
    /// during and after the events.
    pub optimal_share: [f64; 3],
    /// What orca-lb must reach.
    pub bar: Option<Bar>,
    /// The pooled M/M/k formula, when every backend is the same exponential
    /// server (before any event).
    pub erlang: Option<ErlangC>,
    /// One entry per policy, in the order run.
    pub policies: Vec<PolicyResult>,
    /// Wall-clock seconds each policy took to simulate (not part of the
    /// results proper: it differs between runs).
    #[serde(default)]
    pub timings: Vec<(String, f64)>,
}

/// What one policy did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// The policy's name.
    pub policy: String,
    /// Unary calls sent in the measurement window.
    pub measure: LatencyStats,
    /// Unary calls sent in the event window.
    pub event_window: Option<LatencyStats>,
    /// Per backend, over the measurement window.
    pub backends: Vec<BackendStats>,
    /// Coefficient of variation of the backends' shares.
    pub share_cv: f64,
    /// Coefficient of variation of the backends' utilizations.
    pub utilization_cv: f64,
    /// Highest utilization over the mean.
    pub utilization_max_over_mean: f64,
    /// Streams, when the scenario has them.
    pub streams: Option<StreamStats>,
    /// The watched backends' share of calls sent in each second of the run
    /// (`None`: no call that second).
    pub watched_share: Vec<Option<f64>>,
    /// Seconds from the first event until the watched share, over the next
    /// second, is at most twice its optimal share or a tenth of its share
    /// before the event, whichever is larger.
    pub reaction_s: Option<f64>,
    /// Seconds from recovery until the watched share, over the next second,
    /// is at least half its optimal share.
    pub recovery_s: Option<f64>,
    /// The scripted events as they fired.
    pub events: Vec<FiredEvent>,
    /// The latency distribution of all measured calls (errors at the
    /// deadline): `[latency ms, fraction at or below]`.
    pub cdf: Vec<[f64; 2]>,
    /// In a mixed fleet, the calls of each group of clients apart: the
    /// other policy's clients first. Empty otherwise.
    #[serde(default)]
    pub client_groups: Vec<ClientGroupStats>,
    /// With zones: the fraction of measured unary calls sent to a backend in
    /// another zone than their client's (`None` for the limit, which has
    /// no zones, and without zones).
    #[serde(default)]
    pub cross_zone: Option<f64>,
    /// With keyed calls: the fraction of measured keyed calls whose key
    /// their backend had cached (served faster).
    #[serde(default)]
    pub hit_ratio: Option<f64>,
    /// Hand-backs per measured unary call: calls a busy server answered
    /// unserved for the client to pick again (`None`: none).
    #[serde(default)]
    pub hand_backs: Option<f64>,
}

/// The measured calls of one group of clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientGroupStats {
    /// The group's policy and size, as `rr (16 clients)`.
    pub name: String,
    /// Its calls.
    pub stats: LatencyStats,
}

/// Latency and errors of a set of calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Calls.
    pub calls: u64,
    /// Calls that failed: an error status, no backend available, or the
    /// deadline.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Latency of the calls that succeeded.
    pub success: Quantiles,
    /// Latency of all calls, a failure counting as the deadline.
    pub all: Quantiles,
}

/// Summary of a latency distribution, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// One backend over the measurement window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackendStats {
    /// Its share of the measured calls.
    pub share: f64,
    /// Busy worker time over capacity and time.
    pub utilization: f64,
    /// Open streams, time-averaged.
    pub streams: f64,
}

/// How streams spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Streams opened in the measurement window.
    pub opened: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Coefficient of variation of the time-averaged open streams per
    /// backend.
    pub cv: f64,
    /// The most streams a backend held on average, over the mean.
    pub max_over_mean: f64,
    /// The mean over time of the per-second coefficient of variation: how
    /// uneven the spread is at any moment.
    pub instant_cv: f64,
    /// After a scale-out (a `join` event): how the spread evened out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
}

/// How open streams spread over the fleet after backends joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// Per second from the first join: most open streams on a backend over
    /// the mean, averaged over the samples (every 100 ms) and runs; None
    /// for a second without streams.
    pub max_over_mean: Vec<Option<f64>>,
    /// Per run: seconds from the first join until most over mean first
    /// reached 1.2; None for a run where it never did.
    pub balanced_after_s: Vec<Option<f64>>,
}

impl Balance {
    /// The `q` quantile (nearest rank) of the runs' times to balance, a run
    /// that never balanced counting as infinite.
    pub fn balanced_after_quantile(&self, q: f64) -> f64 {
        let mut t: Vec<f64> = self
            .balanced_after_s
            .iter()
            .map(|x| x.unwrap_or(f64::INFINITY))
            .collect();
        if t.is_empty() {
            return f64::INFINITY;
        }
        t.sort_by(f64::total_cmp);
        let rank = ((q * t.len() as f64).ceil() as usize).clamp(1, t.len()) - 1;
        t[rank]
    }
}

/// A scripted event, when it fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredEvent {
    /// Seconds from the start.
    pub at_s: f64,
    /// The backends.
    pub backends: Vec<usize>,
    /// What happened, as written in the scenario.
    pub action: String,
}

impl Results {
    /// A policy's results by name.
    pub fn policy(&self, name: &str) -> Option<&PolicyResult> {
        self.policies.iter().find(|p| p.policy == name)
    }
}

impl PolicyResult {
    /// The statistics a bar with this window is judged on.
    pub fn stats(&self, event_window: bool) -> &LatencyStats {
        match (&self.event_window, event_window) {
            (Some(w), true) => w,
            _ => &self.measure,
        }
    }
}
