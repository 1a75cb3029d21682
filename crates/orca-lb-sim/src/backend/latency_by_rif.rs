//! A Prequal server's latency estimate: recent latencies by the requests in
//! flight (RIF) they arrived to.

use crate::clock::Nanos;

/// RIF values tracked one by one; higher ones share the last bucket.
const BUCKETS: usize = 64;

/// Latencies kept per bucket (the most recent).
const PER_BUCKET: usize = 8;

/// Per RIF at arrival, the server-side latencies (arrival to response) of
/// the last 8 calls that arrived to that many calls in flight (RIFs from 63
/// up share one bucket). The estimate for a RIF is the median of its bucket, or of the nearest bucket
/// below it that has any, as a server answers a probe with the latency
/// recently seen at its current load.
///
/// The simulator's backends keep one; so does the loopback harness's probe
/// layer in front of each real backend.
///
/// # Examples
///
/// ```
/// use orca_lb_sim::{LatencyByRif, MILLISECOND};
///
/// let mut latencies = LatencyByRif::new();
/// assert_eq!(latencies.estimate(2), None);
/// for ms in [10, 30, 20] {
///     latencies.record(2, ms * MILLISECOND);
/// }
/// assert_eq!(latencies.estimate(2), Some(20 * MILLISECOND));
/// // Nothing was seen at 5 calls in flight: the nearest RIF below with data.
/// assert_eq!(latencies.estimate(5), Some(20 * MILLISECOND));
/// ```
#[derive(Debug, Clone)]
pub struct LatencyByRif {
    rings: Vec<[Nanos; PER_BUCKET]>,
    /// Per bucket, latencies recorded so far (the ring holds the last
    /// `PER_BUCKET`).
    counts: Vec<u64>,
}

impl LatencyByRif {
    /// An estimate with no latency recorded yet.
    pub fn new() -> Self {
        Self {
            rings: vec![[0; PER_BUCKET]; BUCKETS],
            counts: vec![0; BUCKETS],
        }
    }

    fn bucket(rif: u32) -> usize {
        (rif as usize).min(BUCKETS - 1)
    }

    /// A call that arrived to `rif` calls in flight took `latency`.
    pub fn record(&mut self, rif: u32, latency: Nanos) {
        let b = Self::bucket(rif);
        let slot = (self.counts[b] % PER_BUCKET as u64) as usize;
        self.rings[b][slot] = latency;
        self.counts[b] += 1;
    }

    /// The latency expected at `rif` calls in flight: the median of the
    /// nearest bucket at or below `rif` with data; `None` before any call.
    pub fn estimate(&self, rif: u32) -> Option<Nanos> {
        let b = (0..=Self::bucket(rif))
            .rev()
            .find(|&b| self.counts[b] > 0)?;
        let n = (self.counts[b] as usize).min(PER_BUCKET);
        let mut v = self.rings[b];
        let v = &mut v[..n];
        v.sort_unstable();
        Some(v[n / 2])
    }
}

impl Default for LatencyByRif {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_the_bucket_or_the_nearest_below() {
        let mut l = LatencyByRif::new();
        assert_eq!(l.estimate(3), None);
        for x in [10, 30, 20] {
            l.record(2, x);
        }
        assert_eq!(l.estimate(2), Some(20));
        assert_eq!(l.estimate(5), Some(20), "nearest below");
        assert_eq!(l.estimate(1), None, "nothing at or below 1");
        // The ring keeps the last eight.
        for x in 0..8 {
            l.record(2, 100 + x);
        }
        assert_eq!(l.estimate(2), Some(104));
        l.record(500, 7);
        assert_eq!(l.estimate(1000), Some(7), "shared last bucket");
    }
}
