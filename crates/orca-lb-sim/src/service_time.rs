//! Service-time distributions and how a backend draws from them.

use serde::{Deserialize, Serialize};

/// How long a worker takes to serve one call at normal speed.
///
/// In a scenario file: `{ kind = "exponential", mean_ms = 20.0 }`,
/// `{ kind = "shifted_exponential", shift_ms = 10.0, mean_ms = 10.0 }` or
/// `{ kind = "lognormal", mean_ms = 20.0, sigma = 1.0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceTime {
    /// Exponential with this mean: the M in M/M/c.
    Exponential {
        /// Mean, milliseconds.
        mean_ms: f64,
    },
    /// A fixed part plus an exponential part (`shift_ms + Exp(mean_ms)`):
    /// a handler with a floor, such as a database round trip.
    ShiftedExponential {
        /// The fixed part, milliseconds.
        shift_ms: f64,
        /// Mean of the exponential part, milliseconds.
        mean_ms: f64,
    },
    /// Lognormal with this mean and this standard deviation of the
    /// underlying normal: a heavier tail than exponential.
    Lognormal {
        /// Mean, milliseconds.
        mean_ms: f64,
        /// Standard deviation of `ln(service time)`.
        sigma: f64,
    },
}

/// The random numbers one call brings along, drawn once when it arrives so
/// that every policy of a run sees the same calls (common random numbers):
/// the backend it lands on only scales them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Uniform in `(0, 1]`.
    pub u1: f64,
    /// Uniform in `[0, 1)`.
    pub u2: f64,
}

impl ServiceTime {
    /// The mean, milliseconds.
    pub fn mean_ms(&self) -> f64 {
        match *self {
            ServiceTime::Exponential { mean_ms } => mean_ms,
            ServiceTime::ShiftedExponential { shift_ms, mean_ms } => shift_ms + mean_ms,
            ServiceTime::Lognormal { mean_ms, .. } => mean_ms,
        }
    }

    /// Whether the distribution is exponential (the Erlang C formulas
    /// apply).
    pub fn is_exponential(&self) -> bool {
        matches!(self, ServiceTime::Exponential { .. })
    }

    /// Checks that every parameter is finite and in range.
    pub fn validate(&self) -> Result<(), String> {
        let ok = match *self {
            ServiceTime::Exponential { mean_ms } => mean_ms > 0.0 && mean_ms.is_finite(),
            ServiceTime::ShiftedExponential { shift_ms, mean_ms } => {
                shift_ms >= 0.0 && mean_ms >= 0.0 && (shift_ms + mean_ms).is_finite()
            }
            ServiceTime::Lognormal { mean_ms, sigma } => {
                mean_ms > 0.0 && mean_ms.is_finite() && sigma >= 0.0 && sigma.is_finite()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("service time {self:?} is out of range"))
        }
    }

    /// The service time of a call with random numbers `d`, in seconds.
    pub fn sample_secs(&self, d: Draw) -> f64 {
        let exp1 = -d.u1.ln();
        match *self {
            ServiceTime::Exponential { mean_ms } => mean_ms * 1e-3 * exp1,
            ServiceTime::ShiftedExponential { shift_ms, mean_ms } => {
                (shift_ms + mean_ms * exp1) * 1e-3
            }
            ServiceTime::Lognormal { mean_ms, sigma } => {
                // Box-Muller: one standard normal from two uniforms.
                let z = (2.0 * exp1).sqrt() * (std::f64::consts::TAU * d.u2).cos();
                let mu = (mean_ms * 1e-3).ln() - sigma * sigma / 2.0;
                (mu + sigma * z).exp()
            }
        }
    }
}

impl Draw {
    /// Two fresh uniforms from `rng`.
    pub fn new<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        Self {
            u1: 1.0 - rng.random::<f64>(),
            u2: rng.random::<f64>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_and_p50(st: ServiceTime) -> (f64, f64) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut v: Vec<f64> = (0..200_000)
            .map(|_| st.sample_secs(Draw::new(&mut rng)))
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.sort_by(f64::total_cmp);
        (mean * 1e3, v[v.len() / 2] * 1e3)
    }

    #[test]
    fn sample_means_match() {
        let (m, p50) = mean_and_p50(ServiceTime::Exponential { mean_ms: 20.0 });
        assert!((m - 20.0).abs() < 0.3, "{m}");
        assert!((p50 - 20.0 * 2f64.ln()).abs() < 0.3, "{p50}");
        let (m, _) = mean_and_p50(ServiceTime::ShiftedExponential {
            shift_ms: 10.0,
            mean_ms: 10.0,
        });
        assert!((m - 20.0).abs() < 0.2, "{m}");
        let (m, p50) = mean_and_p50(ServiceTime::Lognormal {
            mean_ms: 20.0,
            sigma: 1.0,
        });
        assert!((m - 20.0).abs() < 0.6, "{m}");
        // Median of a lognormal: exp(mu) = mean * exp(-sigma^2 / 2).
        assert!((p50 - 20.0 * (-0.5f64).exp()).abs() < 0.3, "{p50}");
    }
}
