//! A consistent-hash ring over endpoint keys, with bounded loads: calls
//! with the same key go to the same endpoint while its load allows.
//!
//! # The ring
//!
//! Each endpoint is placed at [`virtual_nodes`](crate::AffinityConfig::virtual_nodes)
//! points of a 64-bit ring; a call's key hashes to a point, and its endpoint
//! is the owner of the first endpoint point at or after it (wrapping). When
//! an endpoint joins, it takes over only the arcs before its own points
//! (about `1 / (n + 1)` of the keys); when one leaves, only its keys move.
//!
//! The hash is fixed so that every process, on every platform and in every
//! release, builds the same ring from the same endpoint keys and sends a key
//! to the same endpoint: 64-bit FNV-1a over the bytes, then splitmix64's
//! output mix ([`mix64`](crate::splitmix::mix64)) so that nearby inputs land
//! far apart. A call key hashes as [`key_hash`]; the `r`-th point of an
//! endpoint (`r` from 0) hashes as the endpoint's key bytes, a `#` and `r`
//! as 4 little-endian bytes ([`point_hash`]). `std`'s `RandomState` would
//! differ between processes and is not used.
//!
//! # Bounded loads
//!
//! Consistent hashing alone ignores load: a hot key, or a slow endpoint,
//! overloads its owner. [`HashRing::pick`] walks the ring from the key's
//! point and takes the first endpoint whose load is under a capacity of
//! `(1 + epsilon)` times the average load, rounded up to whole calls
//! ([`capacity`]), as in Mirrokni, Thorup and Zadimoghaddam, "Consistent
//! Hashing with Bounded Loads" (2018). An overloaded endpoint passes its
//! keys on to the next endpoints on the ring, and takes them back once its
//! load is under the capacity again. Ineligible endpoints (ejected,
//! draining, unhealthy) are passed over.
//!
//! The load is whatever the caller supplies per endpoint, in calls: the
//! client uses its own calls in flight there plus the calls of other
//! clients the endpoint reports (its backlog). Since some endpoint is at or
//! under the average and the capacity is above it, the walk always finds
//! one when the average is exact; it stops after [`MAX_WALK`] points and
//! then takes the least loaded endpoint it saw.

use crate::splitmix::mix64;

/// The most ring points [`HashRing::pick`] visits for one call.
pub const MAX_WALK: usize = 512;

/// The ring's size, 2^64, for shares.
const RING_SIZE: f64 = (1_u128 << 64) as f64;

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Where a call key lands on the ring: 64-bit FNV-1a over `key`, then
/// [`mix64`]. Fixed across processes and releases; allocates nothing.
///
/// ```
/// use orca_lb_core::key_hash;
///
/// assert_eq!(key_hash(b"user-1"), key_hash(b"user-1"));
/// assert_ne!(key_hash(b"user-1"), key_hash(b"user-2"));
/// ```
pub fn key_hash(key: &[u8]) -> u64 {
    mix64(fnv1a(FNV_OFFSET, key))
}

/// Where the `replica`-th point of the endpoint with key `endpoint` lands:
/// 64-bit FNV-1a over the key's bytes, `#` and `replica` as 4 little-endian
/// bytes, then [`mix64`].
pub fn point_hash(endpoint: &str, replica: u32) -> u64 {
    let h = fnv1a(FNV_OFFSET, endpoint.as_bytes());
    let h = fnv1a(h, b"#");
    mix64(fnv1a(h, &replica.to_le_bytes()))
}

/// The load under which an endpoint takes a key's call: `(1 + epsilon)`
/// times the `mean` load, rounded up to whole calls, and at least 1 (an
/// idle endpoint always takes a call). An endpoint takes the call when its
/// load is below this.
///
/// ```
/// use orca_lb_core::capacity;
///
/// assert_eq!(capacity(0.0, 0.25), 1.0);
/// assert_eq!(capacity(4.0, 0.25), 5.0);
/// assert_eq!(capacity(4.1, 0.25), 6.0);
/// ```
pub fn capacity(mean: f64, epsilon: f64) -> f64 {
    // `f64::max` ignores a NaN: a NaN mean gives 1.
    ((1.0 + epsilon) * mean.max(0.0)).ceil().max(1.0)
}

/// Where [`HashRing::pick`] sent a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPick {
    /// The endpoint chosen (an index into the keys the ring was built from).
    pub index: usize,
    /// The key's first choice: the owner of its point on the ring.
    pub owner: usize,
    /// Whether the owner was eligible but at or over the capacity, so the
    /// call went elsewhere: the owner passed the key on.
    pub passed_on: bool,
}

/// A consistent-hash ring over a list of endpoint keys, built once per
/// membership change; picks read it without allocating.
///
/// ```
/// use orca_lb_core::{HashRing, capacity, key_hash};
///
/// let ring = HashRing::new(["a:1", "b:1", "c:1"], 100);
/// let h = key_hash(b"user-42");
/// let owner = ring.owner(h).unwrap();
///
/// // Evenly loaded: the owner takes the call.
/// let cap = capacity(1.0, 0.25);
/// let pick = ring.pick(h, cap, |_| Some(1.0)).unwrap();
/// assert_eq!(pick.index, owner);
///
/// // The owner overloaded: the key is passed on to another endpoint.
/// let loads = |i: usize| Some(if i == owner { 9.0 } else { 0.0 });
/// let pick = ring.pick(h, capacity(3.0, 0.25), loads).unwrap();
/// assert_ne!(pick.index, owner);
/// assert!(pick.passed_on);
/// ```
#[derive(Debug, Clone, Default)]
pub struct HashRing {
    /// (point, endpoint index), sorted.
    points: Box<[(u64, u32)]>,
    /// Each endpoint's share of the ring, 0 to 1.
    shares: Box<[f64]>,
}

impl HashRing {
    /// A ring over `keys` (endpoint `i` is the `i`-th key) with
    /// `virtual_nodes` points each (at least 1).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>, virtual_nodes: u32) -> Self {
        let vnodes = virtual_nodes.max(1);
        let mut points = Vec::new();
        let mut n = 0usize;
        for (i, key) in keys.into_iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 endpoints");
            points.extend((0..vnodes).map(|r| (point_hash(key, r), i)));
            n += 1;
        }
        points.sort_unstable();
        let mut shares = vec![0.0; n];
        if let Some(&(last, _)) = points.last() {
            let mut prev = last;
            for &(p, i) in &points {
                // The arc (prev, p] is this point's; a single point owns all.
                let arc = p.wrapping_sub(prev);
                let arc = if points.len() == 1 { u64::MAX } else { arc };
                shares[i as usize] += arc as f64 / RING_SIZE;
                prev = p;
            }
        }
        Self {
            points: points.into_boxed_slice(),
            shares: shares.into_boxed_slice(),
        }
    }

    /// How many endpoints the ring is over.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether the ring is over no endpoint.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// Endpoint `i`'s share of the ring (of the keys it owns), 0 to 1.
    pub fn share(&self, i: usize) -> f64 {
        self.shares.get(i).copied().unwrap_or(0.0)
    }

    /// The position of the first point at or after `hash`, wrapping.
    fn start(&self, hash: u64) -> usize {
        let p = self.points.partition_point(|&(point, _)| point < hash);
        if p == self.points.len() { 0 } else { p }
    }

    /// The owner of `hash`: the endpoint of the first point at or after it.
    pub fn owner(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.points[self.start(hash)].1 as usize)
    }

    /// The endpoint for a call whose key hashes to `hash` (see
    /// [`key_hash`]): walking the ring from there, the first endpoint whose
    /// `load` is below `capacity` (see [`capacity`]). `load` returns `None`
    /// for an endpoint that may not be picked. After [`MAX_WALK`] points
    /// (or the whole ring), the least loaded eligible endpoint seen; `None`
    /// when none was eligible. Binary search, then the walk; allocates
    /// nothing.
    pub fn pick(
        &self,
        hash: u64,
        capacity: f64,
        mut load: impl FnMut(usize) -> Option<f64>,
    ) -> Option<RingPick> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.start(hash);
        let owner = self.points[start].1 as usize;
        let mut owner_over = false;
        let mut least: Option<(usize, f64)> = None;
        let mut last = u32::MAX;
        let steps = self.points.len().min(MAX_WALK);
        for step in 0..steps {
            let (_, i) = self.points[(start + step) % self.points.len()];
            if i == last {
                continue;
            }
            last = i;
            let i = i as usize;
            let Some(l) = load(i) else { continue };
            if l < capacity {
                return Some(RingPick {
                    index: i,
                    owner,
                    passed_on: owner_over && i != owner,
                });
            }
            if i == owner {
                owner_over = true;
            }
            if least.is_none_or(|(_, b)| l < b) {
                least = Some((i, l));
            }
        }
        least.map(|(i, _)| RingPick {
            index: i,
            owner,
            passed_on: owner_over && i != owner,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:50051")).collect()
    }

    fn ring(names: &[String]) -> HashRing {
        HashRing::new(names.iter().map(String::as_str), 100)
    }

    #[test]
    fn hashes_are_fixed_across_releases() {
        // FNV-1a of "" is its offset basis; the ring's hashes must never
        // change, or keys would move on upgrade. (Values worked out
        // independently of this code.)
        assert_eq!(key_hash(b""), mix64(FNV_OFFSET));
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(key_hash(b"user-1"), 0xC499_B5F8_A721_DF58);
        assert_eq!(point_hash("10.0.0.1:50051", 7), 0x924A_7F20_C67D_BDA0);
    }

    #[test]
    fn same_key_same_endpoint_and_shares_add_up() {
        let n = names(10);
        let r = ring(&n);
        let total: f64 = (0..10).map(|i| r.share(i)).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        for i in 0..10 {
            let s = r.share(i);
            assert!((0.05..0.15).contains(&s), "share {i} = {s}");
        }
        for k in 0..1000 {
            let h = key_hash(format!("user-{k}").as_bytes());
            let a = r.pick(h, 1.0, |_| Some(0.0)).unwrap();
            let b = ring(&n).pick(h, 1.0, |_| Some(0.0)).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.index, a.owner);
            assert!(!a.passed_on);
        }
    }

    #[test]
    fn adding_one_endpoint_to_ten_moves_about_one_eleventh() {
        let ten = names(10);
        let eleven = names(11);
        let (a, b) = (ring(&ten), ring(&eleven));
        let keys = 10_000;
        let mut moved = 0;
        for k in 0..keys {
            let h = key_hash(format!("user-{k}").as_bytes());
            let before = &ten[a.owner(h).unwrap()];
            let after = &eleven[b.owner(h).unwrap()];
            if before != after {
                moved += 1;
                // Only to the new endpoint.
                assert_eq!(after, &eleven[10]);
            }
        }
        let share = f64::from(moved) / f64::from(keys);
        println!("moved {moved} of {keys} keys ({share:.4}); 1/11 = 0.0909");
        assert!((0.06..0.125).contains(&share), "{share}");
    }

    #[test]
    fn an_overloaded_owner_passes_keys_on_and_takes_them_back() {
        let n = names(10);
        let r = ring(&n);
        let keys: Vec<u64> = (0..500)
            .map(|k| key_hash(format!("user-{k}").as_bytes()))
            .collect();
        let hot = r.owner(keys[0]).unwrap();
        let mut loads = [2.0; 10];
        let mean = |l: &[f64; 10]| l.iter().sum::<f64>() / 10.0;
        // Overloaded: every key of `hot` goes elsewhere, others stay.
        loads[hot] = 20.0;
        let cap = capacity(mean(&loads), 0.25);
        for &h in &keys {
            let p = r.pick(h, cap, |i| Some(loads[i])).unwrap();
            if p.owner == hot {
                assert_ne!(p.index, hot);
                assert!(p.passed_on);
            } else {
                assert_eq!(p.index, p.owner);
            }
        }
        // Recovered: they come back.
        loads[hot] = 2.0;
        let cap = capacity(mean(&loads), 0.25);
        for &h in &keys {
            let p = r.pick(h, cap, |i| Some(loads[i])).unwrap();
            assert_eq!(p.index, p.owner);
        }
        // Ineligible: passed over, but not counted as passing on.
        let p = r
            .pick(keys[0], cap, |i| (i != hot).then_some(loads[i]))
            .unwrap();
        assert_ne!(p.index, hot);
        assert!(!p.passed_on);
        assert!(r.pick(keys[0], cap, |_| None).is_none());
        assert!(
            HashRing::default()
                .pick(keys[0], cap, |_| Some(0.0))
                .is_none()
        );
    }

    #[test]
    fn no_endpoint_above_the_bound_while_another_is_under_it() {
        let n = names(10);
        let r = ring(&n);
        let mut rng = SmallRng::seed_from_u64(16);
        for round in 0..2_000 {
            let loads: Vec<Option<f64>> = (0..10)
                .map(|_| {
                    (rng.random::<f64>() < 0.8).then(|| f64::from(rng.random_range(0..40_u32)))
                })
                .collect();
            let eligible: Vec<f64> = loads.iter().flatten().copied().collect();
            if eligible.is_empty() {
                continue;
            }
            let mean = eligible.iter().sum::<f64>() / eligible.len() as f64;
            let eps = [0.05, 0.25, 1.0][round % 3];
            let cap = capacity(mean, eps);
            let p = r.pick(rng.random(), cap, |i| loads[i]).unwrap();
            let l = loads[p.index].unwrap();
            assert!(
                l < cap,
                "load {l} over capacity {cap} (mean {mean}, eps {eps})"
            );
        }
    }

    #[test]
    fn a_single_endpoint_owns_the_whole_ring() {
        let r = HashRing::new(["only"], 1);
        assert_eq!(r.len(), 1);
        assert!((r.share(0) - 1.0).abs() < 1e-9);
        assert_eq!(r.owner(0), Some(0));
        assert_eq!(r.owner(u64::MAX), Some(0));
    }
}
