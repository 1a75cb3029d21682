//! Delays between attempts to reach something that failed.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter, the schedule of gRPC's connection
/// backoff: `initial`, then 1.6 times longer each attempt up to `max`, each
/// delay drawn within ±20 % of that so that many clients cut off by one
/// restart do not all come back in the same instant.
///
/// The randomness is passed in, as everywhere in this crate.
///
/// ```
/// use std::time::Duration;
///
/// use orca_lb_core::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(120));
/// let mut rng = rand::rng();
/// let first = backoff.next_delay(&mut rng);
/// assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
/// let second = backoff.next_delay(&mut rng);
/// assert!(second >= Duration::from_millis(1280) && second <= Duration::from_millis(1920));
/// backoff.reset();
/// assert!(backoff.next_delay(&mut rng) <= Duration::from_millis(1200));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// How much longer each delay is than the one before, before jitter.
    pub const MULTIPLIER: f64 = 1.6;
    /// How far a delay may stray from its schedule, as a fraction of it.
    pub const JITTER: f64 = 0.2;

    /// Starts at `initial` and grows to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.next;
        self.next = base.mul_f64(Self::MULTIPLIER).min(self.max);
        base.mul_f64(rng.random_range(1.0 - Self::JITTER..=1.0 + Self::JITTER))
    }

    /// Back to `initial`, after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn grows_to_max_within_the_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut rng = SmallRng::seed_from_u64(7);
        let mut b = Backoff::new(ms(100), ms(350));
        let within = |d: Duration, base: u64| d >= ms(base * 8 / 10) && d <= ms(base * 12 / 10);
        for base in [100, 160, 256, 350, 350] {
            let d = b.next_delay(&mut rng);
            assert!(within(d, base), "{d:?} is not within 20 % of {base} ms");
        }
        b.reset();
        assert!(within(b.next_delay(&mut rng), 100));
    }

    #[test]
    fn draws_spread_over_the_jitter() {
        let mut rng = SmallRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200)
            .map(|_| {
                Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_delay(&mut rng)
            })
            .collect();
        let (lo, hi) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*lo < Duration::from_millis(850), "lowest {lo:?}");
        assert!(*hi > Duration::from_millis(1150), "highest {hi:?}");
    }

    #[test]
    fn a_max_below_initial_is_raised_to_it() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        for _ in 0..3 {
            assert!(b.next_delay(&mut rng) >= Duration::from_millis(1600));
        }
    }
}
