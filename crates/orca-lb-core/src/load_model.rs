//! The load a backend reports, computed from what its calls did.
//!
//! `orca-lb-server` and `orca-lb-sim` both run this model: the server from
//! the atomic counters its request path adds to, with the sampler task's
//! clock, and the simulator in virtual time. Neither keeps a copy of the
//! arithmetic, so the simulator measures the reports the server sends.
//!
//! * [`Totals`]: monotonic counts of completed calls, failed calls and busy
//!   worker time.
//! * [`RateWindow`]: turns [`Totals`] into [`Rates`] over a sliding window
//!   whose base moves forward once per sample interval.
//! * [`ServiceTimeEwma`]: the time-decayed average of unary service times.
//! * [`UtilizationSource`]: where `application_utilization` comes from, and
//!   the floor [`MIN_REPORTED_UTILIZATION`] it never goes below.
//! * [`LoadSnapshot`]: the load at one instant, and the named metrics and
//!   [`RawLoadReport`](crate::RawLoadReport) built from it.
//! * The defaults both use: [`DEFAULT_WINDOW`], [`DEFAULT_SAMPLE_INTERVAL`],
//!   [`DEFAULT_SERVICE_TIME_DECAY`].
//!
//! Nothing here reads a clock or takes a lock: every instant is an argument.
//!
//! # Examples
//!
//! ```
//! use std::num::NonZeroUsize;
//! use std::time::{Duration, Instant};
//!
//! use orca_lb_core::load_model::{
//!     LoadSnapshot, RateWindow, ServiceTimeEwma, Totals, UtilizationSource,
//! };
//!
//! let t0 = Instant::now();
//! let mut window = RateWindow::new(Duration::from_secs(10), t0);
//! let mut totals = Totals::default();
//! let mut service_time = ServiceTimeEwma::new(Duration::from_secs(1));
//!
//! // Four calls of 250 ms each on 2 worker slots, over one second.
//! for i in 1..=4 {
//!     totals.record_busy(Duration::from_millis(250));
//!     totals.record_call(false);
//!     service_time.observe(Duration::from_millis(250), t0 + Duration::from_millis(250 * i));
//! }
//! let now = t0 + Duration::from_secs(1);
//! window.advance(totals, now);
//! let rates = window.rates(totals, now);
//! assert_eq!(rates.rps, 4.0);
//!
//! let capacity = NonZeroUsize::new(2).unwrap();
//! let snapshot = LoadSnapshot {
//!     application_utilization: UtilizationSource::Slots {
//!         busy: rates.busy,
//!         queued: 0.0,
//!         capacity,
//!     }
//!     .reported(),
//!     rps: rates.rps,
//!     eps: rates.eps,
//!     capacity: Some(capacity.get()),
//!     service_time_ms: service_time.value_ms(),
//!     ..LoadSnapshot::default()
//! };
//! let raw = snapshot.to_raw();
//! assert_eq!(raw.application_utilization, 0.5);
//! assert_eq!(raw.named_metrics["service_time_ms"], 250.0);
//! ```

mod defaults;
mod rate_window;
mod service_time;
mod snapshot;
mod totals;
mod utilization;

pub use defaults::{
    DEFAULT_SAMPLE_INTERVAL, DEFAULT_SERVICE_TIME_DECAY, DEFAULT_WINDOW, MIN_REPORTED_UTILIZATION,
};
pub use rate_window::{MIN_RATE_SPAN, RateWindow, Rates};
pub use service_time::ServiceTimeEwma;
pub use snapshot::LoadSnapshot;
pub use totals::Totals;
pub use utilization::UtilizationSource;
