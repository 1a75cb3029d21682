//! The open-loop schedule: when each call is meant to be sent, fixed before
//! the run.

use orca_lb_sim::{Draw, Nanos, SECOND, Streams};
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
    /// With keyed calls (`[keys]`), its key (see `keys::assign`).
    pub(crate) key: Option<u32>,
}

/// A Poisson process at `rate` calls per second over `[0, end)`, each call
/// from a client drawn uniformly, or in proportion to `weights` (the
/// scenario's `client_rate_weights`, one per client) if given, as the
/// simulator splits its load. The same seed gives the same calls, so every
/// policy of a repetition is offered the same load.
pub(crate) fn poisson(
    rate: f64,
    clients: u32,
    weights: Option<&[f64]>,
    end: Nanos,
    seed: u64,
) -> Vec<Planned> {
    assert!(rate > 0.0 && clients > 0);
    // As the simulator draws a weighted client: a uniform draw over the
    // running sums.
    let cumulative: Option<Vec<f64>> = weights.map(|w| {
        assert_eq!(w.len(), clients as usize, "one weight per client");
        w.iter()
            .scan(0.0, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect()
    });
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
        let client = match &cumulative {
            None => rng.random_range(0..clients),
            Some(cumulative) => {
                let total = cumulative.last().copied().unwrap_or(1.0);
                let u = rng.random::<f64>() * total;
                cumulative
                    .partition_point(|&c| c <= u)
                    .min(cumulative.len() - 1) as u32
            }
        };
        out.push(Planned {
            t0: t,
            client,
            key: None,
        });
        t += gap(&mut rng);
    }
    out
}

/// One long-lived stream of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PlannedStream {
    /// The intended open time, from the start of the run.
    pub(crate) t0: Nanos,
    /// Which client opens it.
    pub(crate) client: u32,
    /// How long it is meant to stay open (its server ends it then).
    pub(crate) open_for: Nanos,
}

/// The streams of a scenario over `[0, end)`, by open time: `initial`
/// streams in the first second, then a Poisson process at `rate`, each from
/// a client drawn uniformly and open for a draw of `duration`, as the
/// simulator opens them.
pub(crate) fn streams(
    streams: &Streams,
    clients: u32,
    end: Nanos,
    seed: u64,
) -> Vec<PlannedStream> {
    assert!(streams.rate > 0.0 && clients > 0);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6861_726e_6573_7332);
    let plan = |t0: Nanos, rng: &mut SmallRng| {
        let client = rng.random_range(0..clients);
        let secs = streams.duration.sample_secs(Draw::new(rng));
        PlannedStream {
            t0,
            client,
            open_for: ((secs * SECOND as f64).round() as Nanos).max(1),
        }
    };
    let mut out: Vec<PlannedStream> = (0..streams.initial)
        .map(|_| {
            let t0 = rng.random_range(0..SECOND.min(end.max(1)));
            plan(t0, &mut rng)
        })
        .collect();
    let gap = |rng: &mut SmallRng| {
        let u: f64 = 1.0 - rng.random::<f64>();
        ((-u.ln() / streams.rate) * SECOND as f64).round().max(1.0) as Nanos
    };
    let mut t = gap(&mut rng);
    while t < end {
        let s = plan(t, &mut rng);
        out.push(s);
        t += gap(&mut rng);
    }
    out.sort_by_key(|s| s.t0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_clients() {
        let calls = poisson(1000.0, 4, None, 20 * SECOND, 7);
        let n = calls.len() as f64;
        assert!((n - 20_000.0).abs() < 600.0, "{n}");
        assert!(calls.windows(2).all(|w| w[0].t0 <= w[1].t0));
        for c in 0..4 {
            let k = calls.iter().filter(|p| p.client == c).count() as f64;
            assert!((k / n - 0.25).abs() < 0.02, "client {c}: {k}");
        }
        assert_eq!(calls, poisson(1000.0, 4, None, 20 * SECOND, 7));
        assert_ne!(calls, poisson(1000.0, 4, None, 20 * SECOND, 8));
    }

    #[test]
    fn weighted_clients_share_the_rate_by_their_weights() {
        // As s4h_skewed_clients: client 0 weighs as much as the other 31.
        let mut weights = vec![1.0; 32];
        weights[0] = 31.0;
        let calls = poisson(1000.0, 32, Some(&weights), 20 * SECOND, 7);
        let n = calls.len() as f64;
        assert!((n - 20_000.0).abs() < 600.0, "{n}");
        let first = calls.iter().filter(|p| p.client == 0).count() as f64;
        assert!((first / n - 0.5).abs() < 0.02, "client 0: {first}");
        for c in 1..32 {
            let k = calls.iter().filter(|p| p.client == c).count() as f64;
            assert!((k / n - 1.0 / 62.0).abs() < 0.006, "client {c}: {k}");
        }
        assert_eq!(calls, poisson(1000.0, 32, Some(&weights), 20 * SECOND, 7));
    }

    #[test]
    fn streams_open_at_the_rate_with_the_initial_ones_first() {
        let s = Streams {
            rate: 10.0,
            duration: orca_lb_sim::ServiceTime::Exponential { mean_ms: 2000.0 },
            max_age_s: None,
            initial: 50,
        };
        let planned = streams(&s, 4, 100 * SECOND, 3);
        assert!(planned.windows(2).all(|w| w[0].t0 <= w[1].t0));
        let first_second = planned.iter().filter(|p| p.t0 < SECOND).count();
        assert!((50..70).contains(&first_second), "{first_second}");
        let n = planned.len() as f64;
        assert!((n - 1050.0).abs() < 120.0, "{n}");
        let mean_s = planned.iter().map(|p| p.open_for as f64).sum::<f64>() / n / 1e9;
        assert!((mean_s - 2.0).abs() < 0.3, "{mean_s}");
        assert!(planned.iter().all(|p| p.client < 4 && p.open_for > 0));
        assert_eq!(planned, streams(&s, 4, 100 * SECOND, 3));
    }
}
