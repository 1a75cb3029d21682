//! The cheapest of `k` random candidates, for unary picks among many
//! independent clients.

use rand::Rng;

use crate::drawn_scores::PASSED_OVER;
use crate::p2c::cheapest_of_all;
use crate::{DrawnScores, P2c, Score};

/// The most candidates [`P2c::pick_best_of`] draws for one pick, and the
/// largest valid [`ScoreConfig::choices`](crate::ScoreConfig::choices).
/// Candidates live in a fixed array of this size on the stack.
pub const MAX_CHOICES: usize = 8;

/// How many rounds of draws to try before scanning every candidate, as the
/// pair picker does: with most candidates ineligible, random draws rarely
/// find an eligible one.
const DRAW_ROUNDS: usize = 3;

impl P2c {
    /// Picks the cheapest of `k` distinct candidates drawn uniformly at
    /// random from `0..len` (of all of them when `len <= k`). `k` is capped
    /// at [`MAX_CHOICES`]; `k <= 2` is exactly [`pick`](Self::pick), the pair.
    /// `None` only when no candidate is eligible.
    ///
    /// Candidates within the tie tolerance of the cheapest drawn (see
    /// [`with_tie_tolerance`](Self::with_tie_tolerance)) tie with it, and the
    /// pick is uniform among the ties. Ineligible candidates (`score` is
    /// `None`) are passed over; when none of a round's draws is eligible,
    /// another round is drawn, and after a few a scan of every candidate
    /// finds the cheapest eligible one, as the pair picker does.
    ///
    /// Why more than two: with many independent clients, each one's view of
    /// an endpoint's load is a report some calls old, and two random choices
    /// often hold two loaded endpoints when a lightly loaded one exists
    /// (`docs/balancing.md`, "Many clients"). Choices stay random: each
    /// client draws its own subset, so clients acting on the same stale
    /// picture do not all pick the same endpoint unless `k` covers the fleet.
    ///
    /// Scores each drawn candidate once and allocates nothing: the draws
    /// (Floyd's sampling, `k` random numbers for `k` distinct candidates) sit
    /// in a fixed array.
    ///
    /// ```
    /// use orca_lb_core::{P2c, Score};
    /// use rand::SeedableRng;
    ///
    /// let costs = [Score::new(3.0), Score::new(1.0), Score::new(2.0), Score::new(4.0)];
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    /// // Four candidates, four choices: every one is scored, the cheapest wins.
    /// let picked = P2c::new().pick_best_of(&mut rng, costs.len(), 4, |i| Some(costs[i]));
    /// assert_eq!(picked, Some(1));
    /// ```
    pub fn pick_best_of<R, F>(&self, rng: &mut R, len: usize, k: usize, score: F) -> Option<usize>
    where
        R: Rng + ?Sized,
        F: FnMut(usize) -> Option<Score>,
    {
        if k <= 2 {
            return self.pick(rng, len, score);
        }
        self.best_of_draws(rng, len, k, |_| {}, score)
    }

    /// [`pick_best_of`](Self::pick_best_of), with `prefetch` called for every
    /// candidate of a draw before the first of them is scored.
    ///
    /// For candidates that lie apart in memory, in a fleet too large for the
    /// processor's nearest caches: when `prefetch` starts the reads `score`
    /// will make (a load whose value is not waited for), the draw's cache
    /// misses overlap instead of coming one after another, each candidate's
    /// scoring waiting out its own. `prefetch` must not change what `score`
    /// returns. A fleet no larger than `k` (every candidate is scored) and
    /// the pair (`k <= 2`) are not prefetched: so few stay in the nearest
    /// caches.
    ///
    /// ```
    /// use orca_lb_core::{P2c, Score};
    /// use rand::SeedableRng;
    ///
    /// let costs: Vec<Score> = (0..100).map(|i| Score::new(f64::from(i))).collect();
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    /// let mut prefetched = Vec::new();
    /// let picked = P2c::new().pick_best_of_prefetching(
    ///     &mut rng,
    ///     costs.len(),
    ///     4,
    ///     |i| prefetched.push(i),
    ///     |i| Some(costs[i]),
    /// );
    /// // The four drawn were prefetched, and the cheapest of them won.
    /// assert_eq!(prefetched.len(), 4);
    /// assert_eq!(picked, prefetched.iter().copied().min());
    /// ```
    #[inline(always)]
    pub fn pick_best_of_prefetching<R, P, F>(
        &self,
        rng: &mut R,
        len: usize,
        k: usize,
        prefetch: P,
        score: F,
    ) -> Option<usize>
    where
        R: Rng + ?Sized,
        P: FnMut(usize),
        F: FnMut(usize) -> Option<Score>,
    {
        if k <= 2 {
            return self.pick(rng, len, score);
        }
        self.best_of_draws(rng, len, k, prefetch, score)
    }

    /// The best-of-`k` pick for any `k` (2 included), without the pair
    /// picker's shortcut (a test compares its distribution at `k = 2` with
    /// the pair's), prefetching each draw's candidates in a fleet larger
    /// than the draw. Always inlined, with the loop that scores a draw's
    /// candidates, so that a caller's `score` can be inlined into it: a
    /// call per candidate saved and restored registers around each score.
    #[inline(always)]
    pub(crate) fn best_of_draws<R, P, F>(
        &self,
        rng: &mut R,
        len: usize,
        k: usize,
        mut prefetch: P,
        mut score: F,
    ) -> Option<usize>
    where
        R: Rng + ?Sized,
        P: FnMut(usize),
        F: FnMut(usize) -> Option<Score>,
    {
        let k = k.clamp(1, MAX_CHOICES);
        // A fleet no larger than the draw: one round scores every candidate.
        // The two cases share one loop, so that on the common path `score`
        // is called from one place, where it can be inlined.
        let covered = len <= k;
        let rounds = if covered { 1 } else { DRAW_ROUNDS };
        for _ in 0..rounds {
            let (indices, n) = if covered {
                (FIRST, len)
            } else {
                distinct_sample::<R, MAX_CHOICES>(rng, len, k)
            };
            let indices = &indices[..n];
            if !covered {
                indices.iter().for_each(|&i| prefetch(i));
            }
            let mut drawn = DrawnScores::new();
            for &i in indices {
                drawn.push(i, score(i));
            }
            let chosen = self.choose(rng, &drawn);
            if chosen.is_some() || covered {
                return chosen;
            }
        }
        cheapest_of_all(rng, len, score)
    }

    /// The cheapest of `drawn`, uniformly at random among those within the
    /// tie tolerance of it, in draw order; `None` when none is eligible.
    ///
    /// Its only data-dependent branches are on ties (whether there is one
    /// to break, and which the draw took): which drawn candidate is the
    /// cheapest is as random as the draw, and a mispredicted branch costs
    /// about as much as scoring a candidate. The ties are a bit mask in draw
    /// order; the chosen one is its `nth` set bit.
    #[inline]
    fn choose<R: Rng + ?Sized>(&self, rng: &mut R, drawn: &DrawnScores) -> Option<usize> {
        let least = drawn.least();
        if least == PASSED_OVER {
            return None;
        }
        let tolerance = self.tie_tolerance();
        // The pair picker's relation: `hi - lo <= tolerance * hi`; equal
        // scores always tie. `&` and `|`, not `&&` and `||`: every side is
        // cheap, and none is worth a branch.
        let mut ties = 0u32;
        for (n, &s) in drawn.seconds()[..drawn.len()].iter().enumerate() {
            let tie = (s != PASSED_OVER) & ((s == least) | (s - least <= tolerance * s));
            ties |= u32::from(tie) << n;
        }
        // More than one bit set: a tie to break.
        let nth = if ties & (ties - 1) != 0 {
            rng.random_range(0..ties.count_ones() as usize)
        } else {
            0
        };
        // Clear the lowest set bit `nth` times (none without a tie).
        for _ in 0..nth {
            ties &= ties - 1;
        }
        Some(drawn.index(ties.trailing_zeros() as usize))
    }
}

/// `0..MAX_CHOICES`, the candidates of a fleet no larger than the draw.
const FIRST: [usize; MAX_CHOICES] = [0, 1, 2, 3, 4, 5, 6, 7];

/// `k` distinct indices of `0..len` (`k <= N`, `k <= len`), every subset of
/// size `k` equally likely (Floyd's algorithm: `k` random numbers, no
/// rejection, no allocation), in the first `k` places of the array.
///
/// Each random number is 32 random bits, two from each 64-bit number the
/// generator gives, scaled to `0..=j` by a multiply and a shift (Lemire's
/// method without its rejection step): a draw from `0..=j` is uniform to
/// within `(j + 1) / 2^32` of each index's share, 2.3e-7 at 1,000
/// endpoints. Drawing each index with the generator's own uniform range
/// took a 64-bit number and a rarely taken branch per index, 2.6 times as
/// long.
#[inline]
fn distinct_sample<R: Rng + ?Sized, const N: usize>(
    rng: &mut R,
    len: usize,
    k: usize,
) -> ([usize; N], usize) {
    debug_assert!(k <= N && k <= len);
    // Places not drawn yet hold `usize::MAX`, which no draw equals, so the
    // check for a repeat looks at the whole array, without a branch.
    let mut out = [usize::MAX; N];
    let mut bits = 0u64;
    for (n, j) in (len - k..len).enumerate() {
        if n % 2 == 0 {
            bits = rng.next_u64();
        }
        let fraction = u128::from(bits >> (32 * (n % 2)) & u64::from(u32::MAX));
        // `j + 1` times a fraction of 2^32, rounded down: in `0..=j`.
        let t = ((fraction * (j as u128 + 1)) >> 32) as usize;
        // `t` may already be in; then `j` (never drawn before: every
        // earlier draw is below `j`) takes its place.
        let repeat = out.iter().fold(false, |seen, &o| seen | (o == t));
        out[n] = if repeat { j } else { t };
    }
    (out, k)
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
    fn samples_are_distinct_in_range_and_uniform() {
        let mut r = rng(1);
        for (len, k) in [(9, 8), (10, 3), (1_000, 8), (20, 4)] {
            let mut seen = vec![0u32; len];
            let rounds = 20_000;
            for _ in 0..rounds {
                let (sample, n) = distinct_sample::<_, MAX_CHOICES>(&mut r, len, k);
                let mut got = sample[..n].to_vec();
                assert_eq!(got.len(), k);
                assert!(got.iter().all(|&i| i < len));
                got.sort_unstable();
                got.dedup();
                assert_eq!(got.len(), k, "distinct");
                for i in got {
                    seen[i] += 1;
                }
            }
            // Each index is in a sample with probability k / len.
            let expected = f64::from(rounds) * k as f64 / len as f64;
            if len <= 20 {
                for &c in &seen {
                    assert!(
                        (f64::from(c) - expected).abs() < expected * 0.06,
                        "{len} {k}: {seen:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_single_and_nothing_eligible() {
        let p = P2c::new();
        let mut r = rng(2);
        assert_eq!(p.pick_best_of(&mut r, 0, 8, |_| Some(Score::ZERO)), None);
        assert_eq!(p.pick_best_of(&mut r, 1, 8, |_| Some(Score::ZERO)), Some(0));
        assert_eq!(p.pick_best_of(&mut r, 1, 8, |_| None), None);
        assert_eq!(p.pick_best_of(&mut r, 50, 8, |_| None), None);
    }

    #[test]
    fn the_least_wins_when_k_covers_the_fleet() {
        let p = P2c::with_tie_tolerance(0.05);
        let mut r = rng(3);
        let costs = [9.0, 4.0, 7.0, 2.0, 8.0, 6.0, 5.0, 3.0];
        for _ in 0..1_000 {
            let got = p.pick_best_of(&mut r, costs.len(), 8, |i| Some(Score::new(costs[i])));
            assert_eq!(got, Some(3));
        }
    }

    #[test]
    fn one_eligible_in_a_large_fleet_is_found() {
        let p = P2c::new();
        let mut r = rng(4);
        for _ in 0..200 {
            let got = p.pick_best_of(&mut r, 1_000, 8, |i| (i == 613).then_some(Score::new(1.0)));
            assert_eq!(got, Some(613));
        }
    }

    #[test]
    fn a_draw_is_prefetched_before_it_is_scored() {
        use std::cell::RefCell;
        let events = RefCell::new(Vec::new());
        let p = P2c::new();
        let mut r = rng(11);
        for round in 0..200 {
            events.borrow_mut().clear();
            let picked = p.pick_best_of_prefetching(
                &mut r,
                50,
                5,
                |i| events.borrow_mut().push((true, i)),
                |i| {
                    events.borrow_mut().push((false, i));
                    // Every third passed over, so some rounds draw again.
                    (i % 3 != 0 || round % 2 == 0).then(|| Score::new(i as f64))
                },
            );
            let events = events.borrow();
            // Draw by draw: five prefetches, then the same five scored.
            for draw in events.chunks(10) {
                assert_eq!(draw.len(), 10, "{events:?}");
                let (fetched, scored) = draw.split_at(5);
                assert!(fetched.iter().all(|&(f, _)| f), "{events:?}");
                assert!(scored.iter().all(|&(f, _)| !f), "{events:?}");
                let ids = |x: &[(bool, usize)]| x.iter().map(|&(_, i)| i).collect::<Vec<_>>();
                assert_eq!(ids(fetched), ids(scored));
            }
            assert!(picked.is_some_and(|i| events.iter().any(|&(_, j)| j == i)));
        }
        // Not for a fleet the draw covers, nor for the pair.
        events.borrow_mut().clear();
        p.pick_best_of_prefetching(
            &mut r,
            5,
            5,
            |i| events.borrow_mut().push((true, i)),
            |i| Some(Score::new(i as f64)),
        );
        p.pick_best_of_prefetching(
            &mut r,
            50,
            2,
            |i| events.borrow_mut().push((true, i)),
            |i| Some(Score::new(i as f64)),
        );
        assert!(events.borrow().is_empty());
    }

    #[test]
    fn k_above_the_cap_is_the_cap() {
        let p = P2c::new();
        let mut r = rng(5);
        // 9 candidates, the least at 8: with k capped at 8 of 9, it is
        // missed 1/9 of the time.
        let mut missed = 0;
        for _ in 0..9_000 {
            if p.pick_best_of(&mut r, 9, 100, |i| Some(Score::new(9.0 - i as f64))) != Some(8) {
                missed += 1;
            }
        }
        assert!((850..1_150).contains(&missed), "{missed}");
    }

    #[test]
    fn ties_within_the_tolerance_are_uniform() {
        let p = P2c::with_tie_tolerance(0.05);
        let mut r = rng(6);
        let n = 8;
        let picks = 80_000;
        let mut counts = vec![0u32; n];
        for _ in 0..picks {
            // 0..4 within 5 % of the least (4), 5..8 far above.
            let got = p
                .pick_best_of(&mut r, n, 8, |i| {
                    Some(Score::new(if i < 5 { 1.0 + 0.01 * i as f64 } else { 2.0 }))
                })
                .unwrap();
            counts[got] += 1;
        }
        assert_eq!(counts[5..].iter().sum::<u32>(), 0, "{counts:?}");
        let mean = f64::from(picks) / 5.0;
        for &c in &counts[..5] {
            assert!((f64::from(c) - mean).abs() < mean * 0.05, "{counts:?}");
        }
    }

    #[test]
    fn k_two_has_the_pairs_distribution() {
        // The general path at k = 2 against the pair picker, on a fleet
        // with ineligible members and near ties.
        let p = P2c::with_tie_tolerance(0.05);
        let n = 10;
        let cost = |i: usize| match i {
            2 | 7 => None,
            _ => Some(Score::new(1.0 + 0.03 * i as f64)),
        };
        let picks = 200_000;
        let (mut pair, mut general) = (vec![0u32; n], vec![0u32; n]);
        let mut r = rng(7);
        for _ in 0..picks {
            pair[p.pick(&mut r, n, cost).unwrap()] += 1;
            general[p.best_of_draws(&mut r, n, 2, |_| {}, cost).unwrap()] += 1;
        }
        for i in 0..n {
            let (a, b) = (f64::from(pair[i]), f64::from(general[i]));
            assert!(
                (a - b).abs() <= 0.01 * f64::from(picks),
                "{pair:?} vs {general:?}"
            );
        }
        assert_eq!(pair[2] + pair[7] + general[2] + general[7], 0);
    }

    #[test]
    fn k_two_is_the_pair_picker_exactly() {
        let p = P2c::with_tie_tolerance(0.05);
        let (mut a, mut b) = (rng(8), rng(8));
        for len in 0..40 {
            let cost = |i: usize| (i % 5 != 1).then(|| Score::new((i * 7 % 11) as f64));
            assert_eq!(
                p.pick(&mut a, len, cost),
                p.pick_best_of(&mut b, len, 2, cost)
            );
        }
    }
}
