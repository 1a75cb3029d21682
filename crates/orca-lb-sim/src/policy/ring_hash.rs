//! Ring hash without load, as gRPC's `ring_hash` and Envoy's ring hash
//! balance: a keyed call goes to its key's owner on a consistent-hash ring,
//! whatever its load; a call without a key to a random backend.

use orca_lb_core::{HashRing, key_hash};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Client, Done, Pick};
use crate::clock::Nanos;

/// Ring points per backend (gRPC's and Envoy's rings hold about 100 per
/// endpoint at these fleet sizes).
pub(crate) const VIRTUAL_NODES: u32 = 100;

/// The ring over backends `0..len`, each named `backend-<i>`: the same ring
/// `orca-lb/affinity` builds.
pub(crate) fn ring(len: usize) -> HashRing {
    let names: Vec<String> = (0..len).map(|i| format!("backend-{i}")).collect();
    HashRing::new(names.iter().map(String::as_str), VIRTUAL_NODES)
}

/// The ring hash of key `k`.
pub(crate) fn hash(k: u32) -> u64 {
    key_hash(&k.to_le_bytes())
}

/// Ring hash without load.
#[derive(Debug)]
pub(crate) struct RingHash {
    ring: HashRing,
    rng: SmallRng,
    len: usize,
}

impl RingHash {
    pub(crate) fn new(len: usize, seed: u64) -> Self {
        Self {
            ring: ring(len),
            rng: SmallRng::seed_from_u64(seed),
            len,
        }
    }
}

impl Client for RingHash {
    fn pick(&mut self, _stream: bool, _now: Nanos) -> Option<Pick> {
        (self.len > 0).then(|| Pick {
            backend: self.rng.random_range(0..self.len),
            probe: false,
        })
    }

    fn pick_keyed(&mut self, stream: bool, key: Option<u32>, now: Nanos) -> Option<Pick> {
        match key.and_then(|k| self.ring.owner(hash(k))) {
            Some(backend) => Some(Pick {
                backend,
                probe: false,
            }),
            None => self.pick(stream, now),
        }
    }

    fn done(&mut self, _done: Done<'_>) {}

    fn grow(&mut self, len: usize, _now: Nanos) {
        self.len = len;
        self.ring = ring(len);
    }
}
