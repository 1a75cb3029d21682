//! Power of two random choices.

use rand::Rng;

use crate::Score;

/// How many random pairs to draw before scanning every candidate: with most
/// candidates ineligible, random pairs rarely find an eligible one.
const PAIR_ATTEMPTS: usize = 3;

/// Picks the cheaper of two distinct candidates drawn uniformly at random
/// (Mitzenmacher's power of two choices, as in Finagle, Envoy's
/// `least_request` and tower's `p2c`).
///
/// Two random choices rather than the global minimum: every client acting on
/// the same stale view would otherwise send everything to the same "best"
/// backend at once (herding). Two choices keep most of the benefit of the
/// minimum and none of the herding.
///
/// The picker is a pure function: candidates are indices `0..len`, and
/// `score(i)` says what candidate `i` costs now, or `None` when it must not be
/// picked (ejected, draining). Only the drawn candidates are scored, so a pick
/// costs the same at 8 or 1,000 endpoints, and nothing is allocated.
///
/// ```
/// use orca_lb_core::{P2c, Score};
/// use rand::SeedableRng;
///
/// let costs = [Score::new(3.0), Score::new(1.0), Score::new(2.0)];
/// let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
/// let picked = P2c::new().pick(&mut rng, costs.len(), |i| Some(costs[i])).unwrap();
/// // The most expensive candidate loses every pair it is drawn in.
/// assert_ne!(picked, 0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct P2c {
    tie_tolerance: f64,
}

impl P2c {
    /// A picker where the strictly lower score always wins.
    pub fn new() -> Self {
        Self::default()
    }

    /// A picker that treats two scores within `relative` of each other
    /// (`|a - b| <= relative * max(a, b)`) as a tie, and breaks ties at
    /// random.
    ///
    /// Estimates carry noise: without a tolerance, an endpoint whose estimate
    /// is a hair worse than another's loses every pick between the two, gets
    /// no traffic, and so no fresh news that would correct it.
    pub fn with_tie_tolerance(relative: f64) -> Self {
        let tie_tolerance = if relative.is_finite() {
            relative.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Self { tie_tolerance }
    }

    /// The relative difference under which two scores tie.
    #[inline]
    pub fn tie_tolerance(&self) -> f64 {
        self.tie_tolerance
    }

    fn cheaper<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        a: usize,
        sa: Score,
        b: usize,
        sb: Score,
    ) -> usize {
        let (lo, hi) = if sa <= sb { (sa, sb) } else { (sb, sa) };
        if self.tie_tolerance > 0.0
            && hi.seconds() - lo.seconds() <= self.tie_tolerance * hi.seconds()
        {
            // `a` and `b` are already in random order.
            return if rng.random::<bool>() { a } else { b };
        }
        if sb < sa { b } else { a }
    }

    /// Picks one of `0..len`. `None` only when no candidate is eligible.
    ///
    /// Never returns an ineligible candidate, and returns an eligible one
    /// whenever one exists: after a few random pairs it falls back to a scan.
    pub fn pick<R, F>(&self, rng: &mut R, len: usize, mut score: F) -> Option<usize>
    where
        R: Rng + ?Sized,
        F: FnMut(usize) -> Option<Score>,
    {
        match len {
            0 => return None,
            1 => return score(0).map(|_| 0),
            _ => {}
        }
        for _ in 0..PAIR_ATTEMPTS {
            let (a, b) = distinct_pair(rng, len);
            match (score(a), score(b)) {
                (Some(sa), Some(sb)) => return Some(self.cheaper(rng, a, sa, b, sb)),
                (Some(_), None) => return Some(a),
                (None, Some(_)) => return Some(b),
                (None, None) => continue,
            }
        }
        // Most candidates are ineligible: take the cheapest that is not.
        cheapest_of_all(rng, len, score)
    }
}

/// The cheapest eligible candidate of `0..len`, for when draws keep finding
/// none (the pair's and the best-of-k picks'): the scan starts at a random
/// offset so that ties spread out.
#[cold]
#[inline(never)]
pub(crate) fn cheapest_of_all<R, F>(rng: &mut R, len: usize, mut score: F) -> Option<usize>
where
    R: Rng + ?Sized,
    F: FnMut(usize) -> Option<Score>,
{
    let start = rng.random_range(0..len);
    let mut best: Option<(usize, Score)> = None;
    for j in 0..len {
        let i = (start + j) % len;
        if let Some(s) = score(i)
            && best.is_none_or(|(_, b)| s < b)
        {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// Two distinct indices in `0..len` (`len >= 2`), uniformly over pairs, in
/// random order.
pub fn distinct_pair<R: Rng + ?Sized>(rng: &mut R, len: usize) -> (usize, usize) {
    debug_assert!(len >= 2);
    let a = rng.random_range(0..len);
    // Draw from the other len - 1 indices: shift past `a`.
    let b = rng.random_range(0..len - 1);
    let b = if b >= a { b + 1 } else { b };
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn rng(seed: u64) -> SmallRng {
        SmallRng::seed_from_u64(seed)
    }

    #[test]
    fn pairs_are_distinct_and_cover_every_index() {
        let mut r = rng(1);
        for len in 2..20 {
            let mut seen = vec![0u32; len];
            for _ in 0..2_000 {
                let (a, b) = distinct_pair(&mut r, len);
                assert_ne!(a, b);
                assert!(a < len && b < len);
                seen[a] += 1;
                seen[b] += 1;
            }
            assert!(seen.iter().all(|&n| n > 0), "len {len}: {seen:?}");
        }
    }

    #[test]
    fn empty_and_single() {
        let mut r = rng(2);
        let p = P2c::new();
        assert_eq!(p.pick(&mut r, 0, |_| Some(Score::ZERO)), None);
        assert_eq!(p.pick(&mut r, 1, |_| Some(Score::ZERO)), Some(0));
        assert_eq!(p.pick(&mut r, 1, |_| None), None);
    }

    #[test]
    fn never_picks_an_ineligible_candidate_while_one_is_eligible() {
        let p = P2c::new();
        for seed in 0..200 {
            let mut r = rng(seed);
            let len = 2 + (seed as usize % 50);
            let only = seed as usize % len;
            // Exactly one eligible candidate, anywhere.
            let got = p.pick(&mut r, len, |i| (i == only).then_some(Score::new(5.0)));
            assert_eq!(got, Some(only), "seed {seed} len {len}");
            // None eligible.
            assert_eq!(p.pick(&mut r, len, |_| None), None);
        }
    }

    #[test]
    fn lower_score_wins_the_pair() {
        let p = P2c::new();
        let mut r = rng(3);
        // Two candidates: the pair is always both; the cheaper always wins.
        for _ in 0..100 {
            let got = p.pick(&mut r, 2, |i| Some(Score::new([2.0, 1.0][i])));
            assert_eq!(got, Some(1));
        }
    }

    #[test]
    fn the_worst_of_n_is_never_picked_and_the_best_most_often() {
        let p = P2c::new();
        let mut r = rng(4);
        let n = 10;
        let mut counts = vec![0u32; n];
        for _ in 0..100_000 {
            let i = p.pick(&mut r, n, |i| Some(Score::new(i as f64))).unwrap();
            counts[i] += 1;
        }
        assert_eq!(counts[n - 1], 0);
        // Candidate i wins when drawn with a worse one: P = 2(n-1-i)/(n(n-1)).
        for (i, &c) in counts.iter().enumerate() {
            let expected = 2.0 * (n - 1 - i) as f64 / (n * (n - 1)) as f64;
            let got = f64::from(c) / 100_000.0;
            assert!((got - expected).abs() < 0.01, "{i}: {got} vs {expected}");
        }
    }

    #[test]
    fn near_ties_are_broken_at_random_within_the_tolerance() {
        let p = P2c::with_tie_tolerance(0.05);
        let mut r = rng(6);
        let mut first = 0;
        for _ in 0..10_000 {
            // 4 % apart: a tie.
            if p.pick(&mut r, 2, |i| Some(Score::new([1.0, 0.96][i]))) == Some(0) {
                first += 1;
            }
        }
        assert!((4_500..5_500).contains(&first), "{first}");
        // 10 % apart: the cheaper always wins.
        for _ in 0..1_000 {
            assert_eq!(
                p.pick(&mut r, 2, |i| Some(Score::new([1.0, 0.9][i]))),
                Some(1)
            );
        }
    }

    #[test]
    fn equal_scores_spread_evenly() {
        let p = P2c::new();
        let mut r = rng(5);
        let n = 8;
        let picks = 80_000;
        let mut counts = vec![0u32; n];
        for _ in 0..picks {
            counts[p.pick(&mut r, n, |_| Some(Score::ZERO)).unwrap()] += 1;
        }
        let mean = f64::from(picks) / n as f64;
        for c in counts {
            assert!((f64::from(c) - mean).abs() < mean * 0.05, "{c} vs {mean}");
        }
    }
}
