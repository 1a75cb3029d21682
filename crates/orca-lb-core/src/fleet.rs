//! What the fleet as a whole looks like, for relaxing stale estimates.

use std::time::Duration;

/// Fleet-wide medians that an endpoint's stale estimates relax toward.
///
/// An endpoint nobody has heard from lately is assumed to be typical, not as
/// bad (or as good) as when last seen: so an ejected or slow endpoint gets
/// traffic back once its bad news is old, and an idle one is not mistaken for
/// a free one forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetView {
    /// Median service time, in seconds.
    pub service_time: f64,
    /// Median number of other clients' calls at an endpoint.
    pub backlog: f64,
    /// Median number of other clients' streams at an endpoint.
    pub streams: f64,
}

impl FleetView {
    /// A fleet about which nothing is known yet.
    pub fn unknown(default_service_time: Duration) -> Self {
        Self {
            service_time: default_service_time.as_secs_f64(),
            backlog: 0.0,
            streams: 0.0,
        }
    }
}

/// The median of `values` (the lower middle one for an even count), or
/// `None` when empty. Reorders `values`; NaNs sort last.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = (values.len() - 1) / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.0));
    }
}
