//! Keyed calls: Zipf-distributed keys, and the per-backend cache whose hits
//! make a call cheaper, to measure what session affinity buys.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;

/// Keys `0..count` drawn with probability proportional to `1 / (k + 1)^s`
/// (Zipf): a few hot keys and a long tail.
#[derive(Debug, Clone)]
pub struct ZipfKeys {
    /// The cumulative distribution, ending at 1.
    cdf: Vec<f64>,
}

impl ZipfKeys {
    /// Keys `0..count` with exponent `s`.
    pub fn new(count: u32, s: f64) -> Self {
        let weights: Vec<f64> = (1..=count).map(|k| f64::from(k).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cdf = weights
            .into_iter()
            .map(|w| {
                sum += w / total;
                sum
            })
            .collect();
        Self { cdf }
    }

    /// One key.
    pub fn draw(&self, rng: &mut impl Rng) -> u32 {
        let u: f64 = rng.random();
        let k = self
            .cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1);
        k as u32
    }
}

/// A backend's cache of the last `capacity` keys it served (least recently
/// used evicted).
#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    capacity: usize,
    /// Key to the stamp of its last use.
    stamps: HashMap<u32, u64>,
    /// Stamp to key, oldest first.
    order: BTreeMap<u64, u32>,
    clock: u64,
}

impl KeyCache {
    /// An empty cache of `capacity` keys.
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity: capacity as usize,
            ..Self::default()
        }
    }

    /// Serves `key`: whether it was cached; it is cached (most recently
    /// used) after.
    pub fn access(&mut self, key: u32) -> bool {
        self.clock += 1;
        let hit = if let Some(old) = self.stamps.insert(key, self.clock) {
            self.order.remove(&old);
            true
        } else {
            false
        };
        self.order.insert(self.clock, key);
        if self.stamps.len() > self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.stamps.remove(&oldest);
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn the_cache_evicts_the_least_recently_used() {
        let mut c = KeyCache::new(2);
        assert!(!c.access(1));
        assert!(!c.access(2));
        assert!(c.access(1));
        assert!(!c.access(3)); // evicts 2
        assert!(c.access(1));
        assert!(!c.access(2));
    }

    #[test]
    fn zipf_keys_favour_the_first() {
        let z = ZipfKeys::new(1000, 1.0);
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 100_000;
        let first = (0..n).filter(|_| z.draw(&mut rng) == 0).count();
        // 1 / H(1000) = 0.1336.
        let share = first as f64 / f64::from(n);
        assert!((0.125..0.142).contains(&share), "{share}");
    }
}
