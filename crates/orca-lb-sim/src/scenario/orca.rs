//! orca-lb's settings in the simulator, and overrides of them.

use std::time::Duration;

use orca_lb_core::{CircuitBreakerConfig, EjectionBudget, ScoreConfig};
use serde::{Deserialize, Serialize};

use crate::clock::{Nanos, millis};

/// What a simulated orca-lb client is configured with: the parts of
/// `orca_lb_client::BalancerConfig` that decide where calls go.
///
/// [`Default`] is the production default: the core types' defaults are the
/// balancer's, and the maintenance interval is the balancer's 50 ms. (The
/// simulator does not depend on the client crate, which brings tokio and
/// tonic along.)
#[derive(Debug, Clone, PartialEq)]
pub struct OrcaConfig {
    /// How the score smooths and weighs signals.
    pub score: ScoreConfig,
    /// When an endpoint is ejected and how it comes back.
    pub breaker: CircuitBreakerConfig,
    /// How many endpoints may be out at once.
    pub ejection: EjectionBudget,
    /// How often breaker deadlines and fleet medians are updated.
    pub maintenance_interval: Nanos,
    /// Out-of-band report period, if subscribed.
    pub oob_period: Option<Nanos>,
    /// `BalancerConfig::hand_backs`: times a busy server may hand one unary
    /// call back unserved for another pick (0: calls are never offered).
    pub hand_backs: u32,
    /// Experiments on herding between many clients, off by default.
    pub herding: HerdingExperiment,
    /// Locality (`BalancerConfig::locality`): prefer backends in the
    /// client's zone (the scenario's `[zones]`). Off by default; without
    /// `[zones]` it changes nothing.
    pub locality: Option<LocalitySettings>,
}

/// The settings of locality but the zone, which each client takes from the
/// scenario's `[zones]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalitySettings {
    /// `LocalityConfig::threshold`.
    pub threshold: f64,
    /// `LocalityConfig::hysteresis`.
    pub hysteresis: f64,
}

impl Default for LocalitySettings {
    fn default() -> Self {
        Self {
            threshold: orca_lb_core::DEFAULT_SPILL_THRESHOLD,
            hysteresis: orca_lb_core::DEFAULT_SPILL_HYSTERESIS,
        }
    }
}

impl LocalitySettings {
    /// The core's config for a client in `zone`.
    pub fn config(&self, zone: orca_lb_core::Zone) -> orca_lb_core::LocalityConfig {
        orca_lb_core::LocalityConfig::new(zone)
            .with_threshold(self.threshold)
            .with_hysteresis(self.hysteresis)
    }
}

/// Experimental parts against herding between many clients, tried as
/// `orca-lb/<variant>` only; the defaults turn them off.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HerdingExperiment {
    /// Compensation for this client's own picks since the endpoint's last
    /// report: each counts `pick_compensation * (n - 1)` calls more in the
    /// backlog (rounded), `n` the number of clients the report says call
    /// the endpoint: the calls the other clients, seeing the same picture,
    /// are expected to have sent since. 0 turns it off.
    pub pick_compensation: f64,
    /// A nonlinear in-flight penalty: `cubic_penalty * service_time *
    /// (backlog / capacity)^3` added to the score, so that an endpoint
    /// whose expected backlog exceeds its slots costs much more. 0 turns it
    /// off.
    pub cubic_penalty: f64,
    /// Compensation for this client's own unary calls in flight: each
    /// counts `1 + own_compensation * (n - 1)` calls in the backlog
    /// (rounded), `n` the number of clients: the calls the other clients,
    /// drawing like this one, are expected to have there. 0 turns it off.
    pub own_compensation: f64,
}

impl Default for OrcaConfig {
    fn default() -> Self {
        Self {
            score: ScoreConfig::default(),
            breaker: CircuitBreakerConfig::default(),
            ejection: EjectionBudget::default(),
            maintenance_interval: 50 * crate::clock::MILLISECOND,
            oob_period: None,
            hand_backs: 1,
            herding: HerdingExperiment::default(),
            locality: None,
        }
    }
}

impl OrcaConfig {
    /// Checks every part, as `BalancerConfig::validate` does.
    pub fn validate(&self) -> Result<(), String> {
        self.score.validate().map_err(|e| e.to_string())?;
        self.breaker.validate().map_err(|e| e.to_string())?;
        self.ejection.validate().map_err(|e| e.to_string())?;
        if self.maintenance_interval == 0 {
            return Err("maintenance_interval must be above zero".into());
        }
        if self.oob_period == Some(0) {
            return Err("oob_period must be above zero".into());
        }
        if let Some(l) = &self.locality {
            let zone = orca_lb_core::Zone::new("z").expect("a valid zone");
            l.config(zone)
                .validate()
                .map_err(|e| format!("locality: {e}"))?;
        }
        let h = &self.herding;
        if !(h.pick_compensation >= 0.0 && h.pick_compensation.is_finite()) {
            return Err(format!(
                "pick_compensation must be >= 0, got {}",
                h.pick_compensation
            ));
        }
        if !(h.own_compensation >= 0.0 && h.own_compensation.is_finite()) {
            return Err(format!(
                "own_compensation must be >= 0, got {}",
                h.own_compensation
            ));
        }
        if !(h.cubic_penalty >= 0.0 && h.cubic_penalty.is_finite()) {
            return Err(format!(
                "cubic_penalty must be >= 0, got {}",
                h.cubic_penalty
            ));
        }
        Ok(())
    }
}

/// Changes to orca-lb's settings, field by field; durations in
/// milliseconds. Unset fields keep their value.
///
/// ```toml
/// [sim.orca]
/// stale_after_ms = 1000.0
/// consecutive_errors = 3
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrcaOverrides {
    /// `ScoreConfig::report_decay`.
    pub report_decay_ms: Option<f64>,
    /// `ScoreConfig::latency_decay`.
    pub latency_decay_ms: Option<f64>,
    /// `ScoreConfig::stale_after`.
    pub stale_after_ms: Option<f64>,
    /// `ScoreConfig::error_penalty`.
    pub error_penalty_ms: Option<f64>,
    /// `ScoreConfig::error_step`.
    pub error_step: Option<f64>,
    /// `ScoreConfig::error_decay`.
    pub error_decay_ms: Option<f64>,
    /// `ScoreConfig::slow_start`.
    pub slow_start_ms: Option<f64>,
    /// `ScoreConfig::default_service_time`.
    pub default_service_time_ms: Option<f64>,
    /// `ScoreConfig::base_latency`.
    pub base_latency_ms: Option<f64>,
    /// `ScoreConfig::tie_tolerance`.
    pub tie_tolerance: Option<f64>,
    /// `ScoreConfig::contention`.
    pub contention: Option<f64>,
    /// `ScoreConfig::choices`.
    pub choices: Option<usize>,
    /// `ScoreConfig::backlog_stale_services`.
    pub backlog_stale_services: Option<f64>,
    /// `ScoreConfig::service_time_tolerance`.
    pub service_time_tolerance: Option<f64>,
    /// `ScoreConfig::in_flight_age_floor`.
    pub in_flight_age_floor: Option<f64>,
    /// `CircuitBreakerConfig::consecutive_errors`.
    pub consecutive_errors: Option<u32>,
    /// `CircuitBreakerConfig::base_ejection_time`.
    pub base_ejection_time_ms: Option<f64>,
    /// `CircuitBreakerConfig::max_ejection_time`.
    pub max_ejection_time_ms: Option<f64>,
    /// `CircuitBreakerConfig::half_open_probes`.
    pub half_open_probes: Option<u32>,
    /// `CircuitBreakerConfig::overload_utilization`.
    pub overload_utilization: Option<f64>,
    /// `CircuitBreakerConfig::overload_queue_depth`.
    pub overload_queue_depth: Option<f64>,
    /// `CircuitBreakerConfig::overload_decay`.
    pub overload_decay_ms: Option<f64>,
    /// `CircuitBreakerConfig::overload_min_reports`.
    pub overload_min_reports: Option<u32>,
    /// `EjectionBudget::max_ejected_fraction`.
    pub max_ejected_fraction: Option<f64>,
    /// `EjectionBudget::min_healthy_fraction`.
    pub min_healthy_fraction: Option<f64>,
    /// The balancer's `maintenance_interval`.
    pub maintenance_interval_ms: Option<f64>,
    /// The balancer's `oob_interval` (0 turns it off).
    pub oob_period_ms: Option<f64>,
    /// [`HerdingExperiment::pick_compensation`].
    pub pick_compensation: Option<f64>,
    /// [`HerdingExperiment::cubic_penalty`].
    pub cubic_penalty: Option<f64>,
    /// [`HerdingExperiment::own_compensation`].
    pub own_compensation: Option<f64>,
    /// [`OrcaConfig::hand_backs`].
    pub hand_backs: Option<u32>,
    /// Locality on (true) or off ([`OrcaConfig::locality`]).
    pub locality: Option<bool>,
    /// [`LocalitySettings::threshold`] (turns locality on).
    pub locality_threshold: Option<f64>,
    /// [`LocalitySettings::hysteresis`] (turns locality on).
    pub locality_hysteresis: Option<f64>,
}

/// An extra orca-lb run with other settings: `[[sim.variants]]` with a
/// `name` and a `set` table of [`OrcaOverrides`]. It runs as
/// `orca-lb/<name>`, next to the other policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Shown as `orca-lb/<name>`.
    pub name: String,
    /// What differs from the scenario's orca-lb settings.
    #[serde(default)]
    pub set: OrcaOverrides,
}

impl Variant {
    /// The variant's settings on top of `base`.
    pub fn config(&self, base: &OrcaConfig) -> OrcaConfig {
        self.set.apply(base)
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1e3)
}

impl OrcaOverrides {
    /// `base` with every set field replaced.
    pub fn apply(&self, base: &OrcaConfig) -> OrcaConfig {
        let mut c = base.clone();
        let s = &mut c.score;
        let set_d = |slot: &mut Duration, v: Option<f64>| {
            if let Some(v) = v {
                *slot = ms(v);
            }
        };
        set_d(&mut s.report_decay, self.report_decay_ms);
        set_d(&mut s.latency_decay, self.latency_decay_ms);
        set_d(&mut s.stale_after, self.stale_after_ms);
        set_d(&mut s.error_penalty, self.error_penalty_ms);
        set_d(&mut s.error_decay, self.error_decay_ms);
        set_d(&mut s.slow_start, self.slow_start_ms);
        set_d(&mut s.default_service_time, self.default_service_time_ms);
        set_d(&mut s.base_latency, self.base_latency_ms);
        if let Some(v) = self.error_step {
            s.error_step = v;
        }
        if let Some(v) = self.tie_tolerance {
            s.tie_tolerance = v;
        }
        if let Some(v) = self.contention {
            s.contention = v;
        }
        if let Some(v) = self.choices {
            s.choices = v;
        }
        if let Some(v) = self.backlog_stale_services {
            s.backlog_stale_services = v;
        }
        if let Some(v) = self.in_flight_age_floor {
            s.in_flight_age_floor = v;
        }

        if let Some(v) = self.service_time_tolerance {
            s.service_time_tolerance = v;
        }
        let b = &mut c.breaker;
        set_d(&mut b.base_ejection_time, self.base_ejection_time_ms);
        set_d(&mut b.max_ejection_time, self.max_ejection_time_ms);
        set_d(&mut b.overload_decay, self.overload_decay_ms);
        if let Some(v) = self.consecutive_errors {
            b.consecutive_errors = v;
        }
        if let Some(v) = self.half_open_probes {
            b.half_open_probes = v;
        }
        if let Some(v) = self.overload_utilization {
            b.overload_utilization = v;
        }
        if let Some(v) = self.overload_queue_depth {
            b.overload_queue_depth = Some(v);
        }
        if let Some(v) = self.overload_min_reports {
            b.overload_min_reports = v;
        }
        if let Some(v) = self.max_ejected_fraction {
            c.ejection.max_ejected_fraction = v;
        }
        if let Some(v) = self.min_healthy_fraction {
            c.ejection.min_healthy_fraction = v;
        }
        if let Some(v) = self.maintenance_interval_ms {
            c.maintenance_interval = millis(v);
        }
        if let Some(v) = self.oob_period_ms {
            c.oob_period = (v > 0.0).then(|| millis(v));
        }
        if let Some(v) = self.pick_compensation {
            c.herding.pick_compensation = v;
        }
        if let Some(v) = self.cubic_penalty {
            c.herding.cubic_penalty = v;
        }
        if let Some(v) = self.own_compensation {
            c.herding.own_compensation = v;
        }
        if let Some(v) = self.hand_backs {
            c.hand_backs = v;
        }
        if self.locality == Some(false) {
            c.locality = None;
        } else if self.locality == Some(true)
            || self.locality_threshold.is_some()
            || self.locality_hysteresis.is_some()
        {
            let l = c.locality.get_or_insert_with(LocalitySettings::default);
            if let Some(v) = self.locality_threshold {
                l.threshold = v;
            }
            if let Some(v) = self.locality_hysteresis {
                l.hysteresis = v;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_production_defaults_and_overrides_apply() {
        let base = OrcaConfig::default();
        assert_eq!(base.score, ScoreConfig::default());
        assert_eq!(base.maintenance_interval, 50_000_000);
        let o: OrcaOverrides =
            toml::from_str("stale_after_ms = 500.0\nconsecutive_errors = 2\noob_period_ms = 1000")
                .unwrap();
        let c = o.apply(&base);
        assert_eq!(c.score.stale_after, Duration::from_millis(500));
        assert_eq!(c.breaker.consecutive_errors, 2);
        assert_eq!(c.oob_period, Some(1_000_000_000));
        assert_eq!(c.score.tie_tolerance, base.score.tie_tolerance);
        assert_eq!(c.herding, HerdingExperiment::default(), "off by default");
        assert_eq!(c.locality, None, "off by default");
        let on: OrcaOverrides = toml::from_str("locality = true").unwrap();
        assert_eq!(on.apply(&base).locality, Some(LocalitySettings::default()));
        let tuned: OrcaOverrides = toml::from_str("locality_threshold = 0.6").unwrap();
        let tuned = tuned.apply(&base);
        assert_eq!(tuned.locality.unwrap().threshold, 0.6);
        let bad: OrcaOverrides = toml::from_str("locality_hysteresis = 0.9").unwrap();
        assert!(
            bad.apply(&base)
                .validate()
                .unwrap_err()
                .contains("hysteresis")
        );
    }

    #[test]
    fn herding_experiments_apply_and_bad_values_are_named() {
        let o: OrcaOverrides =
            toml::from_str("pick_compensation = 0.5\ncubic_penalty = 2.0").unwrap();
        let c = o.apply(&OrcaConfig::default());
        assert_eq!(c.herding.pick_compensation, 0.5);
        assert_eq!(c.herding.cubic_penalty, 2.0);
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.herding.pick_compensation = -1.0;
        assert!(bad.validate().unwrap_err().contains("pick_compensation"));
        let mut bad = c;
        bad.herding.cubic_penalty = f64::NAN;
        assert!(bad.validate().unwrap_err().contains("cubic_penalty"));
    }
}
