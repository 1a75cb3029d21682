//! The least costly of every candidate, for picks that must not miss a
//! nearly empty endpoint (streams).

use rand::Rng;

use crate::{P2c, Score};

/// The most candidates [`P2c::pick_least`] scores in one scan. Larger fleets
/// are sampled: this many draws at random, so a stream pick costs the same
/// at 1,000 endpoints as at 32.
///
/// Sampling still finds a nearly empty endpoint when there are several: after
/// a fleet of `n` grows to `2n`, 32 draws all miss the new half with
/// probability 2^-32.
pub const MAX_LEAST_CANDIDATES: usize = 32;

impl P2c {
    /// Picks the cheapest of all of `0..len` (of
    /// [`MAX_LEAST_CANDIDATES`] drawn at random when `len` is larger), a candidate within the tie
    /// tolerance of the cheapest (see [`with_tie_tolerance`](Self::with_tie_tolerance))
    /// counting as a tie, and ties broken uniformly at random. `None` only
    /// when no candidate is eligible.
    ///
    /// For streams: a long-lived stream stays where it was opened, so a pick
    /// that leaves a nearly empty endpoint out (as a pair of two drawn among
    /// loaded ones does, a quarter of the time after a fleet doubles) is an
    /// imbalance that lasts as long as the stream. A stream's cost is a count
    /// that each pick raises by one at once (the client counts its own opens
    /// before any report), so scanning does not herd: the next pick already
    /// sees the stream just opened, and equal counts spread at random.
    ///
    /// Scores every candidate twice (once to find the least, once to draw
    /// among the ties), or each drawn one once in a larger fleet; allocates
    /// nothing. When no drawn candidate is eligible (most of a large fleet is
    /// ejected or unhealthy), every one is scanned.
    ///
    /// ```
    /// use orca_lb_core::{P2c, Score};
    /// use rand::SeedableRng;
    ///
    /// let costs = [Score::new(3.0), Score::new(1.0), Score::new(2.0)];
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    /// let picked = P2c::new().pick_least(&mut rng, costs.len(), |i| Some(costs[i]));
    /// assert_eq!(picked, Some(1));
    /// ```
    pub fn pick_least<R, F>(&self, rng: &mut R, len: usize, mut score: F) -> Option<usize>
    where
        R: Rng + ?Sized,
        F: FnMut(usize) -> Option<Score>,
    {
        if len > MAX_LEAST_CANDIDATES
            && let Some(i) = self.pick_least_of_draws(rng, len, &mut score)
        {
            return Some(i);
        }
        // The first pass keeps where the least was: scores may change between
        // the passes (calls start and end on other threads meanwhile).
        let (first, least) = (0..len)
            .filter_map(|i| score(i).map(|s| (i, s)))
            .min_by_key(|&(_, s)| s)?;
        let tolerance = self.tie_tolerance();
        let is_tie = |s: Score| s.seconds() - least.seconds() <= tolerance * s.seconds();
        // One pass of reservoir sampling over the ties: the k-th tie replaces
        // the choice with probability 1/k.
        let mut ties = 0u32;
        let mut chosen = None;
        for i in 0..len {
            if score(i).is_some_and(|s| s == least || is_tie(s)) {
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    chosen = Some(i);
                }
            }
        }
        // No tie in the second pass (every score rose meanwhile): the first
        // pass's least stands.
        Some(chosen.unwrap_or(first))
    }

    /// The least of [`MAX_LEAST_CANDIDATES`] random draws in one pass,
    /// candidates within the tie tolerance of the least so far counting as
    /// ties (the k-th tie replaces the choice with probability 1/k). `None`
    /// when no draw is eligible.
    fn pick_least_of_draws<R, F>(&self, rng: &mut R, len: usize, score: &mut F) -> Option<usize>
    where
        R: Rng + ?Sized,
        F: FnMut(usize) -> Option<Score>,
    {
        let tolerance = self.tie_tolerance();
        let mut best: Option<(usize, Score)> = None;
        let mut ties = 0u32;
        for _ in 0..MAX_LEAST_CANDIDATES {
            let i = rng.random_range(0..len);
            let Some(s) = score(i) else { continue };
            match best {
                None => {
                    best = Some((i, s));
                    ties = 1;
                }
                Some((chosen, least)) => {
                    let (lo, hi) = if s < least { (s, least) } else { (least, s) };
                    let tie = hi.seconds() - lo.seconds() <= tolerance * hi.seconds();
                    if tie {
                        ties += 1;
                        let take = rng.random_range(0..ties) == 0;
                        best = Some((if take { i } else { chosen }, lo));
                    } else if s < least {
                        best = Some((i, s));
                        ties = 1;
                    }
                }
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn the_least_wins_however_many_candidates_are_loaded() {
        let p = P2c::with_tie_tolerance(0.05);
        let mut r = SmallRng::seed_from_u64(1);
        // Four loaded endpoints and four nearly empty ones: every pick goes to
        // the least loaded, never to a loaded one (a pair would, 3/14 of the time).
        let costs = [100.0, 100.0, 100.0, 100.0, 3.0, 2.0, 5.0, 4.0];
        for _ in 0..1_000 {
            let got = p.pick_least(&mut r, costs.len(), |i| Some(Score::new(costs[i])));
            assert_eq!(got, Some(5));
        }
    }

    #[test]
    fn ties_spread_evenly_and_ineligible_ones_are_skipped() {
        let p = P2c::with_tie_tolerance(0.05);
        let mut r = SmallRng::seed_from_u64(2);
        let n = 8;
        let mut counts = vec![0u32; n];
        for _ in 0..40_000 {
            // 0 and 1 ineligible, 2..8 within 5 % of each other.
            let got = p
                .pick_least(&mut r, n, |i| {
                    (i >= 2).then(|| Score::new(10.0 + 0.01 * i as f64))
                })
                .unwrap();
            counts[got] += 1;
        }
        assert_eq!(counts[0] + counts[1], 0);
        let mean = 40_000.0 / 6.0;
        for &c in &counts[2..] {
            assert!((f64::from(c) - mean).abs() < mean * 0.05, "{counts:?}");
        }
    }

    #[test]
    fn a_large_fleet_is_sampled_and_still_finds_the_empty_half() {
        let p = P2c::with_tie_tolerance(0.05);
        let mut r = SmallRng::seed_from_u64(4);
        // 1,000 endpoints: the first half loaded, the second half (just
        // joined) nearly empty.
        let n = 1_000;
        for _ in 0..2_000 {
            let mut scored = 0;
            let got = p
                .pick_least(&mut r, n, |i| {
                    scored += 1;
                    Some(Score::new(if i < n / 2 { 100.0 } else { 1.0 }))
                })
                .unwrap();
            assert!(got >= n / 2, "picked loaded endpoint {got}");
            assert_eq!(scored, MAX_LEAST_CANDIDATES, "one score per draw");
        }
    }

    #[test]
    fn a_large_fleet_with_few_eligible_is_scanned() {
        let p = P2c::new();
        let mut r = SmallRng::seed_from_u64(5);
        // One eligible endpoint in 1,000: the draws miss it, the scan finds it.
        for _ in 0..100 {
            assert_eq!(
                p.pick_least(&mut r, 1_000, |i| (i == 777).then_some(Score::new(3.0))),
                Some(777)
            );
        }
    }

    #[test]
    fn scores_that_rise_between_the_passes_still_give_a_pick() {
        let p = P2c::new();
        let mut r = SmallRng::seed_from_u64(6);
        // Every score doubles after the first pass (calls started elsewhere).
        let mut calls = 0;
        let got = p.pick_least(&mut r, 4, |i| {
            calls += 1;
            let base = [4.0, 1.0, 3.0, 2.0][i];
            Some(Score::new(if calls > 4 { base * 2.0 } else { base }))
        });
        assert_eq!(got, Some(1));
    }

    #[test]
    fn nothing_eligible_is_none() {
        let p = P2c::new();
        let mut r = SmallRng::seed_from_u64(3);
        assert_eq!(p.pick_least(&mut r, 0, |_| Some(Score::ZERO)), None);
        assert_eq!(p.pick_least(&mut r, 5, |_| None), None);
        assert_eq!(p.pick_least(&mut r, 1, |_| Some(Score::MAX)), Some(0));
    }
}
