//! An `f64` in an `AtomicU64`.

use std::sync::atomic::{AtomicU64, Ordering};

/// An `f64` readable and writable from any thread without a lock.
///
/// Loads and stores are `Relaxed`: each value is a gauge read on its own (a
/// utilization, a service time, a fleet median); none of them publishes
/// other memory, so a reader needs only some recent value of this one. Two
/// gauges written together may be seen a write apart, which blends two
/// estimates taken a moment apart and never mixes up the bits of one.
///
/// ```
/// use orca_lb_core::AtomicF64;
///
/// let utilization = AtomicF64::new(0.25);
/// utilization.store(0.5);
/// assert_eq!(utilization.load(), 0.5);
/// ```
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// A new value.
    pub const fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    /// The current value.
    pub fn load(&self) -> f64 {
        // Relaxed: a gauge read on its own (see the type).
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Replaces the value.
    pub fn store(&self, v: f64) {
        // Relaxed: a gauge read on its own (see the type).
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_bit() {
        let v = AtomicF64::default();
        assert_eq!(v.load().to_bits(), 0.0_f64.to_bits());
        for x in [-0.0, 1.5, f64::MIN_POSITIVE, f64::MAX, f64::INFINITY] {
            v.store(x);
            assert_eq!(v.load().to_bits(), x.to_bits());
        }
        v.store(f64::NAN);
        assert!(v.load().is_nan());
    }
}
