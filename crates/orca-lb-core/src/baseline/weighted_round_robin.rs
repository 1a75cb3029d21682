//! The weights of gRPC's `weighted_round_robin` (gRFC A58).

use std::fmt;
use std::time::{Duration, Instant};

use crate::LoadReport;

/// The settings of gRPC's `weighted_round_robin` policy (gRFC A58).
///
/// In a gRPC service config the policy is named `weighted_round_robin` and
/// its JSON fields are camelCase: `blackoutPeriod`,
/// `weightExpirationPeriod`, `weightUpdatePeriod` and
/// `errorUtilizationPenalty`. Its two remaining fields,
/// `enableOobLoadReport` (false) and `oobReportingPeriod` (10 s), choose
/// where reports come from, which is the client shell's business; they are
/// not part of the policy here.
///
/// [`Default`] gives gRPC's defaults. Check a config built by hand with
/// [`validate`](Self::validate).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WrrConfig {
    /// `blackoutPeriod`: how long an endpoint must report before its weight
    /// is used, both when it first reports and after its weight expired.
    /// This avoids churn when endpoints come and go. Default 10 s; zero
    /// means no blackout.
    pub blackout_period: Duration,
    /// `weightExpirationPeriod`: after this long without a report, an
    /// endpoint's weight is no longer used, so that very stale weights do
    /// not steer traffic. Default 3 minutes.
    pub weight_expiration_period: Duration,
    /// `weightUpdatePeriod`: how often the shell reads the weights and
    /// rebuilds the [`EdfScheduler`](super::EdfScheduler). Default 1 s; at
    /// least [`MIN_WEIGHT_UPDATE_PERIOD`](Self::MIN_WEIGHT_UPDATE_PERIOD).
    pub weight_update_period: Duration,
    /// `errorUtilizationPenalty`: how much an endpoint's error rate
    /// (`eps / qps`) adds to its utilization. Default 1.0; finite and
    /// `>= 0`, and 0 ignores errors.
    pub error_utilization_penalty: f64,
    /// Whether to clamp each weight to `[1 %, 10x]` of the mean weight when
    /// building the schedule, as gRPC C-core does. The gRFC and gRPC Go do
    /// not clamp, so the default is `false`. Not a gRPC config field.
    pub clamp_weights: bool,
}

// === setters of WrrConfig ===

impl WrrConfig {
    /// Sets [`blackout_period`](Self::blackout_period).
    #[must_use]
    pub fn with_blackout_period(mut self, blackout_period: Duration) -> Self {
        self.blackout_period = blackout_period;
        self
    }

    /// Sets [`weight_expiration_period`](Self::weight_expiration_period).
    #[must_use]
    pub fn with_weight_expiration_period(mut self, weight_expiration_period: Duration) -> Self {
        self.weight_expiration_period = weight_expiration_period;
        self
    }

    /// Sets [`weight_update_period`](Self::weight_update_period).
    #[must_use]
    pub fn with_weight_update_period(mut self, weight_update_period: Duration) -> Self {
        self.weight_update_period = weight_update_period;
        self
    }

    /// Sets [`error_utilization_penalty`](Self::error_utilization_penalty).
    #[must_use]
    pub fn with_error_utilization_penalty(mut self, error_utilization_penalty: f64) -> Self {
        self.error_utilization_penalty = error_utilization_penalty;
        self
    }

    /// Sets [`clamp_weights`](Self::clamp_weights).
    #[must_use]
    pub fn with_clamp_weights(mut self, clamp_weights: bool) -> Self {
        self.clamp_weights = clamp_weights;
        self
    }
}

/// Why a [`WrrConfig`] is refused by [`WrrConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InvalidWrrConfig {
    /// `weight_update_period` is shorter than
    /// [`WrrConfig::MIN_WEIGHT_UPDATE_PERIOD`].
    UpdatePeriodTooShort(Duration),
    /// `error_utilization_penalty` is negative, NaN or infinite.
    BadPenalty(f64),
}

/// The weight of one endpoint, computed from its ORCA reports as gRFC A58
/// says.
///
/// Each valid report sets the weight to
/// `qps / (utilization + eps / qps * error_utilization_penalty)`, where qps
/// is [`LoadReport::qps`] and utilization is
/// [`LoadReport::effective_utilization`]
/// (`application_utilization` when reported, else `cpu_utilization`). A
/// report with `qps <= 0` or utilization `<= 0` carries no weight and is
/// ignored.
///
/// A weight is used only once the endpoint has reported for
/// `blackout_period`, and stops being used after `weight_expiration_period`
/// without a valid report. When it has expired, the next valid report starts
/// a new blackout period. The state behind this is two instants:
/// [`non_empty_since`](Self::non_empty_since), the first valid report since
/// the weight was created, last expired or the endpoint last became ready,
/// and [`last_updated`](Self::last_updated), the last valid report.
///
/// In gRPC, reading an expired weight resets `non_empty_since`. Here reads
/// take `&self` and change nothing; [`on_report`](Self::on_report) sees the
/// expiry instead, with the same result. That is why both take the
/// [`WrrConfig`]: a report needs the penalty and the expiration period, a
/// read the blackout and expiration periods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrrWeight {
    /// The weight from the last valid report (0 before any).
    value: f64,
    non_empty_since: Option<Instant>,
    last_updated: Option<Instant>,
}

// === impl WrrConfig ===

impl WrrConfig {
    /// The shortest accepted `weight_update_period`.
    ///
    /// Rebuilding the schedule more often costs CPU and gains nothing: the
    /// weights change only as reports arrive. gRPC raises shorter periods to
    /// this value; [`validate`](Self::validate) refuses them instead.
    pub const MIN_WEIGHT_UPDATE_PERIOD: Duration = Duration::from_millis(100);

    /// Checks the fields that have a valid range.
    pub fn validate(&self) -> Result<(), InvalidWrrConfig> {
        if self.weight_update_period < Self::MIN_WEIGHT_UPDATE_PERIOD {
            return Err(InvalidWrrConfig::UpdatePeriodTooShort(
                self.weight_update_period,
            ));
        }
        let penalty = self.error_utilization_penalty;
        if !(penalty.is_finite() && penalty >= 0.0) {
            return Err(InvalidWrrConfig::BadPenalty(penalty));
        }
        Ok(())
    }
}

impl Default for WrrConfig {
    fn default() -> Self {
        Self {
            blackout_period: Duration::from_secs(10),
            weight_expiration_period: Duration::from_secs(180),
            weight_update_period: Duration::from_secs(1),
            error_utilization_penalty: 1.0,
            clamp_weights: false,
        }
    }
}

// === impl InvalidWrrConfig ===

impl fmt::Display for InvalidWrrConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpdatePeriodTooShort(period) => write!(
                f,
                "invalid weighted round robin config: weight_update_period = {period:?} is below {:?}",
                WrrConfig::MIN_WEIGHT_UPDATE_PERIOD,
            ),
            Self::BadPenalty(penalty) => write!(
                f,
                "invalid weighted round robin config: error_utilization_penalty = {penalty} is not a finite number >= 0",
            ),
        }
    }
}

impl std::error::Error for InvalidWrrConfig {}

// === impl WrrWeight ===

impl WrrWeight {
    /// An endpoint that has not reported yet: no weight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a report received at `now`. Returns whether it was valid and
    /// updated the weight.
    ///
    /// The report is ignored if `qps <= 0`, if its utilization is `<= 0`, or
    /// if the weight would not be a finite number. The first valid report,
    /// and the first one after the weight expired (no valid report for
    /// `config.weight_expiration_period`), starts the blackout period. A
    /// `now` earlier than the last valid report updates the weight but not
    /// [`last_updated`](Self::last_updated).
    pub fn on_report(&mut self, report: &LoadReport, config: &WrrConfig, now: Instant) -> bool {
        let qps = report.qps();
        let utilization = report.effective_utilization();
        if !(qps > 0.0 && utilization > 0.0) {
            return false;
        }
        let penalized = utilization + report.eps() / qps * config.error_utilization_penalty;
        let weight = qps / penalized;
        if !(weight.is_finite() && weight > 0.0) {
            return false;
        }
        let expired = self.last_updated.is_some_and(|last| {
            now.saturating_duration_since(last) >= config.weight_expiration_period
        });
        if expired || self.non_empty_since.is_none() {
            self.non_empty_since = Some(now);
        }
        // Monotonic, like `Ewma::last_update`: clocks that disagree slightly
        // never move it back.
        self.last_updated = Some(self.last_updated.map_or(now, |last| last.max(now)));
        self.value = weight;
        true
    }

    /// Starts a new blackout period at the next valid report, as gRPC does
    /// when an endpoint's connection becomes ready again. The weight is not
    /// used until then.
    pub fn on_ready(&mut self) {
        self.non_empty_since = None;
    }

    /// The weight to schedule with at `now`, or `None` if there is none yet,
    /// if `now` is within the blackout period, or if the weight has expired.
    ///
    /// The blackout ends exactly `blackout_period` after
    /// [`non_empty_since`](Self::non_empty_since), and the weight expires
    /// exactly `weight_expiration_period` after
    /// [`last_updated`](Self::last_updated). A `now` earlier than either
    /// counts as no time passed.
    pub fn weight(&self, config: &WrrConfig, now: Instant) -> Option<f64> {
        let last_updated = self.last_updated?;
        if now.saturating_duration_since(last_updated) >= config.weight_expiration_period {
            return None;
        }
        let since = self.non_empty_since?;
        if now.saturating_duration_since(since) < config.blackout_period {
            return None;
        }
        Some(self.value)
    }

    /// When the current run of valid reports began, or `None` before the
    /// first valid report and after [`on_ready`](Self::on_ready).
    ///
    /// Reads do not see expiry: this stays at the old run's start until the
    /// next valid report (see [`weight`](Self::weight)).
    pub fn non_empty_since(&self) -> Option<Instant> {
        self.non_empty_since
    }

    /// When the last valid report arrived, or `None` before the first.
    pub fn last_updated(&self) -> Option<Instant> {
        self.last_updated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawLoadReport;

    const EPSILON: f64 = 1e-9;

    /// An arbitrary origin: only differences between instants matter here.
    #[expect(
        clippy::disallowed_methods,
        reason = "tests need some Instant to start from"
    )]
    fn origin() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn report(qps: f64, application_utilization: f64, eps: f64) -> LoadReport {
        let raw = RawLoadReport {
            rps_fractional: qps,
            application_utilization,
            eps,
            ..RawLoadReport::default()
        };
        LoadReport::try_from(raw).unwrap()
    }

    /// A weight of 200: 100 qps at utilization 0.5, no errors.
    fn good() -> LoadReport {
        report(100.0, 0.5, 0.0)
    }

    // === WrrConfig ===

    #[test]
    fn defaults_are_grpcs() {
        let config = WrrConfig::default();
        assert_eq!(config.blackout_period, secs(10));
        assert_eq!(config.weight_expiration_period, secs(180));
        assert_eq!(config.weight_update_period, secs(1));
        assert_eq!(config.error_utilization_penalty, 1.0);
        assert!(!config.clamp_weights);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn validate_refuses_a_short_update_period() {
        let mut config = WrrConfig {
            weight_update_period: Duration::from_millis(100),
            ..WrrConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        config.weight_update_period = Duration::from_millis(99);
        let err = config.validate().unwrap_err();
        assert_eq!(
            err,
            InvalidWrrConfig::UpdatePeriodTooShort(Duration::from_millis(99))
        );
        assert_eq!(
            err.to_string(),
            "invalid weighted round robin config: weight_update_period = 99ms is below 100ms"
        );
    }

    #[test]
    fn validate_refuses_a_bad_penalty() {
        for penalty in [0.0, 2.5] {
            let config = WrrConfig {
                error_utilization_penalty: penalty,
                ..WrrConfig::default()
            };
            assert_eq!(config.validate(), Ok(()));
        }
        for penalty in [-1.0, f64::NAN, f64::INFINITY] {
            let config = WrrConfig {
                error_utilization_penalty: penalty,
                ..WrrConfig::default()
            };
            let err = config.validate().unwrap_err();
            assert!(matches!(err, InvalidWrrConfig::BadPenalty(_)), "{err:?}");
        }
        let err = InvalidWrrConfig::BadPenalty(-1.0);
        assert_eq!(
            err.to_string(),
            "invalid weighted round robin config: error_utilization_penalty = -1 is not a finite number >= 0"
        );
    }

    // === WrrWeight ===

    #[test]
    fn no_weight_before_the_first_report() {
        let config = WrrConfig::default();
        let w = WrrWeight::new();
        assert_eq!(w.weight(&config, origin()), None);
        assert_eq!(w.non_empty_since(), None);
        assert_eq!(w.last_updated(), None);
    }

    #[test]
    fn blackout_hides_the_weight_for_ten_seconds() {
        let config = WrrConfig::default();
        let t0 = origin();
        let mut w = WrrWeight::new();
        assert!(w.on_report(&good(), &config, t0));
        for s in [0, 5, 9] {
            assert!(w.on_report(&good(), &config, t0 + secs(s)));
            assert_eq!(w.weight(&config, t0 + secs(s)), None, "at {s} s");
        }
        let just_before = t0 + secs(10) - Duration::from_nanos(1);
        assert_eq!(w.weight(&config, just_before), None);
        assert_eq!(w.weight(&config, t0 + secs(10)), Some(200.0));
        assert_eq!(w.non_empty_since(), Some(t0));
        assert_eq!(w.last_updated(), Some(t0 + secs(9)));
    }

    #[test]
    fn zero_blackout_uses_the_first_report_at_once() {
        let config = WrrConfig {
            blackout_period: Duration::ZERO,
            ..WrrConfig::default()
        };
        let t0 = origin();
        let mut w = WrrWeight::new();
        w.on_report(&good(), &config, t0);
        assert_eq!(w.weight(&config, t0), Some(200.0));
    }

    #[test]
    fn expires_after_three_minutes_without_reports_then_blackout_again() {
        let config = WrrConfig::default();
        let t0 = origin();
        let mut w = WrrWeight::new();
        w.on_report(&good(), &config, t0);
        // The last report is at 20 s: the weight lapses at 200 s.
        w.on_report(&report(100.0, 0.25, 0.0), &config, t0 + secs(20));
        assert_eq!(w.weight(&config, t0 + secs(20)), Some(400.0));
        let just_before = t0 + secs(200) - Duration::from_nanos(1);
        assert_eq!(w.weight(&config, just_before), Some(400.0));
        assert_eq!(w.weight(&config, t0 + secs(200)), None);
        assert_eq!(w.weight(&config, t0 + secs(1_000)), None);

        // Reports resume: a new blackout starts at the first one.
        assert!(w.on_report(&good(), &config, t0 + secs(300)));
        assert_eq!(w.non_empty_since(), Some(t0 + secs(300)));
        assert_eq!(w.weight(&config, t0 + secs(305)), None);
        w.on_report(&good(), &config, t0 + secs(309));
        assert_eq!(w.weight(&config, t0 + secs(309)), None);
        assert_eq!(w.weight(&config, t0 + secs(310)), Some(200.0));
    }

    #[test]
    fn reports_within_the_expiration_period_keep_the_run_going() {
        let config = WrrConfig::default();
        let t0 = origin();
        let mut w = WrrWeight::new();
        // A gap just short of the expiration period.
        w.on_report(&good(), &config, t0);
        w.on_report(&good(), &config, t0 + secs(179));
        assert_eq!(w.non_empty_since(), Some(t0));
        assert_eq!(w.weight(&config, t0 + secs(179)), Some(200.0));
    }

    #[test]
    fn reports_without_qps_or_utilization_are_ignored() {
        let config = WrrConfig::default();
        let t0 = origin();
        let mut w = WrrWeight::new();
        assert!(!w.on_report(&report(0.0, 0.5, 0.0), &config, t0));
        assert!(!w.on_report(&report(100.0, 0.0, 0.0), &config, t0));
        assert!(!w.on_report(&LoadReport::default(), &config, t0));
        assert_eq!(w, WrrWeight::new());

        // Nor do they update an existing weight or keep it from expiring.
        w.on_report(&good(), &config, t0);
        assert!(!w.on_report(&report(0.0, 0.9, 0.0), &config, t0 + secs(100)));
        assert!(!w.on_report(&report(50.0, 0.0, 3.0), &config, t0 + secs(100)));
        assert_eq!(w.last_updated(), Some(t0));
        assert_eq!(w.weight(&config, t0 + secs(100)), Some(200.0));
        assert_eq!(w.weight(&config, t0 + secs(180)), None);
    }

    #[test]
    fn cpu_utilization_counts_when_application_utilization_is_absent() {
        let config = WrrConfig {
            blackout_period: Duration::ZERO,
            ..WrrConfig::default()
        };
        let t0 = origin();
        let raw = RawLoadReport {
            rps_fractional: 30.0,
            cpu_utilization: 0.75,
            ..RawLoadReport::default()
        };
        let mut w = WrrWeight::new();
        assert!(w.on_report(&LoadReport::try_from(raw).unwrap(), &config, t0));
        assert_eq!(w.weight(&config, t0), Some(40.0));
    }

    #[test]
    fn errors_add_to_utilization_times_the_penalty() {
        let t0 = origin();
        let weight = |penalty: f64| {
            let config = WrrConfig {
                blackout_period: Duration::ZERO,
                error_utilization_penalty: penalty,
                ..WrrConfig::default()
            };
            let mut w = WrrWeight::new();
            w.on_report(&report(100.0, 0.5, 10.0), &config, t0);
            w.weight(&config, t0).unwrap()
        };
        // 100 / (0.5 + 10 / 100 * 1) = 166.67
        let w = weight(1.0);
        assert!((w - 100.0 / 0.6).abs() < EPSILON, "{w}");
        // 100 / (0.5 + 10 / 100 * 2.5) = 133.33
        assert!((weight(2.5) - 100.0 / 0.75).abs() < EPSILON);
        // No penalty: errors are ignored.
        assert_eq!(weight(0.0), 200.0);
    }

    #[test]
    fn on_ready_restarts_the_blackout() {
        let config = WrrConfig::default();
        let t0 = origin();
        let mut w = WrrWeight::new();
        w.on_report(&good(), &config, t0);
        assert_eq!(w.weight(&config, t0 + secs(20)), Some(200.0));
        w.on_ready();
        assert_eq!(w.weight(&config, t0 + secs(20)), None);
        w.on_report(&good(), &config, t0 + secs(30));
        assert_eq!(w.non_empty_since(), Some(t0 + secs(30)));
        assert_eq!(w.weight(&config, t0 + secs(39)), None);
        assert_eq!(w.weight(&config, t0 + secs(40)), Some(200.0));
    }

    #[test]
    fn a_now_before_the_last_report_does_not_panic() {
        let config = WrrConfig::default();
        let t0 = origin() + secs(60);
        let mut w = WrrWeight::new();
        w.on_report(&good(), &config, t0);
        assert!(w.on_report(&report(100.0, 0.25, 0.0), &config, t0 - secs(30)));
        assert_eq!(w.last_updated(), Some(t0));
        assert_eq!(w.non_empty_since(), Some(t0));
        // Still within the blackout of the run that began at t0.
        assert_eq!(w.weight(&config, t0 - secs(30)), None);
        assert_eq!(w.weight(&config, t0 + secs(10)), Some(400.0));
    }
}
