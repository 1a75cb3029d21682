//! The peers that keep no load estimate: round robin, random, least request.

use orca_lb_core::baseline;
use orca_lb_core::{P2c, Score};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Client, Done, Pick};
use crate::clock::Nanos;

/// gRPC's `round_robin`: [`baseline::RoundRobin`] from a random start, over
/// every backend (a backend that fails fast is still connected, so still
/// ready).
#[derive(Debug)]
pub(crate) struct RoundRobin {
    rr: baseline::RoundRobin,
    len: usize,
}

impl RoundRobin {
    pub(crate) fn new(len: usize, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        Self {
            rr: baseline::RoundRobin::from_rng(&mut rng),
            len,
        }
    }
}

impl Client for RoundRobin {
    fn pick(&mut self, _stream: bool, _now: Nanos) -> Option<Pick> {
        let backend = self.rr.pick(self.len, |_| true)?;
        Some(Pick {
            backend,
            probe: false,
        })
    }

    fn done(&mut self, _done: Done<'_>) {}

    fn grow(&mut self, len: usize, _now: Nanos) {
        self.len = len;
    }
}

/// tonic's `Channel::balance_list`: tower's P2C over a constant load, which
/// is a uniformly random pick ([`P2c`] with equal scores keeps the first of
/// the pair, itself drawn at random).
#[derive(Debug)]
pub(crate) struct Random {
    p2c: P2c,
    rng: SmallRng,
    len: usize,
}

impl Random {
    pub(crate) fn new(len: usize, seed: u64) -> Self {
        Self {
            p2c: P2c::new(),
            rng: SmallRng::seed_from_u64(seed),
            len,
        }
    }
}

impl Client for Random {
    fn pick(&mut self, _stream: bool, _now: Nanos) -> Option<Pick> {
        let backend = self
            .p2c
            .pick(&mut self.rng, self.len, |_| Some(Score::ZERO))?;
        Some(Pick {
            backend,
            probe: false,
        })
    }

    fn done(&mut self, _done: Done<'_>) {}

    fn grow(&mut self, len: usize, _now: Nanos) {
        self.len = len;
    }
}

/// Envoy's `least_request` (P2C on the client's own active requests, open
/// streams included): [`baseline::LeastRequest`].
#[derive(Debug)]
pub(crate) struct LeastRequestP2c {
    lr: baseline::LeastRequest,
    rng: SmallRng,
    active: Vec<u32>,
}

impl LeastRequestP2c {
    pub(crate) fn new(len: usize, seed: u64) -> Self {
        Self {
            lr: baseline::LeastRequest::new(),
            rng: SmallRng::seed_from_u64(seed),
            active: vec![0; len],
        }
    }
}

impl Client for LeastRequestP2c {
    fn pick(&mut self, _stream: bool, _now: Nanos) -> Option<Pick> {
        let active = &self.active;
        let backend = self
            .lr
            .pick(&mut self.rng, active.len(), |i| Some(active[i]))?;
        self.active[backend] += 1;
        Some(Pick {
            backend,
            probe: false,
        })
    }

    fn done(&mut self, done: Done<'_>) {
        self.active[done.backend] -= 1;
    }

    fn grow(&mut self, len: usize, _now: Nanos) {
        self.active.resize(len, 0);
    }
}
