//! Least request: power of two choices on the calls in flight.

use rand::Rng;

use crate::{P2c, Score};

/// Picks the endpoint with fewer calls in flight out of two drawn at
/// random.
///
/// This is Envoy's `least_request` with equal weights and the default
/// `choice_count` of 2, Finagle's P2C least-loaded balancer, and tower's
/// `p2c::Balance` over `PendingRequests`. The count is the client's own: the
/// calls it has sent to the endpoint and not yet seen complete. No report
/// from the server is used, so the policy reacts only to what this one
/// client sees.
///
/// It is a [`P2c`] whose score is the in-flight count: only the two drawn
/// candidates are asked for their count, ties go to either, and a pick
/// allocates nothing.
///
/// ```
/// use orca_lb_core::baseline::LeastRequest;
/// use rand::SeedableRng;
///
/// let in_flight = [4, 0, 9];
/// let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
/// let picked = LeastRequest::new()
///     .pick(&mut rng, in_flight.len(), |i| Some(in_flight[i]))
///     .unwrap();
/// // The busiest endpoint loses every pair it is drawn in.
/// assert_ne!(picked, 2);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastRequest {
    p2c: P2c,
}

// === impl LeastRequest ===

impl LeastRequest {
    /// A picker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Picks one of `0..len`, or `None` if no candidate is eligible.
    ///
    /// `in_flight(i)` is the number of calls in flight on candidate `i`, or
    /// `None` if it must not be picked. Never returns an ineligible candidate
    /// while an eligible one exists (see [`P2c::pick`]).
    pub fn pick<R, F>(&self, rng: &mut R, len: usize, mut in_flight: F) -> Option<usize>
    where
        R: Rng + ?Sized,
        F: FnMut(usize) -> Option<u32>,
    {
        // A count is not a cost in seconds, but `Score` only needs to order
        // candidates, and every `u32` converts to `f64` exactly.
        self.p2c
            .pick(rng, len, |i| in_flight(i).map(|n| Score::new(f64::from(n))))
    }
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
    fn empty_and_single() {
        let lr = LeastRequest::new();
        let mut r = rng(1);
        assert_eq!(lr.pick(&mut r, 0, |_| Some(0)), None);
        assert_eq!(lr.pick(&mut r, 1, |_| Some(100)), Some(0));
        assert_eq!(lr.pick(&mut r, 1, |_| None), None);
    }

    #[test]
    fn of_two_candidates_never_picks_the_busier() {
        let lr = LeastRequest::new();
        let mut r = rng(2);
        for _ in 0..1_000 {
            assert_eq!(lr.pick(&mut r, 2, |i| Some([5, 3][i])), Some(1));
            assert_eq!(lr.pick(&mut r, 2, |i| Some([0, 1][i])), Some(0));
        }
    }

    #[test]
    fn the_busiest_of_many_is_never_picked() {
        let lr = LeastRequest::new();
        let mut r = rng(3);
        for _ in 0..2_000 {
            let len = r.random_range(2..16);
            let busiest = r.random_range(0..len);
            let in_flight: Vec<u32> = (0..len)
                .map(|i| {
                    if i == busiest {
                        50
                    } else {
                        r.random_range(0..50)
                    }
                })
                .collect();
            let got = lr.pick(&mut r, len, |i| Some(in_flight[i])).unwrap();
            assert_ne!(got, busiest, "{in_flight:?}");
        }
    }

    #[test]
    fn asks_only_for_the_drawn_candidates() {
        let lr = LeastRequest::new();
        let mut r = rng(4);
        for _ in 0..100 {
            let mut asked = 0;
            lr.pick(&mut r, 1_000, |_| {
                asked += 1;
                Some(0)
            });
            assert_eq!(asked, 2);
        }
    }

    #[test]
    fn never_returns_an_ineligible_candidate_while_one_is_eligible() {
        let lr = LeastRequest::new();
        let mut r = rng(5);
        for _ in 0..5_000 {
            let len = r.random_range(1..40);
            // Mostly ineligible, so the fallback scan runs too.
            let in_flight: Vec<Option<u32>> = (0..len)
                .map(|_| r.random_bool(0.1).then(|| r.random_range(0..10)))
                .collect();
            match lr.pick(&mut r, len, |i| in_flight[i]) {
                Some(i) => assert!(in_flight[i].is_some(), "{i} in {in_flight:?}"),
                None => assert!(in_flight.iter().all(Option::is_none), "{in_flight:?}"),
            }
        }
    }
}
