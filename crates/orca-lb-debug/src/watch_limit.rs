//! The cap on concurrent `WatchState` streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use metrics::Counter;

/// Most `WatchState` streams open at once on one [`DebugService`](crate::DebugService)
/// (and its clones) unless set with
/// [`with_max_watchers`](crate::DebugService::with_max_watchers). Each costs a
/// snapshot of every registered balancer per interval.
pub const DEFAULT_MAX_WATCHERS: usize = 64;

/// Counts open watches against a maximum.
#[derive(Debug)]
pub(crate) struct WatchLimit {
    max: usize,
    open: AtomicUsize,
    refused: AtomicU64,
    /// `orca_lb_debug_refused_watchers_total`, registered with the limit.
    refused_total: Counter,
}

/// One open watch; it frees its place when dropped with its stream.
#[derive(Debug)]
pub(crate) struct WatchPermit(Arc<WatchLimit>);

impl WatchLimit {
    pub(crate) fn new(max: usize) -> Self {
        crate::metric_descriptions::describe();
        Self {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            refused_total: metrics::counter!("orca_lb_debug_refused_watchers_total"),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// A place for one more watch, or `None` (counted) when all are taken.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<WatchPermit> {
        let max = self.max;
        match self
            .open
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
        {
            Ok(_) => Some(WatchPermit(self.clone())),
            Err(_) => {
                self.refused.fetch_add(1, Relaxed);
                self.refused_total.increment(1);
                None
            }
        }
    }
}

impl Default for WatchLimit {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_WATCHERS)
    }
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}
