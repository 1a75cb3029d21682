//! What a run simulates: backends, load, clients, scripted events, the bar.
//!
//! A [`Scenario`] is read from a TOML file in `scenarios/`. The loopback
//! harness in `benches/` reads the same files: everything a real rig needs
//! (backends, load, clients, durations, events, deadline, the bar) is at the
//! top level, and knobs only the simulator has are under `[sim]`.

mod orca;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::orca::{HerdingExperiment, LocalitySettings, OrcaConfig, OrcaOverrides, Variant};
use crate::ServiceTime;
use crate::clock::{Nanos, millis, secs};

/// One scenario, as written in a `scenarios/*.toml` file.
///
/// ```toml
/// name = "s2_degrade"
/// rate = 1120.0          # calls per second, all clients together
/// clients = 1
/// deadline_ms = 1000.0
/// warm_up_s = 15.0
/// measure_s = 60.0
///
/// [[backends]]
/// count = 8
/// capacity = 4
/// service_time = { kind = "exponential", mean_ms = 20.0 }
///
/// [[events]]
/// at_s = 30.0
/// backends = [0]
/// action = "slow"
/// factor = 10.0
///
/// [[events]]
/// at_s = 60.0
/// backends = [0]
/// action = "recover"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in file names and titles.
    pub name: String,
    /// One or two sentences on what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Unary calls per second over all clients: an open-loop Poisson
    /// process on an absolute schedule.
    pub rate: f64,
    /// Independent clients, each with its own balancer; the rate is split
    /// between them by [`client_weights`](Self::client_weights), evenly by
    /// default.
    #[serde(default = "one")]
    pub clients: u32,
    /// Relative call rates of the first clients, in client order; a client
    /// not listed weighs 1. `[31.0]` with 32 clients gives client 0 half of
    /// the calls and the other 31 the rest, evenly. Empty (the default):
    /// every client the same.
    #[serde(default)]
    pub client_weights: Vec<f64>,
    /// Another policy that a part of the clients run on the same backends
    /// (a mixed fleet), by name as `--policies` takes it (`rr`, `p2c_lr`,
    /// ...; not `limit`). The first `round(clients * mixed_fraction)`
    /// clients run it, the others the policy under test; results show the
    /// two groups apart too.
    #[serde(default)]
    pub mixed_with: Option<String>,
    /// The fraction of the clients that run [`mixed_with`](Self::mixed_with),
    /// in (0, 1). Default 0.5.
    #[serde(default = "half")]
    pub mixed_fraction: f64,
    /// Per-call deadline, propagated to the server.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: f64,
    /// Time before measuring starts.
    pub warm_up_s: f64,
    /// Time measured, after the warm-up. Calls are measured by their
    /// intended send time.
    pub measure_s: f64,
    /// The backends, in groups; backend indices count through the groups
    /// in order.
    pub backends: Vec<BackendGroup>,
    /// Scripted changes to backends.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Backends whose share of calls is tracked over time. Default: those
    /// named by events.
    #[serde(default)]
    pub watch: Option<Vec<usize>>,
    /// Long-lived server-streaming calls, mixed with the unary load.
    #[serde(default)]
    pub streams: Option<Streams>,
    /// What orca-lb must reach, as ratios to the limit.
    #[serde(default)]
    pub bar: Option<Bar>,
    /// Where backends and clients run, and what crossing zones costs.
    #[serde(default)]
    pub zones: Option<Zones>,
    /// Keyed unary calls and the backends' caches, for session affinity.
    #[serde(default)]
    pub keys: Option<Keys>,
    /// Simulator-only settings.
    #[serde(default)]
    pub sim: SimSettings,
}

/// Every unary call carries a key drawn from a Zipf distribution; each
/// backend caches the keys it served last, and a call whose key its backend
/// has cached is served in `hit_factor` of its service time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// Distinct keys.
    pub count: u32,
    /// The Zipf exponent: key `k` (from 0) is drawn with probability
    /// proportional to `1 / (k + 1)^zipf_s`.
    pub zipf_s: f64,
    /// Keys each backend caches (least recently used evicted).
    pub cache_size: u32,
    /// A cache hit's service time over a miss's. Default 0.5.
    #[serde(default = "half")]
    pub hit_factor: f64,
    /// The affinity bound's epsilon for `orca-lb/affinity`. Default 0.25.
    #[serde(default = "quarter")]
    pub epsilon: f64,
}

/// `count` identical backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendGroup {
    /// How many.
    #[serde(default = "one")]
    pub count: u32,
    /// Worker slots: calls served at once; the rest wait in a FIFO queue.
    pub capacity: u32,
    /// Service time of one call at normal speed.
    pub service_time: ServiceTime,
}

/// Zones: which zone each backend and each client runs in, and the extra
/// network delay between zones.
///
/// ```toml
/// [zones]
/// backends = ["a", "a", "a", "a", "b", "b", "b", "b"]
/// clients = ["a"]
/// cross_zone_delay_ms = 5.0
/// ```
///
/// A call to a backend in another zone than its client's takes
/// `cross_zone_delay_ms` longer each way. The limit's central queue has no
/// zones: it is the bound for a fleet with no cost of crossing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    /// The zone of each backend, by backend index: one per backend.
    pub backends: Vec<String>,
    /// The zone of each client, by client index; with fewer names than
    /// clients, client `c` runs in `clients[c % len]`.
    pub clients: Vec<String>,
    /// Extra one-way delay between zones, ms.
    pub cross_zone_delay_ms: f64,
}

impl Zones {
    /// The zone of client `c`.
    pub fn client(&self, c: usize) -> &str {
        &self.clients[c % self.clients.len()]
    }

    /// The extra one-way delay between zones.
    pub fn cross_zone_delay(&self) -> Nanos {
        (self.cross_zone_delay_ms * 1e6).round() as Nanos
    }
}

/// A scripted change to some backends at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When, seconds from the start of the run (warm-up included).
    pub at_s: f64,
    /// Which backends.
    pub backends: Vec<usize>,
    /// What happens.
    pub action: Action,
    /// For `slow`: service times are multiplied by this.
    #[serde(default)]
    pub factor: Option<f64>,
}

/// What a scripted event does to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Service times are multiplied by `factor` (calls already in service
    /// keep theirs).
    Slow,
    /// Every new call is answered UNAVAILABLE after 1 ms, without taking a
    /// worker: a black hole that looks fast.
    FailFast,
    /// Back to normal speed, serving again.
    Recover,
    /// The backends join the fleet (a scale-out): until then clients do not
    /// know them and they serve nothing. Backends that join must come after
    /// every backend present from the start.
    Join,
}

impl Action {
    /// The name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Slow => "slow",
            Action::FailFast => "fail_fast",
            Action::Recover => "recover",
            Action::Join => "join",
        }
    }
}

/// Long-lived server-streaming calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Streams {
    /// Streams opened per second over all clients (Poisson).
    pub rate: f64,
    /// How long a stream stays open (the server ends it).
    pub duration: ServiceTime,
    /// The servers' stream max age, seconds: a stream open longer (times a
    /// jitter uniform in ±10 %) is ended UNAVAILABLE by its server and its
    /// client opens it again at once, picking anew, for the rest of its
    /// duration. None (the default): streams run their whole duration.
    #[serde(default)]
    pub max_age_s: Option<f64>,
    /// Streams opened during the first second on top of the steady rate,
    /// so that the fleet holds streams from the start. Default 0.
    #[serde(default)]
    pub initial: u32,
}

/// The goal for orca-lb in a scenario, from `docs/benchmarks.md`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bar {
    /// Which calls the bar is about: the whole measurement or the event
    /// window.
    #[serde(default)]
    pub window: BarWindow,
    /// Highest p99 of all calls, as a ratio to the limit.
    #[serde(default)]
    pub p99: Option<f64>,
    /// Highest p99.9 of all calls, as a ratio to the limit.
    #[serde(default)]
    pub p999: Option<f64>,
    /// Highest error rate (a fraction).
    #[serde(default)]
    pub errors: Option<f64>,
    /// Longest reaction time, seconds.
    #[serde(default)]
    pub reaction_s: Option<f64>,
    /// Longest recovery time, seconds.
    #[serde(default)]
    pub recovery_s: Option<f64>,
}

/// Which calls a [`Bar`] is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BarWindow {
    /// Every measured call.
    #[default]
    Measure,
    /// Calls sent between the first and the last event.
    Event,
}

/// Knobs only the simulator has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// One-way network delay, both ways. Default 100 µs.
    #[serde(default = "default_delay_us")]
    pub network_delay_us: f64,
    /// Out-of-band report period for the policies that use them (orca-lb,
    /// wrr_orca), or none (default: per-call reports only).
    #[serde(default)]
    pub oob_period_ms: Option<f64>,
    /// Whether servers fold `queue_depth / capacity` into
    /// `application_utilization` (an experiment; `orca-lb-server` does not,
    /// default false).
    /// gRPC's weighted round robin weighs backends by it.
    #[serde(default)]
    pub utilization_includes_queue: bool,
    /// The servers hand a unary call back unserved, when its client offers
    /// it (orca-lb with `hand_backs` above 0), if no worker is free and at
    /// least this many calls wait (`ReportingConfig::hand_back_queue_depth`,
    /// default 1); none: never.
    #[serde(default = "default_hand_back_queue_depth")]
    pub hand_back_queue_depth: Option<u32>,
    /// Overrides of orca-lb's production defaults, for every orca-lb run.
    #[serde(default)]
    pub orca: OrcaOverrides,
    /// Extra orca-lb runs with other settings, named `orca-lb/<name>`.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            network_delay_us: default_delay_us(),
            oob_period_ms: None,
            utilization_includes_queue: false,
            hand_back_queue_depth: default_hand_back_queue_depth(),
            orca: OrcaOverrides::default(),
            variants: Vec::new(),
        }
    }
}

fn default_hand_back_queue_depth() -> Option<u32> {
    Some(1)
}

fn one() -> u32 {
    1
}

fn half() -> f64 {
    0.5
}

fn quarter() -> f64 {
    0.25
}

fn default_deadline_ms() -> f64 {
    1000.0
}

fn default_delay_us() -> f64 {
    100.0
}

// === impl Scenario ===

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number, got {v}"))
            }
        };
        positive("rate", self.rate)?;
        positive("deadline_ms", self.deadline_ms)?;
        positive("measure_s", self.measure_s)?;
        if !(self.warm_up_s >= 0.0 && self.warm_up_s.is_finite()) {
            return Err(format!("warm_up_s must be >= 0, got {}", self.warm_up_s));
        }
        if self.clients == 0 {
            return Err("clients must be at least 1".into());
        }
        if self.client_weights.len() > self.clients as usize {
            return Err(format!(
                "client_weights: {} weights for {} clients",
                self.client_weights.len(),
                self.clients
            ));
        }
        if let Some(w) = self
            .client_weights
            .iter()
            .find(|w| !(**w > 0.0 && w.is_finite()))
        {
            return Err(format!("client_weights must be positive numbers, got {w}"));
        }
        if let Some(name) = &self.mixed_with {
            if !(self.mixed_fraction > 0.0 && self.mixed_fraction < 1.0) {
                return Err(format!(
                    "mixed_fraction must be in (0, 1), got {}",
                    self.mixed_fraction
                ));
            }
            let policies =
                crate::Policy::parse_list(name, self).map_err(|e| format!("mixed_with: {e}"))?;
            if policies.len() != 1 || policies[0].is_limit() {
                return Err(format!(
                    "mixed_with must name one policy other than the limit, got {name:?}"
                ));
            }
            let k = self.mixed_clients();
            if k == 0 || k == self.clients {
                return Err(format!(
                    "mixed_fraction {} of {} clients leaves one group empty",
                    self.mixed_fraction, self.clients
                ));
            }
        }
        let n = self.backend_count();
        if n < 1 {
            return Err("at least one backend is needed".into());
        }
        for g in &self.backends {
            if g.capacity == 0 {
                return Err("backends.capacity must be at least 1".into());
            }
            g.service_time.validate()?;
        }
        for e in &self.events {
            if !(e.at_s >= 0.0 && e.at_s.is_finite()) {
                return Err(format!("events.at_s must be >= 0, got {}", e.at_s));
            }
            if let Some(&b) = e.backends.iter().find(|&&b| b >= n) {
                return Err(format!("events.backends: no backend {b} (there are {n})"));
            }
            if e.action == Action::Slow {
                positive("events.factor", e.factor.unwrap_or(f64::NAN))?;
            }
        }
        if let Some(w) = &self.watch
            && let Some(&b) = w.iter().find(|&&b| b >= n)
        {
            return Err(format!("watch: no backend {b} (there are {n})"));
        }
        if let Some(s) = &self.streams {
            positive("streams.rate", s.rate)?;
            s.duration.validate()?;
            if let Some(age) = s.max_age_s {
                positive("streams.max_age_s", age)?;
            }
        }
        let joining = self.joining();
        if joining.len() == n {
            return Err("events: at least one backend must be present before the joins".into());
        }
        if joining.iter().any(|&b| b < n - joining.len()) {
            return Err(format!(
                "events: backends that join must be the last ones ({}..{n}), got {joining:?}",
                n - joining.len()
            ));
        }
        if !(self.sim.network_delay_us >= 0.0 && self.sim.network_delay_us.is_finite()) {
            return Err("sim.network_delay_us must be >= 0".into());
        }
        if let Some(p) = self.sim.oob_period_ms {
            positive("sim.oob_period_ms", p)?;
        }
        if let Some(k) = &self.keys {
            if k.count == 0 || k.cache_size == 0 {
                return Err("keys.count and keys.cache_size must be at least 1".into());
            }
            if !(k.zipf_s >= 0.0 && k.zipf_s.is_finite()) {
                return Err(format!("keys.zipf_s must be >= 0, got {}", k.zipf_s));
            }
            if !(k.hit_factor > 0.0 && k.hit_factor <= 1.0) {
                return Err(format!(
                    "keys.hit_factor must be in (0, 1], got {}",
                    k.hit_factor
                ));
            }
            positive("keys.epsilon", k.epsilon)?;
        }
        if let Some(z) = &self.zones {
            if z.backends.len() != n {
                return Err(format!(
                    "zones.backends: {} zones for {n} backends",
                    z.backends.len()
                ));
            }
            if z.clients.is_empty() {
                return Err("zones.clients: at least one zone is needed".into());
            }
            for name in z.backends.iter().chain(&z.clients) {
                orca_lb_core::Zone::new(name).map_err(|e| format!("zones: {name:?}: {e}"))?;
            }
            if !(z.cross_zone_delay_ms >= 0.0 && z.cross_zone_delay_ms.is_finite()) {
                return Err("zones.cross_zone_delay_ms must be >= 0".into());
            }
        }
        self.orca_config().validate()?;
        for v in &self.sim.variants {
            v.config(&self.orca_config()).validate()?;
        }
        Ok(())
    }

    /// How many clients run [`mixed_with`](Self::mixed_with) (the first
    /// ones); 0 without a mixed fleet.
    pub fn mixed_clients(&self) -> u32 {
        if self.mixed_with.is_none() {
            return 0;
        }
        (f64::from(self.clients) * self.mixed_fraction).round() as u32
    }

    /// Each client's relative call rate, in client order.
    pub fn client_rate_weights(&self) -> Vec<f64> {
        (0..self.clients as usize)
            .map(|c| self.client_weights.get(c).copied().unwrap_or(1.0))
            .collect()
    }

    /// The number of backends.
    pub fn backend_count(&self) -> usize {
        self.backends.iter().map(|g| g.count as usize).sum()
    }

    /// Each backend's group, by backend index.
    pub fn backend_groups(&self) -> impl Iterator<Item = &BackendGroup> {
        self.backends
            .iter()
            .flat_map(|g| std::iter::repeat_n(g, g.count as usize))
    }

    /// The backends that join during the run (sorted): absent until their
    /// `join` event.
    pub fn joining(&self) -> Vec<usize> {
        let mut j: Vec<usize> = self
            .events
            .iter()
            .filter(|e| e.action == Action::Join)
            .flat_map(|e| e.backends.iter().copied())
            .collect();
        j.sort_unstable();
        j.dedup();
        j
    }

    /// The backends present from the start.
    pub fn initial_backends(&self) -> usize {
        self.backend_count() - self.joining().len()
    }

    /// When the first backend joins, if any does.
    pub fn first_join(&self) -> Option<Nanos> {
        self.events
            .iter()
            .filter(|e| e.action == Action::Join)
            .map(|e| secs(e.at_s))
            .min()
    }

    /// Worker slots in all.
    pub fn total_capacity(&self) -> u64 {
        self.backend_groups().map(|g| u64::from(g.capacity)).sum()
    }

    /// Calls per second all backends serve at normal speed.
    pub fn service_rate(&self) -> f64 {
        self.backend_groups()
            .map(|g| f64::from(g.capacity) / (g.service_time.mean_ms() * 1e-3))
            .sum()
    }

    /// Offered load over service rate, at normal speed.
    pub fn rho(&self) -> f64 {
        self.rate / self.service_rate()
    }

    /// The backends whose share is tracked.
    pub fn watched(&self) -> Vec<usize> {
        let mut w = match &self.watch {
            Some(w) => w.clone(),
            None => self
                .events
                .iter()
                .flat_map(|e| e.backends.iter().copied())
                .collect(),
        };
        w.sort_unstable();
        w.dedup();
        w
    }

    /// The calls sent between the first and the last event, as virtual
    /// times; `None` without events. With a single event the window runs to
    /// the end of the measurement.
    pub fn event_window(&self) -> Option<(Nanos, Nanos)> {
        let first = self.events.iter().map(|e| secs(e.at_s)).min()?;
        let last = self.events.iter().map(|e| secs(e.at_s)).max()?;
        let end = self.end();
        Some((first, if last > first { last } else { end }))
    }

    /// When the measurement starts.
    pub fn measure_start(&self) -> Nanos {
        secs(self.warm_up_s)
    }

    /// When the measurement (and the load) ends.
    pub fn end(&self) -> Nanos {
        secs(self.warm_up_s + self.measure_s)
    }

    /// The deadline.
    pub fn deadline(&self) -> Nanos {
        millis(self.deadline_ms)
    }

    /// The one-way network delay.
    pub fn network_delay(&self) -> Nanos {
        (self.sim.network_delay_us * 1e3).round() as Nanos
    }

    /// orca-lb's settings: production defaults with `[sim.orca]` applied.
    pub fn orca_config(&self) -> OrcaConfig {
        let base = OrcaConfig {
            oob_period: self.sim.oob_period_ms.map(millis),
            ..OrcaConfig::default()
        };
        self.sim.orca.apply(&base)
    }

    /// Scales every rate and duration for a shorter run: `measure_s` and
    /// `warm_up_s` and event times multiplied by `time`. For tests, and
    /// for the simulator's and the harness's `--time-scale`.
    pub fn scaled_in_time(mut self, time: f64) -> Self {
        self.warm_up_s *= time;
        self.measure_s *= time;
        for e in &mut self.events {
            e.at_s *= time;
        }
        self
    }
}
