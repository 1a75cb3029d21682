//! The rate window's base, published so that reports read it without taking
//! a lock.

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use orca_lb_core::load_model::Totals;

/// A copy of the rate window's base (when it was recorded, and the totals
/// then), which the window's single writer replaces once per sample
/// interval and every report reads.
///
/// A sequence lock over atomics: the writer makes the sequence odd, writes,
/// and makes it even again; a reader that saw the same even sequence before
/// and after its reads has a consistent copy, and otherwise reads again.
/// Readers only load, so the cache line stays shared between the cores
/// that report, where a read lock would have them all write to it on every
/// report.
#[derive(Debug)]
pub(crate) struct WindowBase {
    /// The instant offsets are counted from.
    epoch: Instant,
    sequence: AtomicU64,
    at_ns: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    busy_ns: AtomicU64,
}

impl WindowBase {
    /// A base at `epoch`, with zero totals.
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            sequence: AtomicU64::new(0),
            at_ns: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        }
    }

    /// Publishes a new base. One writer at a time: the caller holds the
    /// window's lock.
    pub(crate) fn publish(&self, at: Instant, totals: Totals) {
        let at_ns =
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: the only writer reads its own last store.
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(1), Ordering::Relaxed);
        // Release: a reader that sees any of the stores below also sees the
        // odd sequence (it reads the sequence again after an acquire fence).
        fence(Ordering::Release);
        self.at_ns.store(at_ns, Ordering::Relaxed);
        self.requests.store(totals.requests, Ordering::Relaxed);
        self.errors.store(totals.errors, Ordering::Relaxed);
        self.busy_ns.store(totals.busy_ns, Ordering::Relaxed);
        // Release: a reader that sees the even sequence sees every store
        // above.
        self.sequence
            .store(sequence.wrapping_add(2), Ordering::Release);
    }

    /// The base: when it was recorded, and its totals.
    pub(crate) fn read(&self) -> (Instant, Totals) {
        loop {
            // Acquire: pairs with the last release store of the sequence.
            let before = self.sequence.load(Ordering::Acquire);
            if before % 2 == 1 {
                // Being written (for a few nanoseconds, once a second).
                std::hint::spin_loop();
                continue;
            }
            let at_ns = self.at_ns.load(Ordering::Relaxed);
            let totals = Totals {
                requests: self.requests.load(Ordering::Relaxed),
                errors: self.errors.load(Ordering::Relaxed),
                busy_ns: self.busy_ns.load(Ordering::Relaxed),
            };
            // Acquire: the loads above happen before the sequence is read
            // again, so a write that overlapped them shows as a change.
            fence(Ordering::Acquire);
            // Relaxed: ordered by the fence above.
            if self.sequence.load(Ordering::Relaxed) == before {
                return (self.epoch + Duration::from_nanos(at_ns), totals);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_whole_bases_while_one_is_written() {
        let epoch = Instant::now();
        let base = WindowBase::new(epoch);
        assert_eq!(base.read(), (epoch, Totals::default()));
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=20_000u64 {
                    let totals = Totals {
                        requests: i,
                        errors: 2 * i,
                        busy_ns: 3 * i,
                    };
                    base.publish(epoch + Duration::from_nanos(i), totals);
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    let mut last = 0;
                    for _ in 0..20_000 {
                        let (at, t) = base.read();
                        let i = t.requests;
                        assert_eq!((t.errors, t.busy_ns), (2 * i, 3 * i), "a torn read");
                        assert_eq!(at, epoch + Duration::from_nanos(i));
                        assert!(i >= last, "went back from {last} to {i}");
                        last = i;
                    }
                });
            }
        });
        assert_eq!(base.read().1.requests, 20_000);
    }
}
