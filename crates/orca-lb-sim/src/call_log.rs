//! Calls made outside the simulator, summarized as the simulator
//! summarizes its own.
//!
//! The loopback harness in `benches/` runs a [`Scenario`] against real
//! tonic servers. It records each call it made (when it was meant to be
//! sent, where it went, how it ended) in a [`CallLog`], and gets back the
//! same [`PolicyResult`] a simulated run gives: percentiles, error rates,
//! shares, utilization, the watched backends' share per second, reaction
//! and recovery. [`Results::from_policies`] then assembles a run that the
//! [`report`](crate::report) module renders as for the simulator.

use crate::clock::Nanos;
use crate::measurements::{Measurements, Targets};
use crate::results::{FiredEvent, PolicyResult};
use crate::scenario::Scenario;

/// What one policy's calls did over one or more runs of a scenario.
///
/// Times are nanoseconds since the start of the run, as in the simulator:
/// a call is placed in the measurement and event windows by its *intended*
/// send time `t0`, and its latency counts from there.
///
/// ```
/// use orca_lb_sim::{CallLog, Results, Scenario, MILLISECOND, SECOND};
///
/// let scenario = Scenario::parse(r#"
///     name = "two"
///     rate = 100.0
///     warm_up_s = 1.0
///     measure_s = 2.0
///     [[backends]]
///     count = 2
///     capacity = 4
///     service_time = { kind = "exponential", mean_ms = 20.0 }
/// "#)?;
/// let mut log = CallLog::new(&scenario);
/// // A call meant for t = 1.5 s went to backend 1 and took 21 ms; another
/// // went to backend 0 and failed.
/// log.sent(3 * SECOND / 2, 1);
/// log.concluded(3 * SECOND / 2, Some(21 * MILLISECOND));
/// log.sent(2 * SECOND, 0);
/// log.concluded(2 * SECOND, None);
/// let result = log.finish("rr");
/// assert_eq!(result.measure.calls, 2);
/// assert_eq!(result.measure.errors, 1);
/// assert_eq!(result.backends[1].share, 0.5);
///
/// let run = Results::from_policies(&scenario, &[1], vec![result], Vec::new());
/// assert!(orca_lb_sim::report::table(&run).contains("| rr |"));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug)]
pub struct CallLog {
    measurements: Measurements,
    capacities: Vec<u32>,
    targets: Targets,
}

impl CallLog {
    /// An empty log for runs of `scenario`, as run (already scaled in time
    /// if it was).
    pub fn new(scenario: &Scenario) -> Self {
        let measurements = Measurements::for_scenario(scenario);
        Self {
            measurements,
            capacities: scenario.backend_groups().map(|g| g.capacity).collect(),
            targets: crate::targets(scenario).3,
        }
    }

    /// A unary call meant for `t0` went to `backend` (its share and the
    /// watched share per second count it).
    ///
    /// # Panics
    ///
    /// If `backend` is not a backend of the scenario.
    pub fn sent(&mut self, t0: Nanos, backend: usize) {
        assert!(backend < self.capacities.len(), "no backend {backend}");
        self.measurements.sent(t0, backend);
    }

    /// A unary call meant for `t0` ended: `Some(latency)` on success (from
    /// `t0`), `None` on any failure, which counts as the deadline.
    pub fn concluded(&mut self, t0: Nanos, latency: Option<Nanos>) {
        self.measurements.concluded(t0, latency);
    }

    /// A worker of `backend` was busy over `[start, end)`; only the part in
    /// the measurement window counts toward its utilization.
    ///
    /// # Panics
    ///
    /// If `backend` is not a backend of the scenario.
    pub fn busy(&mut self, backend: usize, start: Nanos, end: Nanos) {
        assert!(backend < self.capacities.len(), "no backend {backend}");
        self.measurements.busy(backend, start, end);
    }

    /// With keyed calls: the unary call meant for `t0` started service on
    /// a backend that had its key cached (`hit`) or not. Only calls in the
    /// measurement window count toward the hit ratio.
    pub fn cache_access(&mut self, t0: Nanos, hit: bool) {
        self.measurements.cache_access(t0, hit);
    }

    /// A stream (or a stream opened again after its server ended it at its
    /// max age) meant for `t0` ended; `failed`: with a failure.
    pub fn stream_ended(&mut self, t0: Nanos, failed: bool) {
        self.measurements.stream_ended(t0, failed);
    }

    /// The open streams per backend at `now` (every backend of the
    /// scenario, in order): for the spread of streams, and after a
    /// scale-out for how fast it evened out. Sample every 100 ms, as the
    /// simulator does.
    pub fn sample_streams(&mut self, now: Nanos, open: &[u32]) {
        self.measurements.sample_streams(now, open.iter().copied());
        self.measurements.sample_balance(now, open.iter().copied());
    }

    /// A scripted event fired.
    pub fn fired(&mut self, event: FiredEvent) {
        self.measurements.fired.push(event);
    }

    /// Pools another run of the same scenario (a repetition) into this one,
    /// as the simulator pools seeds.
    pub fn merge(&mut self, other: CallLog) {
        self.measurements.merge(other.measurements);
    }

    /// The summary under the name `policy`.
    pub fn finish(self, policy: &str) -> PolicyResult {
        self.measurements
            .finish(policy, &self.capacities, self.targets)
    }
}
