//! The open-loop schedule: when each call is meant to be sent, fixed before
//! the run.

use orca_lb_sim::{Nanos, SECOND};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One call of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    /// The intended send time, from the start of the run: the call is sent
    /// then however the earlier ones fare, and its latency counts from it.
    pub(crate) t0: Nanos,
    /// Which client sends it.
    pub(crate) client: u32,
}

/// A Poisson process at `rate` calls per second over `[0, end)`, each call
/// from a client drawn uniformly, as the simulator splits its load. The
/// same seed gives the same calls, so every policy of a repetition is
/// offered the same load.
pub(crate) fn poisson(rate: f64, clients: u32, end: Nanos, seed: u64) -> Vec<Planned> {
    assert!(rate > 0.0 && clients > 0);
    // Not the simulator's stream: the two need the same process, not the
    // same draws.
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6861_726e_6573_7331);
    let gap = |rng: &mut SmallRng| {
        let u: f64 = 1.0 - rng.random::<f64>();
        ((-u.ln() / rate) * SECOND as f64).round().max(1.0) as Nanos
    };
    let mut out = Vec::with_capacity((rate * end as f64 / SECOND as f64 * 1.05) as usize + 16);
    let mut t = gap(&mut rng);
    while t < end {
        out.push(Planned {
            t0: t,
            client: rng.random_range(0..clients),
        });
        t += gap(&mut rng);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_clients() {
        let calls = poisson(1000.0, 4, 20 * SECOND, 7);
        let n = calls.len() as f64;
        assert!((n - 20_000.0).abs() < 600.0, "{n}");
        assert!(calls.windows(2).all(|w| w[0].t0 <= w[1].t0));
        for c in 0..4 {
            let k = calls.iter().filter(|p| p.client == c).count() as f64;
            assert!((k / n - 0.25).abs() < 0.02, "client {c}: {k}");
        }
        assert_eq!(calls, poisson(1000.0, 4, 20 * SECOND, 7));
        assert_ne!(calls, poisson(1000.0, 4, 20 * SECOND, 8));
    }
}
