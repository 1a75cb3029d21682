//! What a pick works out once from its time, for all the pick views it
//! scores.

use crate::{DecayClock, PickSettings};

/// A pick's time as the pick views it scores count it: seconds since their
/// origin, and split on the scale of `stale_after` (see
/// [`DecayStamp`](crate::DecayStamp)), with the settings themselves. Worked
/// out once per pick; the weights of each view's report and observed latency
/// are then a multiply each. The error rate's decay has a window of its own:
/// the pick time's split on that scale is worked out for the endpoints that
/// failed recently only, which most picks draw none of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickTime {
    /// Seconds since the views' origin.
    pub(crate) now: f64,
    /// `now` on the scale of [`PickSettings::stale_rate`].
    pub(crate) stale: DecayClock,
    pub(crate) settings: PickSettings,
}

impl PickTime {
    /// The pick at `now` seconds since the views' origin (see
    /// [`PickView::seconds_since`](crate::PickView::seconds_since)), scored
    /// with `settings`, which must be those of the score settings the views
    /// were prepared with.
    #[inline]
    pub fn new(settings: &PickSettings, now: f64) -> Self {
        Self {
            now,
            stale: DecayClock::new(now, settings.stale_rate),
            settings: *settings,
        }
    }

    /// Seconds since the views' origin.
    pub fn seconds(&self) -> f64 {
        self.now
    }

    /// `now` on the scale of [`PickSettings::error_rate`].
    #[inline]
    pub(crate) fn errors(&self) -> DecayClock {
        DecayClock::new(self.now, self.settings.error_rate)
    }
}
