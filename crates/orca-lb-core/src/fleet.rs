//! What the fleet as a whole looks like, for relaxing stale estimates.

use std::time::Duration;

use crate::EndpointState;

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

/// Collects every endpoint's estimates once per maintenance pass and turns
/// them into a [`FleetView`]. Reuse one across passes: it keeps its buffers.
#[derive(Debug, Clone, Default)]
pub struct FleetSamples {
    service_times: Vec<f64>,
    backlogs: Vec<f64>,
    streams: Vec<f64>,
}

impl FleetSamples {
    /// Empty samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the last pass.
    pub fn clear(&mut self) {
        self.service_times.clear();
        self.backlogs.clear();
        self.streams.clear();
    }

    /// Adds one endpoint: its reported service time, else its observed
    /// latency once it has answered; its backlog and streams if reported.
    pub fn add(&mut self, state: &EndpointState) {
        let e = state.estimate();
        if let Some(s) = e
            .service_time
            .or(e.latency.filter(|_| state.responses() > 0))
        {
            self.service_times.push(s);
        }
        if let Some(b) = e.backlog {
            self.backlogs.push(b);
        }
        if let Some(s) = e.streams {
            self.streams.push(s);
        }
    }

    /// The medians of what was added; a signal nobody reported keeps its
    /// value from `previous`.
    pub fn view(&mut self, previous: FleetView) -> FleetView {
        FleetView {
            service_time: median(&mut self.service_times).unwrap_or(previous.service_time),
            backlog: median(&mut self.backlogs).unwrap_or(previous.backlog),
            streams: median(&mut self.streams).unwrap_or(previous.streams),
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
