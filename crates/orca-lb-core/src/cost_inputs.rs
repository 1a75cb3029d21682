//! What the cost of a unary call on one endpoint is computed from, once the
//! weights whose windows the settings fix are applied.

use crate::fast_exp::exp2_neg;
use crate::{PickSettings, PickTime, Score};

/// One endpoint's unary cost for one pick, halfway: the service time is
/// known (its report and observed latency weighed by their age, the
/// in-flight floor applied), and so is the failure penalty. Left is the
/// backlog, whose weight decays over a window of a few service times, and
/// the arithmetic after it: [`cost_alone`](Self::cost_alone). A
/// [`StandingCost`](crate::StandingCost) is worked out from these inputs at
/// the two ends of its span.
///
/// Made by [`PickView::unary_cost`](crate::PickView::unary_cost); the cost
/// is the one [`PickView::score`](crate::PickView::score) gives, bit for bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostInputs {
    /// Seconds.
    pub(crate) service_time: f64,
    /// The report's age times `log2(e)`: the backlog weight is
    /// `2^-(this / window)`.
    pub(crate) report_age_log2: f64,
    /// 1 with a report, 0 without (then the backlog weight is 0).
    pub(crate) reported: f64,
    /// The reported backlog, 0 when not reported.
    pub(crate) backlog: f64,
    /// The fleet's median backlog, 0 when the endpoint reports none.
    pub(crate) fleet_backlog: f64,
    /// This client's calls in flight there.
    pub(crate) in_flight: f64,
    pub(crate) capacity: f64,
    pub(crate) inv_capacity: f64,
    /// The failure penalty, seconds.
    pub(crate) failure: f64,
}

impl Default for CostInputs {
    /// Inputs that cost the base latency: a free endpoint with no news.
    fn default() -> Self {
        Self {
            service_time: 0.0,
            report_age_log2: 0.0,
            reported: 0.0,
            backlog: 0.0,
            fleet_backlog: 0.0,
            in_flight: 0.0,
            capacity: 1.0,
            inv_capacity: 1.0,
            failure: 0.0,
        }
    }
}

impl CostInputs {
    /// The cost, for a pick at `time`: see
    /// [`Estimate::terms`](crate::Estimate::terms), the same arithmetic,
    /// skipping the backlog weight when there is no report to weigh and
    /// its polynomial when the weight underflows.
    #[inline]
    pub fn cost_alone(&self, time: &PickTime) -> Score {
        let settings = &time.settings;
        let backlog = self.others(time) + self.in_flight;
        let waiting = (backlog + 1.0 - self.capacity).max(0.0) + settings.contention * backlog;
        let completion = self.service_time * (1.0 + waiting * self.inv_capacity);
        Score::new(settings.base + completion + self.failure)
    }

    /// `log2` of the backlog weight: the report's age over its window,
    /// a few service times.
    #[inline]
    fn backlog_exponent(&self, time: &PickTime) -> f64 {
        -self.report_age_log2 / self.backlog_window(&time.settings)
    }

    /// The window over which the reported backlog's weight decays,
    /// seconds: a few service times, at least a millisecond.
    #[inline]
    pub(crate) fn backlog_window(&self, settings: &PickSettings) -> f64 {
        (settings.backlog_stale_services * self.service_time).max(1e-3)
    }

    /// The weight of the reported backlog, by its age: 0 without a report
    /// (then not worked out at all).
    #[inline]
    pub(crate) fn backlog_weight(&self, time: &PickTime) -> f64 {
        if self.reported == 0.0 {
            0.0
        } else {
            exp2_neg(self.backlog_exponent(time)) * self.reported
        }
    }

    /// The other clients' calls as [`cost_alone`](Self::cost_alone) counts
    /// them: the reported backlog weighed by its age, the rest the fleet
    /// median.
    #[inline]
    pub(crate) fn others(&self, time: &PickTime) -> f64 {
        let w = self.backlog_weight(time);
        w * self.backlog + (1.0 - w) * self.fleet_backlog
    }
}
