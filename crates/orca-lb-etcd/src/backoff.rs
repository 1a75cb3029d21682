//! Retry delays after etcd failures.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: `min`, then doubling up to `max`, each
/// delay drawn within ±20 % so that many clients cut off by the same etcd
/// restart do not all come back in the same instant.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    /// Back to `min`, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(350));
        let within = |d: Duration, base: u64| d >= ms(base * 8 / 10) && d <= ms(base * 12 / 10);
        assert!(within(b.next_delay(), 100));
        assert!(within(b.next_delay(), 200));
        assert!(within(b.next_delay(), 350));
        assert!(within(b.next_delay(), 350));
        b.reset();
        assert!(within(b.next_delay(), 100));
    }
}
