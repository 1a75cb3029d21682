//! The unary costs of the candidates one pick draws, computed together.

use crate::{CostInputs, DrawnScores, MAX_CHOICES, PickTime, Score, UnaryCost};

/// Up to [`MAX_CHOICES`] candidates of one pick, gathered in draw order
/// ([`push`](Self::push)) and scored together ([`scores`](Self::scores)).
///
/// Gathering reads each endpoint's view and decides what depends on its
/// flags (passed over, a probe, or a cost to compute); what is left of each
/// cost ([`CostInputs::cost`]) is the same branch-free arithmetic for every
/// candidate, run over all of them in one loop, so that the candidates'
/// chains of dependent steps (the backlog weight's `exp2`, a division)
/// overlap rather than follow one another. On the stack: no allocation.
#[derive(Debug, Clone)]
pub struct CostBatch {
    index: [usize; MAX_CHOICES],
    inputs: [CostInputs; MAX_CHOICES],
    /// Whether the candidate is a probe (scored 0) rather than a cost.
    probe: [bool; MAX_CHOICES],
    len: usize,
}

impl Default for CostBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl CostBatch {
    /// No candidates.
    #[inline]
    pub fn new() -> Self {
        Self {
            index: [0; MAX_CHOICES],
            inputs: [CostInputs::default(); MAX_CHOICES],
            probe: [false; MAX_CHOICES],
            len: 0,
        }
    }

    /// Adds candidate `index` (passed over if `cost` says so). At most
    /// [`MAX_CHOICES`] candidates: more is a bug, and panics.
    #[inline]
    pub fn push(&mut self, index: usize, cost: UnaryCost) {
        let (inputs, probe) = match cost {
            UnaryCost::PassOver => return,
            UnaryCost::Probe => (CostInputs::default(), true),
            UnaryCost::Compute(inputs) => (inputs, false),
        };
        self.index[self.len] = index;
        self.inputs[self.len] = inputs;
        self.probe[self.len] = probe;
        self.len += 1;
    }

    /// The candidates not passed over, with their scores at `time`, in the
    /// order they were pushed, added to `out`.
    #[inline]
    pub fn scores(&self, time: &PickTime, out: &mut DrawnScores) {
        let mut costs = [Score::ZERO; MAX_CHOICES];
        if self.len <= 2 {
            // One or two (the pair picker, or a scan of every candidate).
            for (cost, inputs) in costs.iter_mut().zip(&self.inputs[..self.len]) {
                *cost = inputs.cost(time);
            }
        } else {
            // Every slot, used or not (the unused hold default inputs): a
            // loop of fixed length with no branch, which the compiler
            // unrolls and vectorizes.
            for (cost, inputs) in costs.iter_mut().zip(&self.inputs) {
                *cost = inputs.cost(time);
            }
        }
        let pushed = self.index.iter().zip(&self.probe).zip(costs);
        for ((&index, &probe), cost) in pushed.take(self.len) {
            out.push(index, if probe { Score::ZERO } else { cost });
        }
    }
}
