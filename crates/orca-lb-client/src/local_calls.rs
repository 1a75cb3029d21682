//! This client's own calls and streams on one endpoint, counted without a
//! lock: what the score adds to the endpoint's reported load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use orca_lb_core::LocalLoad;

/// The low bits of [`LocalCalls::unary`] count calls (up to about a million
/// in flight), the high bits sum their start times.
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const SUM_MASK: u64 = u64::MAX >> COUNT_BITS;

/// What a unary call started at `now` adds to [`LocalCalls::unary`]: its
/// start time (microseconds from `epoch`) above [`COUNT_BITS`], one below.
/// Additions and subtractions wrap, so the word stays exact modulo 2^64
/// however long the endpoint lives.
fn unary_mark(epoch: Instant, now: Instant) -> u64 {
    let us = now.saturating_duration_since(epoch).as_micros() as u64;
    (us << COUNT_BITS).wrapping_add(1)
}

/// The number of unary calls summed in `word` (see [`unary_mark`]).
fn unary_count(word: u64) -> u32 {
    // COUNT_MASK fits in 20 bits.
    (word & COUNT_MASK) as u32
}

/// The mean start time of the calls summed in `word` (see [`unary_mark`]),
/// as of `now`; `None` when there are none.
fn mean_start(word: u64, epoch: Instant, now: Instant) -> Option<Instant> {
    let n = word & COUNT_MASK;
    if n == 0 {
        return None;
    }
    // The sum of the ages is exact modulo 2^(64 - COUNT_BITS) microseconds
    // (over 200 days of calls in flight). A call started by another thread
    // after `now` was read can make it negative, which wraps to a huge
    // value: count that as no age.
    let now_us = now.saturating_duration_since(epoch).as_micros() as u64;
    let ages = n.wrapping_mul(now_us).wrapping_sub(word >> COUNT_BITS) & SUM_MASK;
    let ages = if ages > SUM_MASK / 2 { 0 } else { ages };
    Some(
        now.checked_sub(Duration::from_micros(ages / n))
            .unwrap_or(epoch),
    )
}

/// This client's unary calls in flight (with their start times) and open
/// streams on one endpoint.
///
/// Every access is `Relaxed`: each word is a counter read on its own, no
/// other memory is published through it, and a pick that reads a value a
/// moment old only scores with a moment-old load.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct LocalCalls {
    /// The unary calls in flight and the sum of their start times, in one
    /// word so that a pick reads both at once: each call adds its
    /// [`unary_mark`] when it starts and takes it back when it ends. The one
    /// count of unary calls in flight.
    unary: AtomicU64,
    /// Open streams.
    streams: AtomicU32,
    /// Start times count in microseconds from here.
    epoch: Instant,
}

/// What a started call took, to give back when it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallMark {
    /// A unary call: what it added to the unary word.
    Unary(u64),
    /// A stream.
    Stream,
}

impl LocalCalls {
    /// No calls; start times count from `epoch`.
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            unary: AtomicU64::new(0),
            streams: AtomicU32::new(0),
            epoch,
        }
    }

    /// Counts a call (a stream if `stream`) started at `now`.
    pub(crate) fn start(&self, stream: bool, now: Instant) -> CallMark {
        if stream {
            self.streams.fetch_add(1, Relaxed);
            CallMark::Stream
        } else {
            let mark = unary_mark(self.epoch, now);
            self.unary.fetch_add(mark, Relaxed);
            CallMark::Unary(mark)
        }
    }

    /// Takes back a call counted by [`start`](Self::start).
    pub(crate) fn end(&self, mark: CallMark) {
        match mark {
            CallMark::Unary(mark) => {
                self.unary.fetch_sub(mark, Relaxed);
            }
            CallMark::Stream => {
                self.streams.fetch_sub(1, Relaxed);
            }
        }
    }

    /// The calls as of `now`, with the mean start time of the unary ones.
    #[inline]
    pub(crate) fn load(&self, now: Instant) -> LocalLoad {
        let word = self.unary.load(Relaxed);
        LocalLoad {
            in_flight: unary_count(word),
            streams: self.streams.load(Relaxed),
            in_flight_since: mean_start(word, self.epoch, now),
        }
    }

    /// The unary calls as of `now`, with their mean start time, as
    /// [`load`](Self::load) gives them but without the streams (0): what a
    /// unary pick reads, the unary word alone (and the origin of the start
    /// times, with calls in flight).
    #[inline]
    pub(crate) fn load_unary(&self, now: Instant) -> LocalLoad {
        let word = self.unary.load(Relaxed);
        let in_flight = unary_count(word);
        LocalLoad {
            in_flight,
            streams: 0,
            // The origin only with calls in flight: it lies in another
            // cache line.
            in_flight_since: if in_flight == 0 {
                None
            } else {
                mean_start(word, self.epoch, now)
            },
        }
    }

    /// Reads its unary word and discards it: brings it toward the processor
    /// without waiting for it, ahead of a [`load_unary`](Self::load_unary).
    #[inline]
    pub(crate) fn prefetch_unary(&self) {
        std::hint::black_box(self.unary.load(Relaxed));
    }

    /// Where the unary word ends, in bytes from the start.
    #[cfg(test)]
    pub(crate) fn unary_end() -> usize {
        std::mem::offset_of!(LocalCalls, unary) + std::mem::size_of::<AtomicU64>()
    }

    /// Unary calls in flight.
    pub(crate) fn in_flight(&self) -> u32 {
        unary_count(self.unary.load(Relaxed))
    }

    /// Whether no call or stream is open.
    pub(crate) fn is_idle(&self) -> bool {
        unary_count(self.unary.load(Relaxed)) == 0 && self.streams.load(Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_start_times_give_the_mean_age() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        let mut word = 0u64;
        assert_eq!(mean_start(word, epoch, epoch + ms(5)), None);
        let a = unary_mark(epoch, epoch + ms(10));
        let b = unary_mark(epoch, epoch + ms(30));
        word = word.wrapping_add(a).wrapping_add(b);
        assert_eq!(unary_count(word), 2);
        let now = epoch + ms(100);
        // Ages 90 and 70 ms: 80 ms on average.
        assert_eq!(mean_start(word, epoch, now), Some(now - ms(80)));
        word = word.wrapping_sub(a);
        assert_eq!(mean_start(word, epoch, now), Some(now - ms(70)));
        // A call started after `now` (another thread's): no age, not a huge one.
        let c = unary_mark(epoch, now + ms(1));
        assert_eq!(
            mean_start(word.wrapping_sub(b).wrapping_add(c), epoch, now),
            Some(now)
        );
        word = word.wrapping_sub(b);
        assert_eq!(word, 0);

        // Start times past 2^44 microseconds (203 days) wrap; the ages do not.
        let late = epoch + Duration::from_secs(300 * 86_400);
        let word = unary_mark(epoch, late).wrapping_add(unary_mark(epoch, late + ms(20)));
        assert_eq!(unary_count(word), 2);
        let now = late + ms(50);
        assert_eq!(mean_start(word, epoch, now), Some(now - ms(40)));
    }

    #[test]
    fn calls_and_streams_count_until_they_end() {
        let epoch = Instant::now();
        let calls = LocalCalls::new(epoch);
        assert!(calls.is_idle());
        let unary = calls.start(false, epoch + Duration::from_millis(10));
        let stream = calls.start(true, epoch + Duration::from_millis(20));
        let load = calls.load(epoch + Duration::from_millis(30));
        assert_eq!((load.in_flight, load.streams), (1, 1));
        assert_eq!(
            load.in_flight_since,
            Some(epoch + Duration::from_millis(10))
        );
        calls.end(unary);
        assert_eq!(calls.in_flight(), 0);
        assert!(!calls.is_idle());
        calls.end(stream);
        assert!(calls.is_idle());
    }
}
