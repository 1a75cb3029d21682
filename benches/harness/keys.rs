//! Keyed calls on real servers: each call's key (drawn as the simulator
//! draws it), sent as a metadata entry, and the backends' caches, modelled
//! as the simulator models them.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use orca_lb_sim::{KeyCache, Keys, ZipfKeys};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

use crate::schedule::Planned;

/// The metadata entry a keyed call carries its key in (decimal), which
/// `orca-lb/affinity` and `ring_hash` hash.
pub(crate) const KEY_METADATA: &str = "x-harness-key";

/// Gives every call of `schedule` a key from the scenario's Zipf
/// distribution. Its own random stream: the send times do not change, and
/// every policy of a repetition gets the same keys.
pub(crate) fn assign(schedule: &mut [Planned], keys: &Keys, seed: u64) {
    let zipf = ZipfKeys::new(keys.count, keys.zipf_s);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6861_726e_6573_7333);
    for p in schedule {
        p.key = Some(zipf.draw(&mut rng));
    }
}

/// The key of a request's metadata, if it has one.
pub(crate) fn key_of(metadata: &tonic::metadata::MetadataMap) -> Option<u32> {
    metadata.get(KEY_METADATA)?.to_str().ok()?.parse().ok()
}

/// What a call's key found: not served (yet), a miss, a hit.
const NOT_SERVED: u8 = 0;
const MISS: u8 = 1;
const HIT: u8 = 2;

/// Every backend's cache of one run (least recently used keys, as many as
/// the scenario says), the hits and misses each counted, and what each
/// call found.
#[derive(Debug)]
pub(crate) struct Caches {
    caches: Vec<Mutex<KeyCache>>,
    hits: Vec<AtomicU64>,
    misses: Vec<AtomicU64>,
    /// Per call number.
    calls: Box<[AtomicU8]>,
    hit_factor: f64,
}

/// One backend's cache over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CacheCounts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl Caches {
    /// Empty caches for `backends` backends and a run of `calls` calls.
    pub(crate) fn new(keys: &Keys, backends: usize, calls: usize) -> Self {
        Self {
            caches: (0..backends)
                .map(|_| Mutex::new(KeyCache::new(keys.cache_size)))
                .collect(),
            hits: (0..backends).map(|_| AtomicU64::new(0)).collect(),
            misses: (0..backends).map(|_| AtomicU64::new(0)).collect(),
            calls: (0..calls).map(|_| AtomicU8::new(NOT_SERVED)).collect(),
            hit_factor: keys.hit_factor,
        }
    }

    /// `backend` starts serving call `call` (if numbered) with `key`:
    /// looks the key up (it is cached after) and returns the factor of the
    /// call's service time, `hit_factor` on a hit, 1 on a miss.
    pub(crate) fn serve(&self, backend: usize, call: Option<u32>, key: u32) -> f64 {
        let hit = self.caches[backend].lock().access(key);
        let (counter, found) = if hit {
            (&self.hits[backend], HIT)
        } else {
            (&self.misses[backend], MISS)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = call.and_then(|c| self.calls.get(c as usize)) {
            slot.store(found, Ordering::Relaxed);
        }
        if hit { self.hit_factor } else { 1.0 }
    }

    /// Whether call `call` found its key cached; `None` if no backend
    /// served it.
    pub(crate) fn hit(&self, call: usize) -> Option<bool> {
        match self.calls.get(call)?.load(Ordering::Relaxed) {
            HIT => Some(true),
            MISS => Some(false),
            _ => None,
        }
    }

    /// Each backend's hits and misses so far.
    pub(crate) fn counts(&self) -> Vec<CacheCounts> {
        self.hits
            .iter()
            .zip(&self.misses)
            .map(|(h, m)| CacheCounts {
                hits: h.load(Ordering::Relaxed),
                misses: m.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The mean factor of the service times served so far (1 with no hit).
    pub(crate) fn mean_factor(&self) -> f64 {
        let (hits, all) = self
            .counts()
            .iter()
            .fold((0, 0), |(h, a), c| (h + c.hits, a + c.hits + c.misses));
        if all == 0 {
            1.0
        } else {
            1.0 - hits as f64 / all as f64 * (1.0 - self.hit_factor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cache_size: u32) -> Keys {
        Keys {
            count: 100,
            zipf_s: 0.9,
            cache_size,
            hit_factor: 0.5,
            epsilon: 0.25,
        }
    }

    #[test]
    fn a_hit_halves_the_service_time_per_backend_cache() {
        let c = Caches::new(&keys(2), 2, 10);
        assert_eq!(c.serve(0, Some(0), 7), 1.0);
        assert_eq!(c.serve(0, Some(1), 7), 0.5);
        // Backend 1 has its own cache.
        assert_eq!(c.serve(1, Some(2), 7), 1.0);
        // Two more keys on backend 0 evict 7.
        c.serve(0, Some(3), 8);
        c.serve(0, Some(4), 9);
        assert_eq!(c.serve(0, Some(5), 7), 1.0);
        // An unnumbered call counts, a number out of range is ignored.
        assert_eq!(c.serve(1, None, 7), 0.5);
        assert_eq!(c.serve(1, Some(99), 7), 0.5);
        assert_eq!(
            c.counts(),
            vec![
                CacheCounts { hits: 1, misses: 4 },
                CacheCounts { hits: 2, misses: 1 },
            ]
        );
        assert_eq!(c.hit(0), Some(false));
        assert_eq!(c.hit(1), Some(true));
        assert_eq!(c.hit(6), None);
        assert_eq!(c.hit(50), None);
        assert!((c.mean_factor() - (1.0 - 3.0 / 8.0 * 0.5)).abs() < 1e-12);
    }

    #[test]
    fn keys_are_the_same_for_a_seed_and_leave_the_times_alone() {
        let base = crate::schedule::poisson(100.0, 1, None, 10 * orca_lb_sim::SECOND, 3);
        let mut a = base.clone();
        let mut b = base.clone();
        assign(&mut a, &keys(10), 3);
        assign(&mut b, &keys(10), 3);
        assert_eq!(a, b);
        assert!(a.iter().zip(&base).all(|(x, y)| x.t0 == y.t0));
        assert!(a.iter().all(|p| p.key.is_some_and(|k| k < 100)));
        // Zipf: key 0 is the most frequent.
        let zeros = a.iter().filter(|p| p.key == Some(0)).count();
        let ones = a.iter().filter(|p| p.key == Some(50)).count();
        assert!(zeros > ones, "{zeros} {ones}");
    }

    #[test]
    fn the_key_is_read_from_its_metadata_entry() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(key_of(&m), None);
        m.insert(KEY_METADATA, "1234".parse().unwrap());
        assert_eq!(key_of(&m), Some(1234));
    }
}
