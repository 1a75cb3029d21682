//! The policies a run compares, each driven through one client interface.

mod c3;
mod orca;
mod peak_ewma;
mod prequal;
mod ring_hash;
mod simple;
mod wrr;

use std::fmt;

use orca_lb_core::{LoadReport, Zone};

pub use self::c3::C3;
pub(crate) use self::orca::OrcaLb;
pub(crate) use self::peak_ewma::PeakEwmaP2c;
pub use self::prequal::Prequal;
pub(crate) use self::ring_hash::RingHash;
pub(crate) use self::simple::{LeastRequestP2c, Random, RoundRobin};
pub(crate) use self::wrr::Wrr;
use crate::clock::{Clock, Nanos};
use crate::scenario::{OrcaConfig, Scenario};

/// A policy to run: one of the peers, orca-lb (possibly a variant), or the
/// limit.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// gRPC's `round_robin` (`baseline::RoundRobin`).
    Rr,
    /// tonic's `balance_list`: P2C over a constant load, so uniformly random.
    Random,
    /// Least request P2C on the client's own calls in flight
    /// (`baseline::LeastRequest`).
    P2cLr,
    /// P2C on `PeakEwma(rtt) x (pending + 1)`, as tower and Finagle.
    P2cPeakEwma,
    /// gRPC's `weighted_round_robin` on ORCA reports (`baseline::WrrWeight`
    /// and `EdfScheduler`).
    WrrOrca,
    /// Prequal: probes of requests in flight and latency, hot-cold
    /// lexicographic pick.
    Prequal,
    /// C3: replica ranking with a cubic queue term and concurrency
    /// compensation (without its rate control).
    C3,
    /// C3's ranking taken apart, to see which of its parts matters (not in
    /// `all`; by name only): `c3/p2c` ranks two random backends instead of
    /// all, `c3/no-compensation` leaves out `os * n`.
    C3Part {
        /// Shown in results.
        name: &'static str,
        /// Rank two random backends, not all.
        two_choices: bool,
        /// Count this client's outstanding calls times the clients.
        compensation: bool,
    },
    /// orca-lb with these settings, under this name (`orca-lb`, or
    /// `orca-lb/<variant>`).
    OrcaLb {
        /// Shown in results.
        name: String,
        /// The settings.
        config: Box<OrcaConfig>,
    },
    /// Ring hash without load (gRPC's `ring_hash`, Envoy's ring hash): a
    /// keyed call goes to its key's owner on the ring. In `all` only for
    /// scenarios with keyed calls.
    RingHash,
    /// orca-lb with session affinity: a keyed call goes to the first
    /// endpoint on the ring from its key whose load is under `1 + epsilon`
    /// times the mean (consistent hashing with bounded loads), as
    /// `orca-lb-client` with `BalancerConfig::affinity`. In `all` only for
    /// scenarios with keyed calls.
    OrcaAffinity {
        /// The bound's epsilon.
        epsilon: f64,
        /// The settings.
        config: Box<OrcaConfig>,
    },
    /// The central-queue oracle: the physical limit.
    Limit,
}

/// The peers' names, in the order results show them.
pub const PEERS: [&str; 7] = [
    "rr",
    "random",
    "p2c_lr",
    "p2c_peakewma",
    "wrr_orca",
    "prequal",
    "c3",
];

impl Policy {
    /// The name results show.
    pub fn name(&self) -> &str {
        match self {
            Policy::Rr => "rr",
            Policy::Random => "random",
            Policy::P2cLr => "p2c_lr",
            Policy::P2cPeakEwma => "p2c_peakewma",
            Policy::WrrOrca => "wrr_orca",
            Policy::Prequal => "prequal",
            Policy::C3 => "c3",
            Policy::C3Part { name, .. } => name,
            Policy::OrcaLb { name, .. } => name,
            Policy::RingHash => "ring_hash",
            Policy::OrcaAffinity { .. } => "orca-lb/affinity",
            Policy::Limit => "limit",
        }
    }

    /// Every policy for `scenario`: the peers, orca-lb, its variants and
    /// the limit.
    pub fn all(scenario: &Scenario) -> Vec<Policy> {
        let mut v = vec![
            Policy::Rr,
            Policy::Random,
            Policy::P2cLr,
            Policy::P2cPeakEwma,
            Policy::WrrOrca,
            Policy::Prequal,
            Policy::C3,
            Policy::orca(scenario),
        ];
        let base = scenario.orca_config();
        v.extend(scenario.sim.variants.iter().map(|var| Policy::OrcaLb {
            name: format!("orca-lb/{}", var.name),
            config: Box::new(var.config(&base)),
        }));
        if let Some(keys) = &scenario.keys {
            v.push(Policy::RingHash);
            v.push(Policy::OrcaAffinity {
                epsilon: keys.epsilon,
                config: Box::new(base),
            });
        }
        v.push(Policy::Limit);
        v
    }

    /// orca-lb with the scenario's settings.
    pub fn orca(scenario: &Scenario) -> Policy {
        Policy::OrcaLb {
            name: "orca-lb".into(),
            config: Box::new(scenario.orca_config()),
        }
    }

    /// Parses a comma-separated list: names (`tonic` is `random`), `all`,
    /// `orca-lb/<variant>` for the scenario's variants, and
    /// `orca-lb/choices=<k>` for orca-lb comparing `k` candidates per pick.
    pub fn parse_list(list: &str, scenario: &Scenario) -> Result<Vec<Policy>, String> {
        let all = Self::all(scenario);
        let mut out: Vec<Policy> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let name = if name == "tonic" { "random" } else { name };
            let found: Vec<Policy> = if name == "all" {
                all.clone()
            } else if let Some(p) = Self::experiment(name) {
                vec![p]
            } else if let Some(k) = name.strip_prefix("orca-lb/choices=") {
                vec![Self::orca_with_choices(scenario, k)?]
            } else {
                let p = all.iter().find(|p| p.name() == name).ok_or_else(|| {
                    let known: Vec<_> = all.iter().map(Policy::name).collect();
                    format!("unknown policy {name:?}; known: {}", known.join(", "))
                })?;
                vec![p.clone()]
            };
            for p in found {
                if !out.iter().any(|q| q.name() == p.name()) {
                    out.push(p);
                }
            }
        }
        if out.is_empty() {
            return Err("no policy given".into());
        }
        Ok(out)
    }

    /// `orca-lb/choices=<k>`: orca-lb with the scenario's settings but
    /// `ScoreConfig::choices = k` (how many random candidates a unary pick
    /// compares), to compare k without a `[[sim.variants]]` entry.
    fn orca_with_choices(scenario: &Scenario, k: &str) -> Result<Policy, String> {
        let choices: usize = k
            .parse()
            .map_err(|_| format!("orca-lb/choices={k}: not a whole number"))?;
        let mut config = scenario.orca_config();
        config.score.choices = choices;
        config
            .validate()
            .map_err(|e| format!("orca-lb/choices={k}: {e}"))?;
        Ok(Policy::OrcaLb {
            name: format!("orca-lb/choices={choices}"),
            config: Box::new(config),
        })
    }

    /// The experimental policies, named only.
    fn experiment(name: &str) -> Option<Policy> {
        match name {
            "c3/p2c" => Some(Policy::C3Part {
                name: "c3/p2c",
                two_choices: true,
                compensation: true,
            }),
            "c3/no-compensation" => Some(Policy::C3Part {
                name: "c3/no-compensation",
                two_choices: false,
                compensation: false,
            }),
            _ => None,
        }
    }

    /// Whether this is the central-queue oracle, which has no clients.
    pub fn is_limit(&self) -> bool {
        matches!(self, Policy::Limit)
    }

    /// One client's instance of the policy over `backends` endpoints, in a
    /// fleet of `clients`; `zones` where the scenario has them.
    pub(crate) fn client(
        &self,
        backends: usize,
        clients: u32,
        seed: u64,
        clock: Clock,
        oob_period: Option<Nanos>,
        zones: Option<ClientZones>,
    ) -> Box<dyn Client> {
        match self {
            Policy::Rr => Box::new(RoundRobin::new(backends, seed)),
            Policy::Random => Box::new(Random::new(backends, seed)),
            Policy::P2cLr => Box::new(LeastRequestP2c::new(backends, seed)),
            Policy::P2cPeakEwma => Box::new(PeakEwmaP2c::new(backends, seed, clock)),
            Policy::WrrOrca => Box::new(Wrr::new(backends, seed, clock, oob_period)),
            Policy::Prequal => Box::new(Prequal::new(backends, seed)),
            Policy::C3 => Box::new(C3::new(backends, seed, clients)),
            Policy::C3Part {
                two_choices,
                compensation,
                ..
            } => {
                let n = if *compensation { clients } else { 0 };
                Box::new(C3::new(backends, seed, n).with_two_choices(*two_choices))
            }
            Policy::OrcaLb { config, .. } => {
                Box::new(OrcaLb::new(backends, clients, seed, clock, config, zones))
            }
            Policy::RingHash => Box::new(RingHash::new(backends, seed)),
            Policy::OrcaAffinity { epsilon, config } => Box::new(
                OrcaLb::new(backends, clients, seed, clock, config, zones).with_affinity(*epsilon),
            ),
            Policy::Limit => unreachable!("the limit has no clients"),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one client and every backend run (the scenario's `[zones]`), for
/// the policies that prefer their own zone.
#[derive(Debug, Clone)]
pub(crate) struct ClientZones {
    /// The client's zone.
    pub(crate) local: Zone,
    /// Every backend's zone, by backend index (those yet to join too).
    pub(crate) backends: Vec<Zone>,
}

/// Where a client sends a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pick {
    /// The backend.
    pub(crate) backend: usize,
    /// Whether the call holds a HalfOpen probe (orca-lb).
    pub(crate) probe: bool,
}

/// How a call ended, as its client sees it.
#[derive(Debug)]
pub(crate) struct Done<'a> {
    pub(crate) backend: usize,
    pub(crate) stream: bool,
    pub(crate) probe: bool,
    /// A failure status (UNAVAILABLE, DEADLINE_EXCEEDED).
    pub(crate) failed: bool,
    /// Pick to outcome, for unary calls.
    pub(crate) latency: Option<Nanos>,
    /// The report the response carried (none at a client-side deadline).
    pub(crate) report: Option<&'a LoadReport>,
    /// When the client learned the outcome.
    pub(crate) now: Nanos,
}

/// One simulated client's balancer.
pub(crate) trait Client {
    /// Picks a backend for a new call (or stream), counting it as the
    /// client's own load there; `None` when none is available.
    fn pick(&mut self, stream: bool, now: Nanos) -> Option<Pick>;

    /// Picks a backend for a new call with affinity key `key` (`None`: no
    /// key); by default the key is ignored (see [`pick`](Self::pick)).
    fn pick_keyed(&mut self, stream: bool, _key: Option<u32>, now: Nanos) -> Option<Pick> {
        self.pick(stream, now)
    }

    /// How many times a server may hand one unary call back unserved for
    /// this client to pick again (0: its calls are never offered).
    fn hand_backs(&self) -> u32 {
        0
    }

    /// A unary call picked at `picked` on `backend` was handed back
    /// unserved with `report`: forget it there and pick again, avoiding
    /// `backend`.
    fn repick_handed_back(
        &mut self,
        _backend: usize,
        _report: Option<&LoadReport>,
        _picked: Nanos,
        _now: Nanos,
    ) -> Option<Pick> {
        None
    }

    /// A call (or stream) ended.
    fn done(&mut self, done: Done<'_>);

    /// Whether this policy reads per-call reports (else none are built).
    fn reads_reports(&self) -> bool {
        false
    }

    /// The period of [`tick`](Self::tick), if the policy has one.
    fn tick_interval(&self) -> Option<Nanos> {
        None
    }

    /// Periodic upkeep.
    fn tick(&mut self, _now: Nanos) {}

    /// The out-of-band report period, if subscribed.
    fn oob_period(&self) -> Option<Nanos> {
        None
    }

    /// An out-of-band report from `backend`.
    fn oob_report(&mut self, _backend: usize, _report: &LoadReport, _now: Nanos) {}

    /// Backends joined the fleet: there are `len` now (never fewer than
    /// before), the new ones last, first known at `now`.
    fn grow(&mut self, len: usize, now: Nanos);

    /// The backends to probe now, after a pick at `now`, pushed onto `out`
    /// (Prequal); none by default.
    fn probes(&mut self, _now: Nanos, _out: &mut Vec<usize>) {}

    /// A probe's answer from `backend`: its calls in flight and the latency
    /// it recently saw at that many (`None`: no call answered yet).
    fn probe_reply(&mut self, _backend: usize, _rif: u32, _latency: Option<Nanos>, _now: Nanos) {}
}
