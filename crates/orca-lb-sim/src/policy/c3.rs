//! C3 (Suresh et al., NSDI 2015): replica ranking by response time and
//! server feedback with a cubic queue term and concurrency compensation.

use orca_lb_core::LoadReport;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Client, Done, Pick};
use crate::clock::Nanos;

/// Weight of the newest value in every moving average.
const ALPHA: f64 = 0.9;

/// What one client knows of one backend.
#[derive(Debug, Clone, Copy, Default)]
struct Feedback {
    /// This client's calls outstanding there.
    outstanding: u32,
    /// Moving average of response time seen by this client, seconds.
    response: Option<f64>,
    /// Moving average of the reported service time (1 / mu), seconds.
    service: Option<f64>,
    /// Moving average of the reported queue size.
    queue: f64,
}

fn ewma(old: Option<f64>, new: f64) -> f64 {
    match old {
        Some(o) => ALPHA * new + (1.0 - ALPHA) * o,
        None => new,
    }
}

/// One client's C3 replica ranking over every backend.
///
/// A backend's score is `(R - 1/mu) + q^3 / mu` with
/// `q = 1 + os * n + q_reported`: `R` the moving average of this client's
/// response times from it, `1/mu` that of its reported service time,
/// `q_reported` that of its reported queue of waiting calls, `os` this
/// client's calls outstanding there and `n` the number of clients. Every
/// moving average weighs the newest value 0.9. The lowest score wins (ties
/// from a random start). A backend not heard from yet scores its
/// compensation term alone, with zero times.
///
/// C3's per-backend cubic rate control and its backlog queue are not
/// modelled: calls are never held at the client.
///
/// Time is passed in: the simulator drives it in virtual time, the
/// loopback harness on real servers, feeding it the orca-lb report each
/// response carries.
///
/// # Examples
///
/// ```
/// use orca_lb_sim::{C3, MILLISECOND};
///
/// let mut c3 = C3::new(2, 1, 1);
/// let backend = c3.pick_backend().unwrap();
/// // It answered in 80 ms (without a report): the other one, not heard
/// // from yet, wins the next pick.
/// c3.record_outcome(backend, Some(80 * MILLISECOND), None);
/// assert_eq!(c3.pick_backend(), Some(1 - backend));
/// ```
#[derive(Debug)]
pub struct C3 {
    rng: SmallRng,
    clients: f64,
    backends: Vec<Feedback>,
    /// Rank two random backends instead of all (an experiment).
    two_choices: bool,
}

impl C3 {
    /// A ranking of backends `0..len` for one of `clients` clients (`n`; 0
    /// leaves the compensation out), its random numbers from `seed`.
    pub fn new(len: usize, seed: u64, clients: u32) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            clients: f64::from(clients),
            backends: vec![Feedback::default(); len],
            two_choices: false,
        }
    }

    /// Ranks two distinct random backends per pick instead of all.
    pub fn with_two_choices(mut self, two: bool) -> Self {
        self.two_choices = two;
        self
    }

    /// The backends are `0..len` from now on (never fewer than before):
    /// new ones are ranked from their next pick, not heard from yet.
    pub fn set_backends(&mut self, len: usize) {
        if len > self.backends.len() {
            self.backends.resize(len, Feedback::default());
        }
    }

    /// The backend with the lowest score for a new call, counted as
    /// outstanding there; `None` without backends.
    pub fn pick_backend(&mut self) -> Option<usize> {
        let len = self.backends.len();
        if len == 0 {
            return None;
        }
        let start = self.rng.random_range(0..len);
        let backend = if self.two_choices && len > 1 {
            let other = (start + self.rng.random_range(1..len)) % len;
            let (a, b) = (
                self.score(&self.backends[start]),
                self.score(&self.backends[other]),
            );
            if b < a { other } else { start }
        } else {
            let mut best = (f64::INFINITY, start);
            for k in 0..len {
                let i = (start + k) % len;
                let s = self.score(&self.backends[i]);
                if s < best.0 {
                    best = (s, i);
                }
            }
            best.1
        };
        self.backends[backend].outstanding += 1;
        Some(backend)
    }

    /// A call to `backend` ended: its `latency` from the pick (none for a
    /// stream), and the report its response carried, if any.
    pub fn record_outcome(
        &mut self,
        backend: usize,
        latency: Option<Nanos>,
        report: Option<&LoadReport>,
    ) {
        let f = &mut self.backends[backend];
        f.outstanding -= 1;
        if let Some(latency) = latency {
            f.response = Some(ewma(f.response, latency as f64 / 1e9));
        }
        if let Some(report) = report {
            if let Some(ms) = report.service_time_ms() {
                f.service = Some(ewma(f.service, ms / 1e3));
            }
            if let Some(q) = report.queue_depth() {
                f.queue = ewma(Some(f.queue), q);
            }
        }
    }

    fn score(&self, f: &Feedback) -> f64 {
        let r = f.response.unwrap_or(0.0);
        let inv_mu = f.service.unwrap_or(0.0);
        let q = 1.0 + f64::from(f.outstanding) * self.clients + f.queue;
        (r - inv_mu) + q * q * q * inv_mu
    }
}

impl Client for C3 {
    fn pick(&mut self, _stream: bool, _now: Nanos) -> Option<Pick> {
        let backend = self.pick_backend()?;
        Some(Pick {
            backend,
            probe: false,
        })
    }

    fn done(&mut self, done: Done<'_>) {
        self.record_outcome(done.backend, done.latency, done.report);
    }

    fn grow(&mut self, len: usize, _now: Nanos) {
        self.set_backends(len);
    }

    fn reads_reports(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cubic_queue_term_and_own_calls_steer_away() {
        let mut c = C3::new(2, 1, 10);
        // Backend 0 fast with a queue of 3; backend 1 twice as slow, empty.
        c.backends[0] = Feedback {
            outstanding: 0,
            response: Some(0.02),
            service: Some(0.01),
            queue: 3.0,
        };
        c.backends[1] = Feedback {
            outstanding: 0,
            response: Some(0.03),
            service: Some(0.02),
            queue: 0.0,
        };
        // 0: 0.01 + 64 * 0.01 = 0.65; 1: 0.01 + 1 * 0.02 = 0.03.
        assert_eq!(c.pick_backend(), Some(1));
        // Now one own call there: 1 + 10 = 11, 11^3 * 0.02 = 26.6 > 0.65.
        assert_eq!(c.pick_backend(), Some(0));
        let report = LoadReport::default();
        c.done(Done {
            backend: 1,
            stream: false,
            probe: false,
            failed: false,
            latency: Some(40_000_000),
            report: Some(&report),
            now: 1,
        });
        assert_eq!(c.backends[1].outstanding, 0);
        let r = c.backends[1].response.unwrap();
        assert!((r - (0.9 * 0.04 + 0.1 * 0.03)).abs() < 1e-12, "{r}");
    }

    #[test]
    fn two_choices_never_take_the_worst_and_not_always_the_best() {
        let mut c = C3::new(3, 4, 1).with_two_choices(true);
        for (i, q) in [0.0, 2.0, 5.0].into_iter().enumerate() {
            c.backends[i].service = Some(0.01);
            c.backends[i].queue = q;
        }
        let mut picked = [0u32; 3];
        for _ in 0..300 {
            let b = c.pick_backend().unwrap();
            c.backends[b].outstanding -= 1;
            picked[b] += 1;
        }
        assert_eq!(picked[2], 0, "the worst loses every pair it is in");
        assert!(
            picked[1] > 0,
            "the middle one wins the pairs without the best"
        );
        // Ranking all always takes the best.
        c.two_choices = false;
        assert_eq!(c.pick_backend(), Some(0));
    }

    #[test]
    fn only_known_backends_are_ranked_and_they_never_shrink() {
        let mut c = C3::new(1, 2, 4);
        c.backends[0].service = Some(0.01);
        c.backends[0].queue = 9.0;
        for _ in 0..20 {
            let b = c.pick_backend().unwrap();
            assert_eq!(b, 0);
            c.record_outcome(b, Some(10_000_000), None);
        }
        c.set_backends(3);
        assert_eq!(c.backends.len(), 3);
        assert_ne!(c.pick_backend(), Some(0), "one not heard from scores 0");
        c.set_backends(1);
        assert_eq!(c.backends.len(), 3, "never fewer");
        assert_eq!(C3::new(0, 1, 1).pick_backend(), None);
    }
}
