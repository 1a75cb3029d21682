//! An `f64` in an `AtomicU64`.

use std::sync::atomic::{AtomicU64, Ordering};

/// An `f64` readable and writable from any thread without a lock.
///
/// Loads and stores are `Relaxed`: each value is a gauge read on its own
/// (a utilization, a service time); none of them publishes other memory, so
/// a reader needs only to see some recent value of this one.
#[derive(Debug, Default)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    pub(crate) fn load(&self) -> f64 {
        // Relaxed: a gauge read on its own (see the type).
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn store(&self, v: f64) {
        // Relaxed: a gauge read on its own (see the type).
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}
