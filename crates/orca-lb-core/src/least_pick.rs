//! The least costly of every candidate, for picks that must not miss a
//! nearly empty endpoint (streams).

use rand::Rng;

use crate::{P2c, Score};

impl P2c {
    /// Picks the cheapest of all of `0..len`, a candidate within the tie
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
    /// among the ties), allocates nothing.
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
        let least = (0..len).filter_map(&mut score).min()?;
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
        // The least itself is a tie, unless its score changed between the
        // passes; then the scan's least stands.
        chosen.or_else(|| (0..len).find(|&i| score(i) == Some(least)))
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
    fn nothing_eligible_is_none() {
        let p = P2c::new();
        let mut r = SmallRng::seed_from_u64(3);
        assert_eq!(p.pick_least(&mut r, 0, |_| Some(Score::ZERO)), None);
        assert_eq!(p.pick_least(&mut r, 5, |_| None), None);
        assert_eq!(p.pick_least(&mut r, 1, |_| Some(Score::MAX)), Some(0));
    }
}
