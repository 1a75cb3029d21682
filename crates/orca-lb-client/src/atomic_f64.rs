//! An `f64` in an `AtomicU64`.
//!
//! Loads and stores are `Relaxed`: each value is read on its own and
//! publishes no other memory. Several of them (the fleet medians) may be
//! seen from two maintenance passes for a moment, which only blends two
//! estimates a pass apart.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    pub(crate) fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}
