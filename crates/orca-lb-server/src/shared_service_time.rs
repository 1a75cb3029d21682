//! The core's service-time EWMA, fed in batches from the call counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use orca_lb_core::AtomicF64;
use orca_lb_core::load_model::ServiceTimeEwma;
use parking_lot::Mutex;

use crate::call_counters::Services;

/// How many batches per time constant: often enough that the average moves
/// as smoothly as one fed call by call.
const BATCHES_PER_DECAY: u32 = 100;

/// The EWMA of unary service time that reports carry.
///
/// A call only adds its service time to the call counters (two adds to its
/// thread's slot). Reading the value folds what the counters gained since the
/// last fold into `orca_lb_core`'s [`ServiceTimeEwma`], as one observation of
/// their mean, at most once per hundredth of the time constant (10 ms by
/// default): the same average as one fed call by call, give or take a
/// hundredth of its time constant, without a lock and an `exp` per call.
#[derive(Debug)]
pub(crate) struct SharedServiceTime {
    /// The instant `next_fold_ns` counts from.
    epoch: Instant,
    every: Duration,
    /// No fold before this offset from `epoch`, in nanoseconds.
    next_fold_ns: AtomicU64,
    folded: Mutex<Folded>,
    /// The EWMA's value in milliseconds, NaN before the first sample.
    value_ms: AtomicF64,
}

#[derive(Debug)]
struct Folded {
    ewma: ServiceTimeEwma,
    /// The counters as of the last fold.
    services: Services,
}

impl SharedServiceTime {
    /// An empty average with time constant `decay`, whose counters start at
    /// zero at `epoch`.
    pub(crate) fn new(decay: Duration, epoch: Instant) -> Self {
        Self {
            epoch,
            every: decay / BATCHES_PER_DECAY,
            next_fold_ns: AtomicU64::new(0),
            folded: Mutex::new(Folded {
                ewma: ServiceTimeEwma::new(decay),
                services: Services::default(),
            }),
            value_ms: AtomicF64::new(f64::NAN),
        }
    }

    fn offset_ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The average in milliseconds as of `now`, `None` before the first
    /// service ended; first folding in the services `counted` (the counters
    /// now) if the last fold is old enough.
    pub(crate) fn value_ms(&self, now: Instant, counted: impl FnOnce() -> Services) -> Option<f64> {
        let now_ns = self.offset_ns(now);
        let mut v = self.value_ms.load();
        // Relaxed: a hint of when folding is due; the lock orders the fold.
        // Before the first sample, any new service is folded at once.
        if v.is_nan() || now_ns >= self.next_fold_ns.load(Relaxed) {
            // Another reader folding now does it for this one too.
            if let Some(mut folded) = self.folded.try_lock() {
                self.fold(&mut folded, counted(), now, now_ns);
                v = self.value_ms.load();
            }
        }
        (!v.is_nan()).then_some(v)
    }

    fn fold(&self, folded: &mut Folded, services: Services, now: Instant, now_ns: u64) {
        // The counters only grow (modulo 2^64). A service counted between
        // the reads of its count and of its time is off by one call in
        // this batch and made up for in the next.
        let count = services.count.wrapping_sub(folded.services.count);
        let total_ns = services.total_ns.wrapping_sub(folded.services.total_ns);
        if let Some(mean_ns) = total_ns.checked_div(count) {
            folded.services = services;
            folded.ewma.observe(Duration::from_nanos(mean_ns), now);
            if let Some(v) = folded.ewma.value_ms() {
                self.value_ms.store(v);
            }
        }
        let every = u64::try_from(self.every.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: see `value_ms`.
        self.next_fold_ns
            .store(now_ns.saturating_add(every), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(count: u64, ms: u64) -> Services {
        Services {
            count,
            total_ns: ms * 1_000_000,
        }
    }

    #[test]
    fn empty_until_a_service_ends_then_the_mean_of_each_batch() {
        let t0 = Instant::now();
        let average = SharedServiceTime::new(Duration::from_secs(1), t0);
        assert_eq!(average.value_ms(t0, || services(0, 0)), None);
        // Two services of 10 and 30 ms: one batch, whose mean is the start.
        assert_eq!(average.value_ms(t0, || services(2, 40)), Some(20.0));
        // Within the next 10 ms, nothing is folded.
        let soon = t0 + Duration::from_millis(5);
        assert_eq!(average.value_ms(soon, || services(3, 140)), Some(20.0));
        // Then the 100 ms service moves the average by 1 - e^(-1/100) of
        // the difference, as a sample 10 ms later would.
        let later = t0 + Duration::from_millis(10);
        let v = average.value_ms(later, || services(3, 140)).unwrap();
        let expected = 20.0 + (100.0 - 20.0) * (1.0 - (-0.01f64).exp());
        assert!((v - expected).abs() < 1e-9, "{v} against {expected}");
    }

    #[test]
    fn no_new_service_leaves_the_average_as_it_is() {
        let t0 = Instant::now();
        let average = SharedServiceTime::new(Duration::from_secs(1), t0);
        assert_eq!(average.value_ms(t0, || services(1, 50)), Some(50.0));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(average.value_ms(later, || services(1, 50)), Some(50.0));
    }
}
