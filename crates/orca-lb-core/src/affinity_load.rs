//! What an endpoint's load is, as session affinity's bounded-load walk
//! weighs it.

/// An endpoint's load for the bounded-load walk (see
/// [`HashRing::pick`](crate::HashRing::pick)): the calls on it, `calls`
/// (the backlog it reports plus this client's calls and streams there),
/// each counted in the fleet's median service times, `service_time /
/// median`. A backend twice as slow as the median counts its calls twice,
/// so it passes keys on when the work queued there, not only the number of
/// calls, is past the bound: counting calls alone, a slow backend keeps its
/// keys until its queue has grown to the bound, and the calls queued there
/// meanwhile make the tail. Without a known service time (or a positive
/// median) each call counts once.
///
/// ```
/// use orca_lb_core::affinity_load;
///
/// assert_eq!(affinity_load(3.0, Some(0.040), 0.020), 6.0);
/// assert_eq!(affinity_load(3.0, None, 0.020), 3.0);
/// ```
pub fn affinity_load(calls: f64, service_time: Option<f64>, median: f64) -> f64 {
    match service_time {
        Some(s) if s.is_finite() && s >= 0.0 && median.is_finite() && median > 0.0 => {
            calls * (s / median)
        }
        _ => calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_count_in_median_service_times() {
        assert_eq!(affinity_load(4.0, Some(0.080), 0.020), 16.0);
        assert_eq!(affinity_load(4.0, Some(0.010), 0.020), 2.0);
        assert_eq!(affinity_load(0.0, Some(0.080), 0.020), 0.0);
    }

    #[test]
    fn unknown_or_garbage_times_count_each_call_once() {
        assert_eq!(affinity_load(2.0, None, 0.020), 2.0);
        assert_eq!(affinity_load(2.0, Some(0.020), 0.0), 2.0);
        assert_eq!(affinity_load(2.0, Some(f64::NAN), 0.020), 2.0);
        assert_eq!(affinity_load(2.0, Some(-1.0), 0.020), 2.0);
        assert_eq!(affinity_load(2.0, Some(0.020), f64::INFINITY), 2.0);
    }
}
