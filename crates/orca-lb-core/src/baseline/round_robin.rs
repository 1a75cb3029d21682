//! Round robin, as gRPC's `round_robin` policy.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

/// Picks endpoints in turn, skipping those that are not eligible.
///
/// This is gRPC's `round_robin`, the default policy of a channel with more
/// than one backend. Its picker holds the ready subchannels and an atomic
/// counter, and each pick takes the next one. Here the candidates are
/// indices `0..len`, and `eligible(i)` says whether candidate `i` may be
/// picked now (connected, not draining).
///
/// The cursor is an [`AtomicUsize`], so `pick` takes `&self` and one
/// `RoundRobin` can be shared by threads without a lock. Under contention
/// the order is only approximately round robin, as in gRPC. A pick
/// allocates nothing.
///
/// After skipping ineligible candidates, the cursor moves past the one that
/// was picked. So the endpoint after an ineligible one does not get its
/// turns as well as its own: the eligible endpoints share the picks evenly.
///
/// ```
/// use orca_lb_core::baseline::RoundRobin;
///
/// let rr = RoundRobin::new();
/// let picks: Vec<_> = (0..4).map(|_| rr.pick(3, |_| true).unwrap()).collect();
/// assert_eq!(picks, [0, 1, 2, 0]);
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// The next turn to take. Taken modulo `len`, so it keeps working when
    /// the number of candidates changes.
    next: AtomicUsize,
}

// === impl RoundRobin ===

impl RoundRobin {
    /// A picker that starts at candidate 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A picker that starts at a random candidate.
    ///
    /// gRPC starts each picker at a random index, so that clients created
    /// at the same time do not all send their first call to the same
    /// backend.
    pub fn from_rng<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self {
            // Truncating random bits leaves them random.
            next: AtomicUsize::new(rng.random::<u64>() as usize),
        }
    }

    /// Picks the next eligible candidate in `0..len`, or `None` if none is
    /// eligible.
    ///
    /// Probes at most `len` candidates, starting at the cursor, and calls
    /// `eligible` once for each.
    pub fn pick<F>(&self, len: usize, mut eligible: F) -> Option<usize>
    where
        F: FnMut(usize) -> bool,
    {
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        let skipped = (0..len).find(|&k| eligible((start + k) % len))?;
        if skipped > 0 {
            // The cursor already moved one step: move it past the pick.
            self.next.fetch_add(skipped, Ordering::Relaxed);
        }
        Some((start + skipped) % len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn picks(rr: &RoundRobin, n: usize, len: usize, eligible: &[bool]) -> Vec<usize> {
        (0..n)
            .map(|_| rr.pick(len, |i| eligible[i]).unwrap())
            .collect()
    }

    #[test]
    fn visits_every_candidate_in_turn() {
        let rr = RoundRobin::new();
        assert_eq!(picks(&rr, 7, 3, &[true; 3]), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skips_ineligible_candidates_and_shares_evenly() {
        let rr = RoundRobin::new();
        assert_eq!(picks(&rr, 6, 3, &[true, false, true]), [0, 2, 0, 2, 0, 2]);

        let rr = RoundRobin::new();
        let eligible = [false, true, false, false, true];
        assert_eq!(picks(&rr, 6, 5, &eligible), [1, 4, 1, 4, 1, 4]);
    }

    #[test]
    fn none_when_nothing_is_eligible() {
        let rr = RoundRobin::new();
        assert_eq!(rr.pick(0, |_| true), None);
        let mut probed = Vec::new();
        assert_eq!(
            rr.pick(4, |i| {
                probed.push(i);
                false
            }),
            None
        );
        // Each candidate was asked exactly once.
        probed.sort_unstable();
        assert_eq!(probed, [0, 1, 2, 3]);
    }

    #[test]
    fn follows_a_change_in_the_number_of_candidates() {
        let rr = RoundRobin::new();
        assert_eq!(picks(&rr, 2, 3, &[true; 3]), [0, 1]);
        // The set grew: the cursor carries on.
        assert_eq!(picks(&rr, 4, 5, &[true; 5]), [2, 3, 4, 0]);
        // The set shrank to one.
        assert_eq!(picks(&rr, 2, 1, &[true]), [0, 0]);
    }

    #[test]
    fn a_random_start_still_cycles_through_all() {
        for seed in 0..20 {
            let rr = RoundRobin::from_rng(&mut SmallRng::seed_from_u64(seed));
            let mut got = picks(&rr, 4, 4, &[true; 4]);
            // Consecutive picks follow each other...
            for pair in got.windows(2) {
                assert_eq!(pair[1], (pair[0] + 1) % 4, "seed {seed}: {got:?}");
            }
            // ...and cover every candidate.
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2, 3]);
        }
    }

    #[test]
    fn never_returns_an_ineligible_candidate_while_one_is_eligible() {
        let mut rng = SmallRng::seed_from_u64(9);
        let rr = RoundRobin::from_rng(&mut rng);
        for _ in 0..2_000 {
            let len = rng.random_range(1..20);
            let eligible: Vec<bool> = (0..len).map(|_| rng.random_bool(0.2)).collect();
            let got = rr.pick(len, |i| eligible[i]);
            match got {
                Some(i) => assert!(eligible[i], "{i} in {eligible:?}"),
                None => assert!(eligible.iter().all(|e| !e), "{eligible:?}"),
            }
        }
    }

    #[test]
    fn shared_across_threads_without_a_lock() {
        let rr = RoundRobin::new();
        let counts: Vec<[usize; 4]> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut counts = [0; 4];
                        for _ in 0..1_000 {
                            counts[rr.pick(4, |_| true).unwrap()] += 1;
                        }
                        counts
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        // Every pick took its own turn: 4,000 turns over 4 candidates.
        for i in 0..4 {
            assert_eq!(counts.iter().map(|c| c[i]).sum::<usize>(), 1_000);
        }
    }
}
