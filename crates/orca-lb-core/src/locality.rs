//! Locality: which zone a pick looks in first.

use std::fmt;

use rand::Rng;

use crate::Zone;

/// The default [`LocalityConfig::threshold`].
pub const DEFAULT_SPILL_THRESHOLD: f64 = 0.8;

/// The default [`LocalityConfig::hysteresis`].
pub const DEFAULT_SPILL_HYSTERESIS: f64 = 0.1;

/// Prefer endpoints in the client's own zone while that zone is not too
/// loaded, and spill over to other zones beyond it.
///
/// The local zone's load is the mean, over its eligible endpoints, of
/// reported utilization plus queue per slot (see
/// [`EndpointLoad`](crate::EndpointLoad)); the share of picks that go to
/// other zones is a [`ZonePreference`](crate::ZonePreference).
///
/// ```
/// use orca_lb_core::{LocalityConfig, Zone};
///
/// let config = LocalityConfig::new(Zone::new("us-east-1a").unwrap()).with_threshold(0.7);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.hysteresis, 0.1);
/// let bad = config.with_hysteresis(0.9);
/// assert_eq!(bad.validate().unwrap_err().field(), "hysteresis");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LocalityConfig {
    /// The client's own zone.
    pub local_zone: Zone,
    /// The local zone's load (0 to 1) above which picks start to spill to
    /// other zones. Default: [`DEFAULT_SPILL_THRESHOLD`].
    pub threshold: f64,
    /// How far below the threshold the load must fall before picks come
    /// back. Default: [`DEFAULT_SPILL_HYSTERESIS`].
    pub hysteresis: f64,
}

impl LocalityConfig {
    /// Prefer `local_zone`, with the default threshold and hysteresis.
    pub fn new(local_zone: Zone) -> Self {
        Self {
            local_zone,
            threshold: DEFAULT_SPILL_THRESHOLD,
            hysteresis: DEFAULT_SPILL_HYSTERESIS,
        }
    }

    /// Sets [`threshold`](Self::threshold).
    #[must_use]
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets [`hysteresis`](Self::hysteresis).
    #[must_use]
    pub fn with_hysteresis(mut self, hysteresis: f64) -> Self {
        self.hysteresis = hysteresis;
        self
    }

    /// Checks the settings: the threshold in (0, 1], the hysteresis in
    /// [0, threshold).
    pub fn validate(&self) -> Result<(), InvalidLocality> {
        let t = self.threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(InvalidLocality {
                field: "threshold",
                value: t,
                why: "must be in (0, 1]",
            });
        }
        let h = self.hysteresis;
        if !(h >= 0.0 && h < t) {
            return Err(InvalidLocality {
                field: "hysteresis",
                value: h,
                why: "must be at least 0 and below the threshold",
            });
        }
        Ok(())
    }
}

/// A [`LocalityConfig`] was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidLocality {
    field: &'static str,
    value: f64,
    why: &'static str,
}

impl InvalidLocality {
    /// The offending field, as `threshold`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for InvalidLocality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} {}", self.field, self.value, self.why)
    }
}

impl std::error::Error for InvalidLocality {}

/// Which endpoints a pick looks at first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneSide {
    /// Those in the client's zone.
    Local,
    /// Those in other zones, or in none.
    Remote,
}

impl ZoneSide {
    /// Remote with probability `spill`, else Local: one draw per pick.
    pub fn draw<R: Rng + ?Sized>(rng: &mut R, spill: f64) -> ZoneSide {
        if spill > 0.0 && rng.random::<f64>() < spill {
            ZoneSide::Remote
        } else {
            ZoneSide::Local
        }
    }
}

/// The indices of an endpoint list split by zone: those in the local zone
/// and the others (an endpoint without a zone counts as another zone's).
/// Built once per list, when it changes, so that a pick only reads it.
///
/// ```
/// use orca_lb_core::{ZoneIndex, ZoneSide, Zone};
///
/// let (a, b) = (Zone::new("a").unwrap(), Zone::new("b").unwrap());
/// let index = ZoneIndex::new(&a, [Some(&a), Some(&b), None, Some(&a)]);
/// assert_eq!(index.side(ZoneSide::Local), &[0, 3]);
/// assert_eq!(index.side(ZoneSide::Remote), &[1, 2]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneIndex {
    local: Vec<u32>,
    remote: Vec<u32>,
    len: usize,
}

impl ZoneIndex {
    /// Splits a list whose endpoints are in `zones`, in list order.
    pub fn new<'a>(local: &Zone, zones: impl IntoIterator<Item = Option<&'a Zone>>) -> Self {
        let mut index = ZoneIndex::default();
        for (i, zone) in zones.into_iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 endpoints");
            if zone == Some(local) {
                index.local.push(i);
            } else {
                index.remote.push(i);
            }
            index.len += 1;
        }
        index
    }

    /// The indices on one side, in list order.
    pub fn side(&self, side: ZoneSide) -> &[u32] {
        match side {
            ZoneSide::Local => &self.local,
            ZoneSide::Remote => &self.remote,
        }
    }

    /// Picks on `side` first, then, if that found nothing (the side is
    /// empty or none of it is eligible), among every endpoint.
    ///
    /// `pick(Some(subset))` picks among the list indices in `subset`,
    /// `pick(None)` among the whole list; both return a list index, or
    /// `None` when nothing is eligible. A side that holds the whole list is
    /// not picked in twice.
    pub fn pick_preferring<F>(&self, side: ZoneSide, mut pick: F) -> Option<usize>
    where
        F: FnMut(Option<&[u32]>) -> Option<usize>,
    {
        let subset = self.side(side);
        if subset.len() == self.len {
            return pick(None);
        }
        if !subset.is_empty()
            && let Some(i) = pick(Some(subset))
        {
            return Some(i);
        }
        pick(None)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn zone(s: &str) -> Zone {
        Zone::new(s).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let c = LocalityConfig::new(zone("a"));
        assert_eq!((c.threshold, c.hysteresis), (0.8, 0.1));
        assert!(c.validate().is_ok());
        for t in [0.0, -0.1, 1.5, f64::NAN] {
            let e = c.clone().with_threshold(t).validate().unwrap_err();
            assert_eq!(e.field(), "threshold", "{t}");
        }
        for h in [-0.1, 0.8, f64::NAN] {
            let e = c.clone().with_hysteresis(h).validate().unwrap_err();
            assert_eq!(e.field(), "hysteresis", "{h}");
        }
        assert!(
            c.clone()
                .with_threshold(1.0)
                .with_hysteresis(0.0)
                .validate()
                .is_ok()
        );
        assert_eq!(
            c.with_hysteresis(0.9).validate().unwrap_err().to_string(),
            "hysteresis = 0.9 must be at least 0 and below the threshold"
        );
    }

    #[test]
    fn the_side_is_remote_with_the_spill_probability() {
        let mut rng = SmallRng::seed_from_u64(1);
        for spill in [0.0, 0.3, 1.0] {
            let remote = (0..20_000)
                .filter(|_| ZoneSide::draw(&mut rng, spill) == ZoneSide::Remote)
                .count();
            let share = remote as f64 / 20_000.0;
            assert!((share - spill).abs() < 0.02, "{spill}: {share}");
        }
    }

    #[test]
    fn the_index_splits_by_zone() {
        let (a, b) = (zone("a"), zone("b"));
        let index = ZoneIndex::new(&b, [Some(&a), Some(&b), None, Some(&b)]);
        assert_eq!(index.side(ZoneSide::Local), &[1, 3]);
        assert_eq!(index.side(ZoneSide::Remote), &[0, 2]);
        assert_eq!(ZoneIndex::new(&a, []), ZoneIndex::default());
    }

    #[test]
    fn a_side_with_nothing_eligible_falls_back_to_every_endpoint() {
        let (a, b) = (zone("a"), zone("b"));
        let index = ZoneIndex::new(&a, [Some(&a), Some(&b), Some(&b)]);
        let mut asked = Vec::new();
        // The local endpoint is eligible: picked there.
        let got = index.pick_preferring(ZoneSide::Local, |s| {
            asked.push(s.map(<[u32]>::to_vec));
            s.map(|s| s[0] as usize)
        });
        assert_eq!(got, Some(0));
        assert_eq!(asked, [Some(vec![0])]);
        // Nothing eligible locally: every endpoint.
        asked.clear();
        let got = index.pick_preferring(ZoneSide::Local, |s| {
            asked.push(s.map(<[u32]>::to_vec));
            if s.is_some() { None } else { Some(2) }
        });
        assert_eq!(got, Some(2));
        assert_eq!(asked, [Some(vec![0]), None]);
    }

    #[test]
    fn an_empty_or_whole_side_is_picked_in_once() {
        let a = zone("a");
        let index = ZoneIndex::new(&a, [Some(&a), Some(&a)]);
        let mut calls = 0;
        // Remote is empty: straight to the whole list.
        index.pick_preferring(ZoneSide::Remote, |s| {
            calls += 1;
            assert!(s.is_none());
            None
        });
        // Local is the whole list: once.
        index.pick_preferring(ZoneSide::Local, |s| {
            calls += 1;
            assert!(s.is_none());
            None
        });
        assert_eq!(calls, 2);
    }
}
