//! What calls add up to, counted per thread so that calls served on different
//! threads do not contend for the same memory.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use orca_lb_core::load_model::Totals;

/// Counts of calls in flight, open streams, finished and failed calls, and
/// the time unary calls held their worker slots.
///
/// Every call changes several of these, and every report reads them. In one
/// set of atomics, each call would move their cache line from core to core
/// several times. Here each thread adds to a slot of its own (threads share
/// one only when there are more threads than slots), and readers add the
/// slots up. Every count is a wrapping `u64` in each slot; a call may start
/// on one thread and end on another, so a slot's share of a gauge may be
/// "negative" (wrapped), and only the sum means anything.
///
/// All atomics are `Relaxed`: each count is a statistic read on its own, and
/// no count publishes other memory. A sum may combine slots read a moment
/// apart, so a gauge read while calls move between threads can be off by
/// those calls for that one read (it is never read below zero). Each slot's
/// totals only grow (modulo 2^64), so a sum read after another is never
/// smaller, which the rate window relies on.
#[derive(Debug)]
pub(crate) struct CallCounters {
    slots: Box<[Slot]>,
}

/// One thread's counts, on cache lines of their own (128 bytes: adjacent
/// lines are fetched in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    in_flight: AtomicU64,
    streams: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Slot time of unary calls whose service ended, in nanoseconds.
    service_ns: AtomicU64,
    /// Unary calls whose service ended.
    services: AtomicU64,
    /// Slot time of unary calls dropped before they answered.
    abandoned_ns: AtomicU64,
}

/// Hands out slot numbers to threads, in the order they first count a call.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number among those that counted calls.
    static THREAD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Completed unary services: how many, and their slot time in nanoseconds,
/// both since the start (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Services {
    pub(crate) count: u64,
    pub(crate) total_ns: u64,
}

impl CallCounters {
    /// Counters with a slot for each of the threads this process is likely
    /// to serve calls on (two per CPU, at most 64).
    pub(crate) fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_slots((2 * cpus).next_power_of_two().min(64))
    }

    fn with_slots(n: usize) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// This thread's slot.
    fn mine(&self) -> &Slot {
        let thread = THREAD.with(|t| {
            t.get().unwrap_or_else(|| {
                // Relaxed: a ticket, ordering nothing else.
                let n = NEXT_THREAD.fetch_add(1, Relaxed);
                t.set(Some(n));
                n
            })
        });
        &self.slots[thread % self.slots.len()]
    }

    /// A call arrives (a stream, if `stream`).
    pub(crate) fn started(&self, stream: bool) {
        let slot = self.mine();
        slot.in_flight.fetch_add(1, Relaxed);
        if stream {
            slot.streams.fetch_add(1, Relaxed);
        }
    }

    /// A call leaves, counted in no rate (handed back, unserved).
    pub(crate) fn released(&self, stream: bool) {
        let slot = self.mine();
        slot.in_flight.fetch_sub(1, Relaxed);
        if stream {
            slot.streams.fetch_sub(1, Relaxed);
        }
    }

    /// A call finishes: it leaves, and counts as a request (and an error, if
    /// `failed`).
    pub(crate) fn finished(&self, stream: bool, failed: bool) {
        let slot = self.mine();
        slot.in_flight.fetch_sub(1, Relaxed);
        if stream {
            slot.streams.fetch_sub(1, Relaxed);
        }
        slot.requests.fetch_add(1, Relaxed);
        if failed {
            slot.errors.fetch_add(1, Relaxed);
        }
    }

    /// A unary call's service ended after `time` holding its slot.
    pub(crate) fn service_ended(&self, time: Duration) {
        let slot = self.mine();
        slot.service_ns.fetch_add(Totals::to_busy_ns(time), Relaxed);
        slot.services.fetch_add(1, Relaxed);
    }

    /// A unary call was dropped after `ran` in its handler: busy time, but no
    /// service time.
    pub(crate) fn service_abandoned(&self, ran: Duration) {
        self.mine()
            .abandoned_ns
            .fetch_add(Totals::to_busy_ns(ran), Relaxed);
    }

    fn sum(&self, count: impl Fn(&Slot) -> &AtomicU64) -> u64 {
        self.slots.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(count(slot).load(Relaxed))
        })
    }

    /// A gauge's sum, read as zero if slots read a moment apart make it
    /// negative.
    fn gauge(&self, count: impl Fn(&Slot) -> &AtomicU64) -> usize {
        let sum = self.sum(count).cast_signed();
        usize::try_from(sum).unwrap_or(0)
    }

    /// Calls in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.gauge(|s| &s.in_flight)
    }

    /// Streams open.
    pub(crate) fn streams(&self) -> usize {
        self.gauge(|s| &s.streams)
    }

    /// Finished and failed calls and busy slot time, since the start.
    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for slot in self.slots.iter() {
            totals.requests = totals.requests.wrapping_add(slot.requests.load(Relaxed));
            totals.errors = totals.errors.wrapping_add(slot.errors.load(Relaxed));
            let busy = slot
                .service_ns
                .load(Relaxed)
                .wrapping_add(slot.abandoned_ns.load(Relaxed));
            totals.busy_ns = totals.busy_ns.wrapping_add(busy);
        }
        totals
    }

    /// Completed unary services since the start.
    pub(crate) fn services(&self) -> Services {
        Services {
            count: self.sum(|s| &s.services),
            total_ns: self.sum(|s| &s.service_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_counted_on_many_threads_add_up() {
        // Fewer slots than threads: some share one.
        let counters = CallCounters::with_slots(2);
        std::thread::scope(|s| {
            for t in 0..5 {
                let counters = &counters;
                s.spawn(move || {
                    for i in 0..1_000 {
                        counters.started(i % 10 == 0);
                    }
                    for i in 0..1_000 {
                        counters.finished(i % 10 == 0, t == 0 && i < 7);
                    }
                    counters.started(false);
                    counters.service_ended(Duration::from_millis(2));
                });
            }
        });
        assert_eq!(counters.in_flight(), 5);
        assert_eq!(counters.streams(), 0);
        let totals = counters.totals();
        assert_eq!((totals.requests, totals.errors), (5_000, 7));
        assert_eq!(totals.busy_ns, 10_000_000);
        assert_eq!(
            counters.services(),
            Services {
                count: 5,
                total_ns: 10_000_000
            }
        );
    }

    #[test]
    fn a_call_may_end_on_another_thread() {
        let counters = CallCounters::with_slots(64);
        counters.started(true);
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!((counters.in_flight(), counters.streams()), (1, 1));
                counters.finished(true, false);
                counters.service_abandoned(Duration::from_millis(3));
            });
        });
        // Each slot alone would say -1 and +1.
        assert_eq!((counters.in_flight(), counters.streams()), (0, 0));
        assert_eq!(counters.totals().busy_ns, 3_000_000);
        assert_eq!(counters.services().count, 0, "abandoned is not served");
    }

    #[test]
    fn released_calls_count_in_no_rate() {
        let counters = CallCounters::with_slots(1);
        counters.started(false);
        counters.released(false);
        assert_eq!(counters.in_flight(), 0);
        assert_eq!(counters.totals(), Totals::default());
    }
}
