//! How many calls may be sent a second time, to another endpoint, because
//! the first attempt never reached a server.

use std::time::Duration;

use crate::InvalidConfig;

/// Caps transparent re-picks (gRPC's transparent retry) so that a fleet that
/// refuses every connection does not double the load: over the last
/// [`window`](Self::window), re-picks may add at most
/// [`ratio`](Self::ratio) of the calls made, or
/// [`min_per_window`](Self::min_per_window) when that is more (so that a
/// quiet client still gets its few re-picks).
///
/// A pure function of counts the balancer keeps:
///
/// ```
/// use orca_lb_core::RetryBudget;
///
/// let budget = RetryBudget::default();
/// // 1,000 calls in the window: 10 % is 100 re-picks.
/// assert_eq!(budget.allowance(1_000), 100);
/// // A quiet client: the minimum.
/// assert_eq!(budget.allowance(3), 10);
/// // Off.
/// assert_eq!(RetryBudget::off().allowance(1_000), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryBudget {
    /// Re-picks as a fraction of the calls in the window, in `[0, 1]`.
    /// Default 0.1, as grpc-go's and Finagle's retry budgets.
    pub ratio: f64,
    /// Re-picks always allowed per window. Default 10.
    pub min_per_window: u32,
    /// The window calls and re-picks are counted over. Default 10 s.
    pub window: Duration,
}

// === setters of RetryBudget ===

impl RetryBudget {
    /// Sets [`ratio`](Self::ratio).
    #[must_use]
    pub fn with_ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Sets [`min_per_window`](Self::min_per_window).
    #[must_use]
    pub fn with_min_per_window(mut self, min_per_window: u32) -> Self {
        self.min_per_window = min_per_window;
        self
    }

    /// Sets [`window`](Self::window).
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
}

impl RetryBudget {
    /// Name used in [`InvalidConfig`] messages.
    const NAME: &'static str = "retry budget";

    /// No re-pick ever.
    pub fn off() -> Self {
        Self {
            ratio: 0.0,
            min_per_window: 0,
            ..Self::default()
        }
    }

    /// Checks that the ratio is in `[0, 1]` and the window not zero.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !(0.0..=1.0).contains(&self.ratio) {
            return Err(InvalidConfig::new(
                Self::NAME,
                "ratio",
                self.ratio,
                "must be a number in [0, 1]",
            ));
        }
        if self.window.is_zero() {
            return Err(InvalidConfig::new(
                Self::NAME,
                "window",
                self.window,
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// Re-picks allowed in a window with `calls` calls:
    /// `max(min_per_window, floor(ratio * calls))`.
    pub fn allowance(&self, calls: u64) -> u64 {
        let share = (self.ratio * calls as f64).floor() as u64;
        share.max(u64::from(self.min_per_window))
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.1,
            min_per_window: 10,
            window: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_is_the_ratio_of_calls_or_the_minimum() {
        let b = RetryBudget::default();
        assert_eq!(b.allowance(0), 10);
        assert_eq!(b.allowance(109), 10);
        assert_eq!(b.allowance(110), 11);
        let b = RetryBudget {
            ratio: 1.0,
            min_per_window: 0,
            ..RetryBudget::default()
        };
        assert_eq!(b.allowance(7), 7);
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let e = RetryBudget {
            ratio: 1.5,
            ..RetryBudget::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field(), "ratio");
        let e = RetryBudget {
            window: Duration::ZERO,
            ..RetryBudget::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field(), "window");
        assert!(RetryBudget::off().validate().is_ok());
    }
}
