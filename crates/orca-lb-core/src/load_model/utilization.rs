//! Where a backend's reported `application_utilization` comes from.

use std::num::NonZeroUsize;

use super::MIN_REPORTED_UTILIZATION;

/// The source of `application_utilization`, in the server's order of
/// preference: the application's own figure, else the busy fraction of the
/// worker slots when there are slots, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UtilizationSource {
    /// A figure the application set itself.
    Application(f64),
    /// The busy fraction of `capacity` worker slots: `(busy + queued) /
    /// capacity`.
    Slots {
        /// Worker-slot busy seconds per second, averaged over the rate
        /// window like `rps` ([`Rates::busy`](super::Rates::busy)), so that
        /// gRPC's weighted round robin (qps / utilization) gets the
        /// backend's service rate, steadily.
        busy: f64,
        /// Waiting calls to count as busy slots. The server passes the queue
        /// the application keeps itself, as it stands, and leaves out the
        /// calls waiting in its own queue: folded in, they made weighted
        /// round robin's weights swing and overload backends in the
        /// simulator (many clients).
        queued: f64,
        /// The number of worker slots.
        capacity: NonZeroUsize,
    },
    /// The process's CPU utilization.
    Cpu(f64),
}

impl UtilizationSource {
    /// The value a report carries: the source's figure, raised to
    /// [`MIN_REPORTED_UTILIZATION`] (a NaN becomes that floor too).
    pub fn reported(self) -> f64 {
        let value = match self {
            Self::Application(v) | Self::Cpu(v) => v,
            Self::Slots {
                busy,
                queued,
                capacity,
            } => (busy + queued) / capacity.get() as f64,
        };
        value.max(MIN_REPORTED_UTILIZATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn slots_give_the_busy_fraction() {
        let busy = UtilizationSource::Slots {
            busy: 1.5,
            queued: 0.0,
            capacity: slots(4),
        };
        assert_eq!(busy.reported(), 0.375);
        let queued = UtilizationSource::Slots {
            busy: 1.5,
            queued: 2.5,
            capacity: slots(4),
        };
        assert_eq!(queued.reported(), 1.0);
    }

    #[test]
    fn application_and_cpu_figures_pass_through() {
        assert_eq!(UtilizationSource::Application(0.7).reported(), 0.7);
        assert_eq!(UtilizationSource::Cpu(0.25).reported(), 0.25);
    }

    #[test]
    fn idle_reports_the_floor_not_zero() {
        let idle = UtilizationSource::Slots {
            busy: 0.0,
            queued: 0.0,
            capacity: slots(8),
        };
        assert_eq!(idle.reported(), MIN_REPORTED_UTILIZATION);
        assert_eq!(
            UtilizationSource::Cpu(0.0).reported(),
            MIN_REPORTED_UTILIZATION
        );
        assert_eq!(
            UtilizationSource::Application(f64::NAN).reported(),
            MIN_REPORTED_UTILIZATION
        );
    }
}
