//! Where CPU and memory figures come from.

use std::fmt;

/// One reading of the machine's (or container's) load, both as fractions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct SystemLoad {
    /// Fraction of the available CPU in use, `>= 0`; may exceed 1 briefly.
    pub cpu_utilization: f64,
    /// Fraction of the available memory in use, in `[0, 1]`.
    pub mem_utilization: f64,
}

// === setters of SystemLoad ===

impl SystemLoad {
    /// Sets [`cpu_utilization`](Self::cpu_utilization).
    #[must_use]
    pub fn with_cpu_utilization(mut self, cpu_utilization: f64) -> Self {
        self.cpu_utilization = cpu_utilization;
        self
    }

    /// Sets [`mem_utilization`](Self::mem_utilization).
    #[must_use]
    pub fn with_mem_utilization(mut self, mem_utilization: f64) -> Self {
        self.mem_utilization = mem_utilization;
        self
    }
}

/// Reads CPU and memory utilization.
///
/// The layer calls [`sample`](SystemSampler::sample) on a background task
/// every `sample_interval`, never on the request path. Implement it to read
/// load from elsewhere (a sidecar, a test script). Values out of range are
/// refused with a logged error and the previous reading is kept.
pub trait SystemSampler: Send + 'static {
    /// Takes a reading.
    fn sample(&mut self) -> SystemLoad;
}

impl fmt::Debug for dyn SystemSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn SystemSampler")
    }
}

/// A sampler that always returns the same reading.
///
/// For tests, and for in-process demos where every backend shares one machine
/// and the machine's CPU says nothing about any one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FixedSampler(pub SystemLoad);

impl FixedSampler {
    /// A sampler returning `cpu_utilization` and `mem_utilization`.
    pub fn new(cpu_utilization: f64, mem_utilization: f64) -> Self {
        FixedSampler(SystemLoad {
            cpu_utilization,
            mem_utilization,
        })
    }
}

impl SystemSampler for FixedSampler {
    fn sample(&mut self) -> SystemLoad {
        self.0
    }
}
