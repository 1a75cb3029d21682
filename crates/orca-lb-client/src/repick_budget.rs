//! The balancer's count of transparent re-picks against its
//! [`RetryBudget`]: lock-free for callers, refreshed by the maintenance task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use metrics::Counter;
use orca_lb_core::RetryBudget;
use parking_lot::Mutex;

use crate::endpoint::Endpoint;

/// Re-picks left in the current window, and what was counted to get there.
#[derive(Debug)]
pub(crate) struct RepickBudget {
    budget: RetryBudget,
    /// Re-picks that may still be made; refreshed every maintenance tick.
    tokens: AtomicI64,
    repicks_total: AtomicU64,
    /// (time, calls picked so far, re-picks so far) per tick over the
    /// window; only the maintenance task takes this lock.
    history: Mutex<VecDeque<(Instant, u64, u64)>>,
    repicks: Counter,
}

impl RepickBudget {
    pub(crate) fn new(budget: RetryBudget, target: &str) -> Self {
        Self {
            budget,
            tokens: AtomicI64::new(budget.allowance(0) as i64),
            repicks_total: AtomicU64::new(0),
            history: Mutex::new(VecDeque::new()),
            repicks: metrics::counter!(
                "orca_lb_client_repicks_total",
                crate::metrics::TARGET_NAME => target.to_string()
            ),
        }
    }

    /// Whether re-picks are on at all: when off, calls keep no way to resend.
    pub(crate) fn enabled(&self) -> bool {
        self.budget.ratio > 0.0 || self.budget.min_per_window > 0
    }

    /// Takes one re-pick from the budget, if any is left.
    ///
    /// Every access to `tokens` and `repicks_total` is `Relaxed`: they are
    /// counters, each read on its own, that publish no other memory. The
    /// read-modify-writes keep each count exact; a tick that reads one a
    /// moment late refreshes with the counts of a moment earlier.
    pub(crate) fn try_take(&self) -> bool {
        let taken = self
            .tokens
            .fetch_update(Relaxed, Relaxed, |t| (t > 0).then(|| t - 1))
            .is_ok();
        if taken {
            self.repicks_total.fetch_add(1, Relaxed);
        }
        taken
    }

    /// Gives back a re-pick that found no endpoint to go to.
    pub(crate) fn give_back(&self) {
        self.tokens.fetch_add(1, Relaxed);
        self.repicks_total.fetch_sub(1, Relaxed);
    }

    /// A re-pick was made.
    pub(crate) fn record(&self) {
        self.repicks.increment(1);
    }

    /// Re-picks made since the balancer started.
    pub(crate) fn total(&self) -> u64 {
        self.repicks_total.load(Relaxed)
    }

    /// Counts the calls picked over `endpoints` and refreshes the tokens to
    /// the allowance of the last window less the re-picks made in it.
    pub(crate) fn on_tick(&self, endpoints: &[Arc<Endpoint>], now: Instant) {
        let calls: u64 = endpoints.iter().map(|e| e.picks_total()).sum();
        let repicks = self.repicks_total.load(Relaxed);
        let mut history = self.history.lock();
        history.push_back((now, calls, repicks));
        while history
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > self.budget.window)
        {
            history.pop_front();
        }
        let &(_, calls_then, repicks_then) = history.front().expect("just pushed");
        // An endpoint removed takes its picks with it: count no fewer than 0.
        let calls_in_window = calls.saturating_sub(calls_then);
        let repicks_in_window = repicks.saturating_sub(repicks_then);
        let allowance = self.budget.allowance(calls_in_window);
        self.tokens
            .store(allowance as i64 - repicks_in_window as i64, Relaxed);
    }
}
