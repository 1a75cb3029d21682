//! An endpoint's [`PickView`] published for picks without a lock: a
//! sequence lock made of atomics.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Instant;

use orca_lb_core::{PICK_VIEW_WORDS, PickView};

/// How many words every pick reads: those of a unary pick of an endpoint
/// with nothing unusual to read.
const COMMON: usize = 9;

/// The last published [`PickView`] of one endpoint.
///
/// A writer (one at a time: the endpoint's core lock serializes them) makes
/// `seq` odd, stores the words, and makes it even again; a reader reads
/// `seq`, the words, and `seq` again, and retries if it was odd or changed:
/// then a write overlapped the read, and the words may be torn. Reads take
/// no lock and write nothing, so picks on many threads do not contend.
///
/// Ordering (the fence-based sequence lock): the writer's release fence
/// after the odd `seq` orders it before the words; a reader that sees any
/// word of a write then sees (acquire fence) a `seq` at least that odd one,
/// and retries. The final even `seq` is a release store, so a reader whose
/// first acquire load sees it sees every word of the write.
///
/// A reader reads the words it scores with, which the first (the view's
/// flags) tells ([`PickView::words_read`]): `seq` and the words come first
/// (`repr(C)`), so that the words of a unary score share `seq`'s cache
/// lines. Unary picks read the endpoint's standing cost instead, and the
/// view only to work one out again (see
/// [`StandingSlot`](crate::standing_slot::StandingSlot)); stream picks
/// read it every time.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SeqView {
    seq: AtomicU64,
    words: [AtomicU64; PICK_VIEW_WORDS],
    /// The origin of the view's times, the same for every view published.
    origin: Instant,
}

impl SeqView {
    /// Publishes `view` first.
    pub(crate) fn new(view: &PickView) -> Self {
        Self {
            seq: AtomicU64::new(0),
            words: view.to_words().map(AtomicU64::new),
            origin: view.origin(),
        }
    }

    /// The origin of the views' times.
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Publishes `view`. Writers must not overlap: callers hold the
    /// endpoint's core lock.
    pub(crate) fn store(&self, view: &PickView) {
        debug_assert_eq!(view.origin(), self.origin);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, word) in self.words.iter().zip(view.to_words()) {
            slot.store(word, Ordering::Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The last view published, as a pick (a stream's if `stream`) reads
    /// it: the words its score does not read are left 0 (see
    /// [`PickView::words_read`]).
    #[inline]
    pub(crate) fn load(&self, stream: bool) -> PickView {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let mut words = [0; PICK_VIEW_WORDS];
                // The words every pick reads, then the others it needs.
                for (word, slot) in words[..COMMON].iter_mut().zip(&self.words) {
                    *word = slot.load(Ordering::Relaxed);
                }
                let read = PickView::words_read(words[0], stream);
                if read > COMMON {
                    for (word, slot) in words[COMMON..read].iter_mut().zip(&self.words[COMMON..]) {
                        *word = slot.load(Ordering::Relaxed);
                    }
                }
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return PickView::from_words(self.origin, words);
                }
            }
            spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use orca_lb_core::{CircuitBreakerConfig, EndpointPolicy, Outcome, ScoreConfig};

    use super::*;

    #[test]
    fn readers_never_see_a_torn_view() {
        let score = ScoreConfig::default();
        let t = Instant::now();
        // Two views that differ in many words; a torn read would mix them.
        let a = EndpointPolicy::new(&score, CircuitBreakerConfig::default(), t);
        let mut b = a.clone();
        for k in 0..20 {
            let at = t + Duration::from_millis(10 * k);
            b.on_outcome(Outcome::Failure, None, false, false, at);
            b.on_outcome(
                Outcome::Success,
                Some(Duration::from_millis(7)),
                false,
                false,
                at,
            );
        }
        let (a, b) = (a.pick_view(&score), b.pick_view(&score));
        assert_ne!(a, b);
        let shared = Arc::new(SeqView::new(&a));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (shared, done) = (shared.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let v = shared.load(true);
                    assert!(v == a || v == b, "torn: {v:?}");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..200_000 {
            shared.store(if i % 2 == 0 { &b } else { &a });
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
