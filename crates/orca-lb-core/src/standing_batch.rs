//! The unary scores of the candidates one pick draws, from their standing
//! costs, computed together.

use crate::standing_cost::{Admitted, OwnCalls};
use crate::{DrawnScores, LocalLoad, MAX_CHOICES, PickContext, Score, StandingCost};

/// Up to [`MAX_CHOICES`] candidates of one unary pick, gathered in draw
/// order ([`push`](Self::push)) and scored together
/// ([`scores`](Self::scores)).
///
/// Gathering settles what depends on each candidate's flags and warm-up
/// (passed over, a probe, or a cost to compute) and reads this client's
/// calls there; what is left of each cost is the same arithmetic without a
/// branch for every candidate, run over all of them in one loop, so that
/// their chains of dependent steps overlap rather than follow one another.
/// The scores are those [`StandingCost::unary_score`] gives, bit for bit.
/// On the stack: no allocation.
#[derive(Debug, Clone)]
pub struct StandingBatch {
    index: [usize; MAX_CHOICES],
    cost: [StandingCost; MAX_CHOICES],
    /// Seconds into each cost's span.
    dt: [f64; MAX_CHOICES],
    own: [OwnCalls; MAX_CHOICES],
    /// Whether the candidate is a probe (scored 0) rather than a cost.
    probe: [bool; MAX_CHOICES],
    len: usize,
}

impl Default for StandingBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl StandingBatch {
    /// No candidates.
    #[inline]
    pub fn new() -> Self {
        Self {
            index: [0; MAX_CHOICES],
            cost: [StandingCost::EMPTY; MAX_CHOICES],
            dt: [0.0; MAX_CHOICES],
            own: [OwnCalls::default(); MAX_CHOICES],
            probe: [false; MAX_CHOICES],
            len: 0,
        }
    }

    /// Adds candidate `index`, whose standing cost is `cost` and on which
    /// this client has `local`, for a unary pick at `now` (seconds since the
    /// views' origin): passed over if the pick passes it over. At most
    /// [`MAX_CHOICES`] candidates: more is a bug, and panics.
    #[inline]
    pub fn push(
        &mut self,
        index: usize,
        cost: &StandingCost,
        now: f64,
        local: LocalLoad,
        pick: &PickContext<'_>,
    ) {
        let Some(admitted) = cost.admit(now, pick) else {
            return;
        };
        let n = self.len;
        self.index[n] = index;
        self.cost[n] = *cost;
        match admitted {
            Admitted::Probe => self.probe[n] = true,
            Admitted::Cost(dt) => {
                self.dt[n] = dt;
                self.own[n] = OwnCalls::new(local, pick);
            }
        }
        self.len += 1;
    }

    /// The candidates not passed over, with their scores, in the order
    /// they were pushed, added to `out`; `pick` is the one they were
    /// pushed for.
    #[inline]
    pub fn scores(&self, pick: &PickContext<'_>, out: &mut DrawnScores) {
        let contention = pick.score.contention;
        let mut costs = [0.0; MAX_CHOICES];
        // Every slot, used or not (the unused hold an empty cost): a loop of
        // fixed length with no branch.
        for (k, cost) in costs.iter_mut().enumerate() {
            *cost = self.cost[k].cost_at(self.dt[k], self.own[k], contention);
        }
        for k in 0..self.len {
            let score = if self.probe[k] {
                Score::ZERO
            } else {
                Score::new(costs[k])
            };
            out.push(self.index[k], score);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::random_history::{fed, t0};
    use crate::{FleetView, PickSettings, PickTime, PickView, ScoreConfig};

    #[test]
    fn scores_as_one_by_one_bit_for_bit() {
        let t = t0();
        let score = ScoreConfig::default();
        let settings = PickSettings::new(&score);
        let mut rng = SmallRng::seed_from_u64(31);
        let mut compared = 0;
        for _ in 0..2_000 {
            let n = rng.random_range(1..=MAX_CHOICES);
            let now = t + Duration::from_secs(30);
            let pick = PickContext {
                stream: false,
                warm_up: rng.random_range(0.0..1.0),
                panic: rng.random_bool(0.1),
                fleet: FleetView {
                    service_time: rng.random_range(0.001..0.05),
                    backlog: rng.random_range(0.0..5.0),
                    streams: 0.0,
                },
                score: &score,
                now,
            };
            let seconds = PickView::seconds_since(t, now);
            let time = PickTime::new(&settings, seconds);
            let mut batch = StandingBatch::new();
            let mut want = DrawnScores::new();
            for i in 0..n {
                let (policy, _) = fed(&mut rng, &score, t);
                let view = policy.view().prepare(&score, t);
                let cost = StandingCost::new(&view, &time, &pick);
                let in_flight = rng.random_range(0..4);
                let local = LocalLoad {
                    in_flight,
                    streams: 0,
                    in_flight_since: (in_flight > 0)
                        .then(|| now.checked_sub(Duration::from_millis(rng.random_range(0..300))))
                        .flatten(),
                };
                batch.push(i, &cost, seconds, local, &pick);
                if let Some(s) = cost.unary_score(seconds, local, &pick) {
                    want.push(i, s);
                    compared += 1;
                }
            }
            let mut got = DrawnScores::new();
            batch.scores(&pick, &mut got);
            assert_eq!(got.as_slice(), want.as_slice());
        }
        assert!(compared > 4_000, "{compared}");
    }
}
