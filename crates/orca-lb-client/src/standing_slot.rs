//! An endpoint's [`StandingCost`], shared by the picks of every thread
//! without a lock: a sequence lock whose writers are the picks themselves.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use orca_lb_core::{STANDING_COST_WORDS, StandingCost};

/// The low half of [`StandingSlot::seq`] counts writes (odd while one is
/// under way); the high half is the generation, which
/// [`invalidate`](StandingSlot::invalidate) advances.
const GENERATION: u64 = 1 << 32;

/// The standing cost a pick last worked out for one endpoint, for the picks
/// after it to reuse while it covers their time (see [`StandingCost`]).
///
/// `seq` is a sequence lock with many writers: a pick that found no usable
/// standing cost works one out and publishes it if no other write and no
/// invalidation came between its read of `seq` and its publication. It
/// takes the slot by moving `seq` from the even value it read to odd
/// (compare-and-swap; on failure it publishes nothing: its own pick still
/// uses what it worked out), stores the words, and adds one to make `seq`
/// even again. A reader reads `seq`, the words, and `seq` again, and uses
/// the words only if `seq` was even and did not change.
///
/// What a standing cost is worked out from (the endpoint's pick view, the
/// fleet medians) changes elsewhere: whoever changes it calls
/// [`invalidate`](Self::invalidate) afterwards, which advances the
/// generation in the high half of `seq` (an add, so it never waits, and a
/// writer's closing add keeps it). Each published standing cost carries the
/// generation its writer read before reading what it worked the cost out
/// from; a reader uses it only in that generation.
///
/// Ordering: the invalidating add is a release and a writer's first read
/// of `seq` an acquire, so a writer that reads the new generation reads the
/// new view and medians too; one that read the old generation stamps its
/// cost with it, or fails its compare-and-swap. The words themselves follow
/// the fence-based sequence lock of [`SeqView`](crate::seq_view::SeqView).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct StandingSlot {
    seq: AtomicU64,
    /// The standing cost's words ([`StandingCost::to_words`]), the first
    /// with the generation it was worked out in in its high 32 bits.
    words: [AtomicU64; STANDING_COST_WORDS],
}

/// The high half of a standing cost's first word: the slot's stamp.
const STAMP_SHIFT: u32 = 32;

/// What a pick read of a [`StandingSlot`]: the standing cost if usable,
/// else the `seq` to publish one against.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum SlotRead {
    /// A standing cost of the current generation that covers the pick's
    /// time.
    Usable(StandingCost),
    /// None usable: the caller works one out (reading what it is worked out
    /// from after this read) and offers it to
    /// [`publish`](StandingSlot::publish) with this `seq`.
    Stale(u64),
}

impl StandingSlot {
    /// An empty slot: nothing in it is usable.
    pub(crate) fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            // Stamped with no generation `seq` has yet: not a standing cost.
            words: std::array::from_fn(|i| AtomicU64::new(if i == 0 { u64::MAX } else { 0 })),
        }
    }

    /// Its size in bytes: the sequence and the words.
    #[cfg(test)]
    pub(crate) fn size() -> usize {
        std::mem::size_of::<Self>()
    }

    /// The standing cost published in the current generation, if it covers
    /// `now` (seconds since the views' origin).
    #[cfg(test)]
    pub(crate) fn read(&self, now: f64) -> SlotRead {
        match self.read_with(now, |cost| *cost) {
            Ok(cost) => SlotRead::Usable(cost),
            Err(seq) => SlotRead::Stale(seq),
        }
    }

    /// `f` of the standing cost published in the current generation, if it
    /// covers `now` (seconds since the views' origin); else the `seq` to
    /// publish one against with [`publish`](Self::publish). `f` is given the cost
    /// where it was rebuilt from the words, rather than a copy returned to
    /// the caller, so that its values stay in registers: a copy spilled to
    /// the stack word by word and read back two words at a time stalls on
    /// every read, as the processor cannot forward one load from two stores.
    #[inline]
    pub(crate) fn read_with<R>(
        &self,
        now: f64,
        f: impl FnOnce(&StandingCost) -> R,
    ) -> Result<R, u64> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 0 {
            let words: [u64; STANDING_COST_WORDS] =
                std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before
                && words[0] >> STAMP_SHIFT == before >> STAMP_SHIFT
            {
                let cost = StandingCost::from_words(words);
                if cost.covers(now) {
                    return Ok(f(&cost));
                }
            }
        }
        Err(before)
    }

    /// Reads its first word and discards it: brings the slot toward the
    /// processor without waiting for it, ahead of a [`read_with`](Self::read_with).
    #[inline]
    pub(crate) fn prefetch(&self) {
        std::hint::black_box(self.seq.load(Ordering::Relaxed));
    }

    /// Publishes `cost`, worked out after [`read_with`](Self::read_with)
    /// returned `Err(seq)`, unless another write or an invalidation came since (or
    /// one was under way then): then it publishes nothing.
    pub(crate) fn publish(&self, seq: u64, cost: &StandingCost) {
        if seq & 1 != 0 {
            return;
        }
        if self
            .seq
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        let mut words = cost.to_words();
        words[0] |= (seq >> STAMP_SHIFT) << STAMP_SHIFT;
        for (slot, word) in self.words.iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
        // An add, not a store: it keeps an invalidation that came meanwhile.
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// Makes what is published unusable: call after changing what standing
    /// costs are worked out from. Never waits.
    pub(crate) fn invalidate(&self) {
        self.seq.fetch_add(GENERATION, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use orca_lb_core::{
        CircuitBreakerConfig, EndpointPolicy, FleetView, LoadReport, LocalLoad, Outcome,
        PickContext, PickSettings, PickTime, PickView, RawLoadReport, ScoreConfig, named_metrics,
    };

    use super::*;

    /// Two standing costs that differ in every word but the flags.
    fn two(now: Instant) -> (StandingCost, StandingCost) {
        let score = ScoreConfig::default();
        let origin = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        let mut policy = EndpointPolicy::new(&score, CircuitBreakerConfig::default(), origin);
        let raw = RawLoadReport {
            cpu_utilization: 0.5,
            named_metrics: [
                (named_metrics::IN_FLIGHT, 3.0),
                (named_metrics::CAPACITY, 4.0),
                (named_metrics::SERVICE_TIME_MS, 20.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..RawLoadReport::default()
        };
        let report = LoadReport::try_from(raw).unwrap();
        policy.on_report(&report, LocalLoad::default(), false, now);
        let pick = |fleet_backlog| PickContext {
            stream: false,
            warm_up: 0.0,
            panic: false,
            fleet: FleetView {
                service_time: 0.01,
                backlog: fleet_backlog,
                streams: 0.0,
            },
            score: &score,
            now,
        };
        let time = PickTime::new(
            &PickSettings::new(&score),
            PickView::seconds_since(origin, now),
        );
        let view = policy.view().prepare(&score, origin);
        let a = StandingCost::new(&view, &time, &pick(1.0));
        policy.on_outcome(
            Outcome::Failure,
            Some(Duration::from_millis(5)),
            false,
            false,
            now,
        );
        let view = policy.view().prepare(&score, origin);
        let b = StandingCost::new(&view, &time, &pick(2.0));
        assert_ne!(a, b);
        (a, b)
    }

    #[test]
    fn usable_until_invalidated_or_out_of_its_span() {
        let (a, _) = two(Instant::now());
        let slot = StandingSlot::new();
        let SlotRead::Stale(seq) = slot.read(a.from()) else {
            panic!("an empty slot has nothing usable");
        };
        slot.publish(seq, &a);
        assert!(matches!(slot.read(a.from()), SlotRead::Usable(c) if c == a));
        assert!(matches!(
            slot.read(a.from() + 2.0 * a.span()),
            SlotRead::Stale(_)
        ));
        slot.invalidate();
        let SlotRead::Stale(seq) = slot.read(a.from()) else {
            panic!("invalidated");
        };
        // A write worked out before the invalidation is not published.
        slot.publish(seq.wrapping_sub(GENERATION), &a);
        assert!(matches!(slot.read(a.from()), SlotRead::Stale(_)));
        slot.publish(seq, &a);
        assert!(matches!(slot.read(a.from()), SlotRead::Usable(c) if c == a));
    }

    #[test]
    fn an_invalidation_during_a_write_wins() {
        let (a, _) = two(Instant::now());
        let slot = StandingSlot::new();
        let SlotRead::Stale(seq) = slot.read(a.from()) else {
            panic!("empty");
        };
        // Taken for a write, then invalidated before the write ends.
        slot.seq
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .unwrap();
        let mut words = a.to_words();
        words[0] |= (seq >> STAMP_SHIFT) << STAMP_SHIFT;
        for (w, v) in slot.words.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
        slot.invalidate();
        slot.seq.fetch_add(1, Ordering::Release);
        assert!(matches!(slot.read(a.from()), SlotRead::Stale(_)));
    }

    #[test]
    fn readers_never_see_a_torn_cost() {
        let (a, b) = two(Instant::now());
        let slot = Arc::new(StandingSlot::new());
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (slot, done) = (slot.clone(), done.clone());
            std::thread::spawn(move || {
                let mut usable = 0u64;
                while !done.load(Ordering::Relaxed) {
                    if let SlotRead::Usable(c) = slot.read(a.from()) {
                        assert!(c == a || c == b, "torn: {c:?}");
                        usable += 1;
                    }
                }
                usable
            })
        };
        for i in 0..200_000 {
            let seq = match slot.read(f64::NAN) {
                SlotRead::Stale(seq) => seq,
                SlotRead::Usable(_) => unreachable!("NaN is covered by nothing"),
            };
            slot.publish(seq, if i % 2 == 0 { &a } else { &b });
            if i % 1_000 == 0 {
                slot.invalidate();
            }
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
