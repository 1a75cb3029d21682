//! How much of a client's traffic leaves its own zone: a share that rises
//! while the local zone is loaded and falls back once it is not.

use std::time::{Duration, Instant};

use crate::{EndpointState, LocalityConfig};

/// How fast the spill share rises while the local zone's load is above the
/// threshold, per second: from nothing to everything in one second.
pub const SPILL_RISE_PER_SEC: f64 = 1.0;

/// How fast the spill share falls while the local zone's load is below the
/// threshold minus the hysteresis, per second: four times slower than it
/// rises, so that calls come back gradually and do not overload the zone
/// they just left.
pub const SPILL_FALL_PER_SEC: f64 = 0.25;

/// What one endpoint contributes to its zone's load: its smoothed reported
/// utilization plus its smoothed queue per worker slot, capped at 1, weighed
/// by how fresh its reports are.
///
/// The weight matters once a zone spills everything: its endpoints get no
/// calls, so no reports, and their last (high) load would keep the spill at
/// 1 for good. As the score relaxes stale estimates, a stale load relaxes
/// toward 0, so calls come back and bring fresh reports.
///
/// ```
/// use orca_lb_core::EndpointLoad;
///
/// let load = EndpointLoad {
///     utilization: Some(0.5),
///     queue_depth: Some(2.0),
///     capacity: Some(8.0),
///     freshness: 1.0,
/// };
/// assert_eq!(load.value(), 0.75);
/// assert_eq!(EndpointLoad { freshness: 0.5, ..load }.value(), 0.375);
/// // Nothing reported yet: no load.
/// assert_eq!(EndpointLoad::default().value(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EndpointLoad {
    /// Smoothed reported utilization, 0 to 1.
    pub utilization: Option<f64>,
    /// Smoothed reported queue depth.
    pub queue_depth: Option<f64>,
    /// Reported worker slots (1 when not reported).
    pub capacity: Option<f64>,
    /// The weight of the reports, 0 to 1: `exp(-age / stale_after)` of the
    /// last one (as [`CostTerms::freshness`](crate::CostTerms::freshness)).
    pub freshness: f64,
}

impl EndpointLoad {
    /// The load of an endpoint as its signals say at `now`, its reports
    /// aging over `stale_after` ([`ScoreConfig::stale_after`](crate::ScoreConfig::stale_after)).
    pub fn of(state: &EndpointState, stale_after: Duration, now: Instant) -> Self {
        let stale = stale_after.as_secs_f64();
        let freshness = state.report_age(now).map_or(0.0, |age| {
            if stale > 0.0 {
                (-age.as_secs_f64() / stale).exp()
            } else {
                1.0
            }
        });
        Self {
            utilization: state.utilization(),
            queue_depth: state.queue_depth(),
            capacity: state.estimate().capacity,
            freshness,
        }
    }

    /// `freshness * (utilization + queue_depth / capacity)`, the sum capped
    /// at 1 (missing values count as 0, a missing capacity as 1 slot).
    pub fn value(&self) -> f64 {
        let slots = self.capacity.unwrap_or(1.0).max(1.0);
        let v = self.utilization.unwrap_or(0.0) + self.queue_depth.unwrap_or(0.0) / slots;
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            1.0
        };
        v * self.freshness.clamp(0.0, 1.0)
    }
}

/// The mean of `loads` (each an [`EndpointLoad::value`]), or `None` when
/// there is none: no endpoint of the zone can take a call.
pub fn zone_load(loads: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = loads
        .into_iter()
        .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// The share of picks sent to other zones (the spill), as a state machine
/// driven by the local zone's load and the other zones', with time passed
/// in.
///
/// - Local load above `threshold`, and above the other zones' by more than
///   `hysteresis` (or theirs unknown): the spill rises at
///   [`SPILL_RISE_PER_SEC`].
/// - Local load below `threshold - hysteresis`, or the other zones' load
///   above the local one by more than `hysteresis`: it falls at
///   [`SPILL_FALL_PER_SEC`]. Spilling into zones busier than this one only
///   moves the queue and adds the cross-zone round trip: when every zone is
///   overloaded each keeps its own calls.
/// - In between: it stays where it is, so that the spill settles where the
///   local zone's load does (or where the zones' loads meet), instead of
///   flapping around the threshold.
/// - No eligible endpoint in the local zone: the spill is 1 at once.
///
/// ```
/// use std::time::{Duration, Instant};
/// use orca_lb_core::{LocalityConfig, Zone, ZonePreference};
///
/// let config = LocalityConfig::new(Zone::new("a").unwrap());
/// let mut pref = ZonePreference::new(&config);
/// let t0 = Instant::now();
/// // The local zone's load, then the other zones'.
/// assert_eq!(pref.update(Some(0.95), Some(0.3), t0), 0.0);
/// // Half a second above the threshold: half the picks leave the zone.
/// assert_eq!(pref.update(Some(0.95), Some(0.3), t0 + Duration::from_millis(500)), 0.5);
/// // Two seconds well below it: they all come back.
/// assert_eq!(pref.update(Some(0.2), Some(0.3), t0 + Duration::from_millis(2500)), 0.0);
/// ```
#[derive(Debug, Clone)]
pub struct ZonePreference {
    threshold: f64,
    hysteresis: f64,
    spill: f64,
    last: Option<Instant>,
}

impl ZonePreference {
    /// No spill yet, with `config`'s threshold and hysteresis.
    pub fn new(config: &LocalityConfig) -> Self {
        Self {
            threshold: config.threshold,
            hysteresis: config.hysteresis,
            spill: 0.0,
            last: None,
        }
    }

    /// The share of picks that go to other zones now, 0 to 1.
    pub fn spill(&self) -> f64 {
        self.spill
    }

    /// Takes in the local zone's load and the other zones' at `now`
    /// ([`zone_load`] of each side; `None` when the side has no eligible
    /// endpoint) and returns the new spill share. The share moves by the
    /// time since the previous update; the first update only starts the
    /// clock (but for a local `None`, which spills at once).
    pub fn update(&mut self, local: Option<f64>, remote: Option<f64>, now: Instant) -> f64 {
        let dt = self
            .last
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last = Some(now.max(self.last.unwrap_or(now)));
        let Some(l) = local else {
            self.spill = 1.0;
            return self.spill;
        };
        let remote_busier = remote.is_some_and(|r| r > l + self.hysteresis);
        let remote_idler = remote.is_none_or(|r| r < l - self.hysteresis);
        if l < self.threshold - self.hysteresis || remote_busier {
            self.spill = (self.spill - SPILL_FALL_PER_SEC * dt).max(0.0);
        } else if l > self.threshold && remote_idler {
            self.spill = (self.spill + SPILL_RISE_PER_SEC * dt).min(1.0);
        }
        self.spill
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Zone;

    #[expect(
        clippy::disallowed_methods,
        reason = "tests need one real instant to offset from"
    )]
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pref() -> ZonePreference {
        ZonePreference::new(&LocalityConfig::new(Zone::new("a").unwrap()))
    }

    #[test]
    fn endpoint_load_adds_the_queue_per_slot_and_caps_at_one() {
        let l = |u, q, c| {
            EndpointLoad {
                utilization: u,
                queue_depth: q,
                capacity: c,
                freshness: 1.0,
            }
            .value()
        };
        assert_eq!(l(Some(0.3), None, None), 0.3);
        assert_eq!(l(Some(0.3), Some(1.0), Some(4.0)), 0.55);
        assert_eq!(
            l(None, Some(1.0), None),
            1.0,
            "a queue without slots: 1 slot"
        );
        assert_eq!(l(Some(0.9), Some(10.0), Some(2.0)), 1.0);
        assert_eq!(
            l(Some(0.5), Some(1.0), Some(0.5)),
            1.0,
            "fewer than 1 slot: 1"
        );
    }

    #[test]
    fn an_endpoint_load_relaxes_toward_zero_as_its_reports_age() {
        let t = t0();
        let config = crate::ScoreConfig::default();
        let mut state = EndpointState::new(&config, t);
        let load = |state: &EndpointState, at| EndpointLoad::of(state, ms(2_000), at).value();
        assert_eq!(load(&state, t), 0.0, "no report: no load");
        let report = crate::LoadReport::try_from(crate::RawLoadReport {
            application_utilization: 0.9,
            ..crate::RawLoadReport::default()
        })
        .unwrap();
        state.on_report(&report, crate::LocalLoad::default(), t);
        assert!((load(&state, t) - 0.9).abs() < 1e-9);
        // One stale_after later: 1/e of it.
        let later = load(&state, t + ms(2_000));
        assert!((later - 0.9 * (-1.0_f64).exp()).abs() < 1e-9, "{later}");
        assert!(load(&state, t + ms(20_000)) < 0.001);
    }

    #[test]
    fn zone_load_is_the_mean_or_none() {
        assert_eq!(zone_load([]), None);
        assert_eq!(zone_load([0.2, 0.4, 0.9]), Some(0.5));
    }

    #[test]
    fn rises_at_one_per_second_above_the_threshold_and_saturates() {
        let t = t0();
        let mut p = pref();
        assert_eq!(
            p.update(Some(0.9), None, t),
            0.0,
            "the first update starts the clock"
        );
        assert!((p.update(Some(0.9), None, t + ms(250)) - 0.25).abs() < 1e-9);
        assert!((p.update(Some(0.9), None, t + ms(600)) - 0.6).abs() < 1e-9);
        assert_eq!(p.update(Some(0.9), None, t + ms(5_000)), 1.0);
    }

    #[test]
    fn falls_at_a_quarter_per_second_below_the_hysteresis_band() {
        let t = t0();
        let mut p = pref();
        p.update(Some(1.0), None, t);
        p.update(Some(1.0), None, t + ms(1_000));
        assert_eq!(p.spill(), 1.0);
        assert!((p.update(Some(0.5), None, t + ms(2_000)) - 0.75).abs() < 1e-9);
        assert!((p.update(Some(0.69), None, t + ms(3_000)) - 0.5).abs() < 1e-9);
        assert_eq!(p.update(Some(0.0), None, t + ms(10_000)), 0.0);
    }

    #[test]
    fn holds_inside_the_hysteresis_band() {
        let t = t0();
        let mut p = pref();
        p.update(Some(0.9), None, t);
        p.update(Some(0.9), None, t + ms(400));
        // Between 0.7 and 0.8 (the threshold itself included): no change.
        for (i, load) in [0.75, 0.8, 0.71, 0.705].into_iter().enumerate() {
            let s = p.update(Some(load), None, t + ms(1_000 * (i as u64 + 1)));
            assert!((s - 0.4).abs() < 1e-9, "{load}: {s}");
        }
    }

    #[test]
    fn no_eligible_local_endpoint_spills_everything_at_once() {
        let t = t0();
        let mut p = pref();
        assert_eq!(p.update(None, None, t), 1.0);
        // Back with a light load: falls from 1 gradually.
        assert!((p.update(Some(0.1), None, t + ms(1_000)) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn a_time_going_backwards_moves_nothing() {
        let t = t0() + ms(10_000);
        let mut p = pref();
        p.update(Some(0.9), None, t);
        p.update(Some(0.9), None, t + ms(500));
        assert!((p.update(Some(0.9), None, t) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_zone_does_not_spill_into_busier_zones_and_takes_its_calls_back_from_them() {
        let t = t0();
        let mut p = pref();
        p.update(Some(0.95), Some(0.95), t);
        // Every zone overloaded: spilling would only move the queue.
        assert_eq!(p.update(Some(0.95), Some(0.95), t + ms(1_000)), 0.0);
        assert_eq!(p.update(Some(0.95), Some(0.9), t + ms(2_000)), 0.0);
        // The other zones clearly less loaded: spill.
        assert!((p.update(Some(0.95), Some(0.5), t + ms(2_500)) - 0.5).abs() < 1e-9);
        // Their load meets ours (within the hysteresis): hold.
        assert!((p.update(Some(0.9), Some(0.85), t + ms(3_500)) - 0.5).abs() < 1e-9);
        // Now they are the busier ones: calls come back, though this zone is
        // still above the threshold.
        assert!((p.update(Some(0.85), Some(1.0), t + ms(4_500)) - 0.25).abs() < 1e-9);
    }
}
