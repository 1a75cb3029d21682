//! The scored candidates of one best-of-k draw.

use crate::{MAX_CHOICES, Score};

/// The score of a candidate passed over: no [`Score`] is infinite
/// ([`Score::new`] caps at [`Score::MAX`]).
pub(crate) const PASSED_OVER: f64 = f64::INFINITY;

/// Up to [`MAX_CHOICES`] candidates of one draw with their scores, in draw
/// order, on the stack: what
/// [`P2c::pick_best_of`](crate::P2c::pick_best_of) chooses from. The scores
/// are plain seconds in an array of their own, [`PASSED_OVER`] for a
/// candidate passed over and for places not filled, so that the choice
/// reads them as one vector of eight, without branches.
#[derive(Debug, Clone)]
pub(crate) struct DrawnScores {
    index: [usize; MAX_CHOICES],
    seconds: [f64; MAX_CHOICES],
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
            index: [0; MAX_CHOICES],
            seconds: [PASSED_OVER; MAX_CHOICES],
            len: 0,
        }
    }

    /// Adds candidate `index` with score `score`, `None` if it is passed
    /// over. At most [`MAX_CHOICES`]: more is a bug, and panics.
    #[inline]
    pub(crate) fn push(&mut self, index: usize, score: Option<Score>) {
        self.index[self.len] = index;
        self.seconds[self.len] = score.map_or(PASSED_OVER, Score::seconds);
        self.len += 1;
    }

    /// The least score added, in seconds; [`PASSED_OVER`] if every
    /// candidate was passed over (or none was added). Found here, after the
    /// scoring, rather than kept up to date by [`push`](Self::push): between
    /// calls to a scorer the compiler cannot see into, a running least
    /// would go through memory, one candidate waiting on the last.
    #[inline]
    pub(crate) fn least(&self) -> f64 {
        // No score is NaN: `<` is their order, and a plain minimum.
        self.seconds[..self.len]
            .iter()
            .fold(PASSED_OVER, |least, &s| if s < least { s } else { least })
    }

    /// Every place's score in seconds, in draw order, [`PASSED_OVER`] past
    /// the candidates added.
    #[inline]
    pub(crate) fn seconds(&self) -> &[f64; MAX_CHOICES] {
        &self.seconds
    }

    /// How many candidates were added.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The candidate added `n`th.
    #[inline]
    pub(crate) fn index(&self, n: usize) -> usize {
        self.index[n]
    }
}
