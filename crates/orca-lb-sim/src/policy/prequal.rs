//! Prequal (Wydrowski et al., NSDI 2024): asynchronous probes of requests
//! in flight and latency, picked by the hot-cold lexicographic rule.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Client, Done, Pick};
use crate::clock::{Nanos, SECOND};

/// Probes sent per query, on average (a fraction is sent with that
/// probability). The paper's tail worsens below one probe per query.
const PROBES_PER_QUERY: f64 = 3.0;

/// Most probe results kept.
const POOL_SIZE: usize = 16;

/// A probe result older than this is dropped.
const MAX_AGE: Nanos = SECOND;

/// An entry is hot when its RIF is above this quantile of recent RIFs.
const HOT_QUANTILE: f64 = 0.6;

/// Recent probe RIFs kept for the quantile.
const RIF_HISTORY: usize = 4 * POOL_SIZE;

/// A probe's answer, as the pool holds it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    backend: usize,
    /// Calls in flight the server reported, plus this client's picks of it
    /// since.
    rif: u32,
    /// The server's latency estimate at its RIF then (0: none yet).
    latency: Nanos,
    received: Nanos,
}

/// One client's Prequal balancer: its pool of probe answers, the hot-cold
/// rule that picks from it, and the choice of backends to probe.
///
/// Each query sends 3 probes, on average, to random distinct backends;
/// each answer (the backend's calls in flight and the median latency it
/// recently saw at that many) enters a pool of at most 16 entries,
/// replacing an older one from the same backend or, when full, the oldest.
/// Entries older than 1 s are dropped. A pick takes, among the pool, the
/// lowest latency among the cold entries (RIF at or below the 0.6 quantile
/// of the last 64 probed RIFs), or the lowest RIF when all are hot, and
/// adds 1 to that entry's RIF. After each pick one entry leaves the pool,
/// alternately the oldest and the worst. With an empty pool the pick is
/// uniformly random.
///
/// Time is passed in, as nanoseconds from any fixed start: the simulator
/// drives it in virtual time, the loopback harness on real servers (whose
/// backends answer the probes with a [`LatencyByRif`](crate::LatencyByRif)).
///
/// # Examples
///
/// ```
/// use orca_lb_sim::{MILLISECOND, Prequal};
///
/// let mut prequal = Prequal::new(3, 1);
/// // Backend 2 answered with 1 call in flight and 5 ms at that load.
/// prequal.record_answer(2, 1, Some(5 * MILLISECOND), 0);
/// assert_eq!(prequal.pick_backend(MILLISECOND), Some(2));
///
/// let mut targets = Vec::new();
/// prequal.probe_targets(&mut targets);
/// assert_eq!(targets.len(), 3);
/// ```
#[derive(Debug)]
pub struct Prequal {
    len: usize,
    rng: SmallRng,
    pool: Vec<Entry>,
    rifs: [u32; RIF_HISTORY],
    rifs_seen: usize,
    remove_oldest_next: bool,
    /// The quantile's buffer.
    sorted: Vec<u32>,
}

impl Prequal {
    /// A balancer over backends `0..len`, its random numbers from `seed`.
    pub fn new(len: usize, seed: u64) -> Self {
        Self {
            len,
            rng: SmallRng::seed_from_u64(seed),
            pool: Vec::with_capacity(POOL_SIZE),
            rifs: [0; RIF_HISTORY],
            rifs_seen: 0,
            remove_oldest_next: true,
            sorted: Vec::with_capacity(RIF_HISTORY),
        }
    }

    /// The backends are `0..len` from now on (never fewer than before):
    /// new ones are probed like the others.
    pub fn set_backends(&mut self, len: usize) {
        self.len = len;
    }

    /// The backend of a new call at `now`, counted in its entry's RIF;
    /// `None` without backends.
    pub fn pick_backend(&mut self, now: Nanos) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.pool
            .retain(|e| now.saturating_sub(e.received) <= MAX_AGE);
        let threshold = self.hot_threshold();
        let backend = match self.rank(threshold, true) {
            Some(i) => {
                self.pool[i].rif += 1;
                self.pool[i].backend
            }
            None => self.rng.random_range(0..self.len),
        };
        // One entry leaves per query: alternately the oldest and the worst.
        let leaving = if self.remove_oldest_next {
            self.oldest()
        } else {
            self.rank(threshold, false)
        };
        if let Some(i) = leaving {
            self.pool.swap_remove(i);
            self.remove_oldest_next = !self.remove_oldest_next;
        }
        Some(backend)
    }

    /// The distinct backends to probe after a pick, pushed onto `out`.
    pub fn probe_targets(&mut self, out: &mut Vec<usize>) {
        let whole = PROBES_PER_QUERY.floor();
        let extra = self.rng.random::<f64>() < PROBES_PER_QUERY - whole;
        let k = (whole as usize + usize::from(extra)).min(self.len);
        let start = out.len();
        while out.len() - start < k {
            let b = self.rng.random_range(0..self.len);
            if !out[start..].contains(&b) {
                out.push(b);
            }
        }
    }

    /// A probe's answer from `backend`, received at `now`: its calls in
    /// flight and the latency it recently saw at that many (`None`: it has
    /// answered no call yet).
    pub fn record_answer(&mut self, backend: usize, rif: u32, latency: Option<Nanos>, now: Nanos) {
        self.rifs[self.rifs_seen % RIF_HISTORY] = rif;
        self.rifs_seen += 1;
        let entry = Entry {
            backend,
            rif,
            latency: latency.unwrap_or(0),
            received: now,
        };
        if let Some(e) = self.pool.iter_mut().find(|e| e.backend == backend) {
            *e = entry;
        } else if self.pool.len() < POOL_SIZE {
            self.pool.push(entry);
        } else if let Some(i) = self.oldest() {
            self.pool[i] = entry;
        }
    }

    /// The hot threshold: the [`HOT_QUANTILE`] of recent probed RIFs.
    fn hot_threshold(&mut self) -> u32 {
        let n = self.rifs_seen.min(RIF_HISTORY);
        if n == 0 {
            return u32::MAX;
        }
        self.sorted.clear();
        self.sorted.extend_from_slice(&self.rifs[..n]);
        self.sorted.sort_unstable();
        let rank = ((HOT_QUANTILE * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.sorted[rank]
    }

    /// The pool's index of the best entry (`best`) or the worst, by the
    /// hot-cold rule with `threshold`.
    fn rank(&self, threshold: u32, best: bool) -> Option<usize> {
        let all_hot = self.pool.iter().all(|e| e.rif > threshold);
        // Lower key is better: (RIF) when all are hot, else cold entries
        // by (latency, RIF) before hot ones by RIF.
        let key = |e: &Entry| -> (u8, u64, u32) {
            if all_hot {
                (0, u64::from(e.rif), 0)
            } else if e.rif <= threshold {
                (0, e.latency, e.rif)
            } else {
                (1, u64::from(e.rif), 0)
            }
        };
        let keyed = self.pool.iter().enumerate().map(|(i, e)| (key(e), i));
        if best {
            keyed.min().map(|(_, i)| i)
        } else {
            keyed.max().map(|(_, i)| i)
        }
    }

    fn oldest(&self) -> Option<usize> {
        self.pool
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.received)
            .map(|(i, _)| i)
    }
}

impl Client for Prequal {
    fn pick(&mut self, _stream: bool, now: Nanos) -> Option<Pick> {
        let backend = self.pick_backend(now)?;
        Some(Pick {
            backend,
            probe: false,
        })
    }

    fn done(&mut self, _done: Done<'_>) {}

    fn grow(&mut self, len: usize, _now: Nanos) {
        self.set_backends(len);
    }

    fn probes(&mut self, _now: Nanos, out: &mut Vec<usize>) {
        self.probe_targets(out);
    }

    fn probe_reply(&mut self, backend: usize, rif: u32, latency: Option<Nanos>, now: Nanos) {
        self.record_answer(backend, rif, latency, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_lowest_latency_wins_and_its_rif_grows() {
        let mut p = Prequal::new(4, 1);
        // RIFs 1, 2, 9, 10: the 0.6 quantile is 9, so backend 3 is hot.
        p.record_answer(0, 1, Some(50), 0);
        p.record_answer(1, 2, Some(20), 0);
        p.record_answer(2, 9, Some(30), 0);
        p.record_answer(3, 10, Some(1), 0);
        assert_eq!(p.pick_backend(1), Some(1), "coldest latency");
        let e = p.pool.iter().find(|e| e.backend == 1).unwrap();
        assert_eq!(e.rif, 3, "own pick counted");
        assert_eq!(p.pool.len(), 3, "one entry removed per query");
    }

    #[test]
    fn all_hot_takes_the_lowest_rif_and_old_entries_age_out() {
        let mut p = Prequal::new(3, 1);
        for _ in 0..RIF_HISTORY {
            p.record_answer(1, 0, None, 0);
        }
        p.pool.clear();
        p.pool.push(Entry {
            backend: 0,
            rif: 5,
            latency: 1,
            received: 0,
        });
        p.pool.push(Entry {
            backend: 2,
            rif: 3,
            latency: 9,
            received: 0,
        });
        assert_eq!(p.pick_backend(10), Some(2));
        p.pool.clear();
        p.pool.push(Entry {
            backend: 1,
            rif: 0,
            latency: 0,
            received: 0,
        });
        p.pick_backend(MAX_AGE + 1).unwrap();
        assert!(p.pool.is_empty(), "aged out");
    }

    #[test]
    fn probes_go_to_distinct_backends() {
        let mut p = Prequal::new(3, 7);
        let mut out = Vec::new();
        for _ in 0..50 {
            out.clear();
            p.probe_targets(&mut out);
            assert_eq!(out.len(), 3);
            let mut s = out.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 3);
        }
    }

    #[test]
    fn no_backends_no_pick_and_joined_ones_are_probed() {
        let mut p = Prequal::new(0, 1);
        assert_eq!(p.pick_backend(0), None);
        p.set_backends(2);
        assert!(p.pick_backend(0).unwrap() < 2);
        let mut out = Vec::new();
        p.probe_targets(&mut out);
        out.sort_unstable();
        assert_eq!(out, [0, 1], "no more probes than backends");
    }
}
