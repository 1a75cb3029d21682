//! P2C on peak-EWMA round-trip time, as tower's `PeakEwma` and Finagle.

use std::time::Duration;

use orca_lb_core::{P2c, PeakEwma, Score};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Client, Done, Pick};
use crate::clock::{Clock, Nanos};

/// tower's `PeakEwma` decay (linkerd's default).
const DECAY: Duration = Duration::from_secs(10);

/// The round-trip time assumed before the first response (tower's
/// `default_rtt` as linkerd sets it).
const DEFAULT_RTT_SECS: f64 = 0.030;

/// tower `p2c::Balance` over `PeakEwma`: the cheaper of two random backends
/// by `rtt x (pending + 1)`, where `rtt` is a [`PeakEwma`] of observed
/// round-trip times decaying toward zero while idle.
///
/// As in tower, a call's handle ends when its response arrives (with
/// tonic, a unary call's headers come with its message), so `pending`
/// counts unary calls in flight; a stream counts only until it opens, so
/// open streams are not counted. A call dropped at its deadline records
/// the deadline as its round trip (tower records the time at drop). A fast
/// failure records a fast round trip: this is the peer as users run it.
#[derive(Debug)]
pub(crate) struct PeakEwmaP2c {
    p2c: P2c,
    rng: SmallRng,
    clock: Clock,
    rtt: Vec<PeakEwma>,
    pending: Vec<u32>,
}

impl PeakEwmaP2c {
    pub(crate) fn new(len: usize, seed: u64, clock: Clock) -> Self {
        let start = clock.at(0);
        Self {
            p2c: P2c::new(),
            rng: SmallRng::seed_from_u64(seed),
            clock,
            rtt: vec![PeakEwma::with_value(DECAY, DEFAULT_RTT_SECS, start); len],
            pending: vec![0; len],
        }
    }
}

impl Client for PeakEwmaP2c {
    fn pick(&mut self, stream: bool, now: Nanos) -> Option<Pick> {
        let at = self.clock.at(now);
        let (rtt, pending) = (&self.rtt, &self.pending);
        let backend = self.p2c.pick(&mut self.rng, rtt.len(), |i| {
            let estimate = rtt[i].value_at(at).unwrap_or(DEFAULT_RTT_SECS);
            Some(Score::new(estimate * f64::from(pending[i] + 1)))
        })?;
        if !stream {
            self.pending[backend] += 1;
        }
        Some(Pick {
            backend,
            probe: false,
        })
    }

    fn done(&mut self, done: Done<'_>) {
        if done.stream {
            return;
        }
        self.pending[done.backend] -= 1;
        if let Some(latency) = done.latency {
            self.rtt[done.backend].observe(latency as f64 / 1e9, self.clock.at(done.now));
        }
    }

    fn grow(&mut self, len: usize, now: Nanos) {
        let fresh = PeakEwma::with_value(DECAY, DEFAULT_RTT_SECS, self.clock.at(now));
        self.rtt.resize(len, fresh);
        self.pending.resize(len, 0);
    }
}
