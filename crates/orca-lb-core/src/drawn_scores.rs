//! The scored candidates of one best-of-k draw.

use crate::{MAX_CHOICES, Score};

/// Up to [`MAX_CHOICES`] eligible candidates of one draw with their scores,
/// in draw order, on the stack: what
/// [`P2c::pick_best_of`](crate::P2c::pick_best_of) chooses from.
#[derive(Debug, Clone)]
pub(crate) struct DrawnScores {
    items: [(usize, Score); MAX_CHOICES],
    len: usize,
}

impl Default for DrawnScores {
    fn default() -> Self {
        Self::new()
    }
}

impl DrawnScores {
    /// None yet.
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            items: [(0, Score::ZERO); MAX_CHOICES],
            len: 0,
        }
    }

    /// Adds candidate `index` with score `score`. At most [`MAX_CHOICES`]:
    /// more is a bug, and panics.
    #[inline]
    pub(crate) fn push(&mut self, index: usize, score: Score) {
        self.items[self.len] = (index, score);
        self.len += 1;
    }

    /// The candidates added, in order.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[(usize, Score)] {
        &self.items[..self.len]
    }
}
