//! Pure load-balancing policy for orca-lb: validated ORCA load reports and
//! the time-decayed averages a balancer decides with.
//!
//! # Where it fits
//!
//! orca-lb balances tonic clients on the load their backends report through
//! ORCA (xDS Open Request Cost Aggregation):
//!
//! * `orca-lb-server` measures a backend and publishes [`LoadReport`]s, in
//!   response trailers and on the out-of-band ORCA stream.
//! * `orca-lb-client` ingests those reports and its own latency samples, and
//!   decides where each call goes with the policy in this crate.
//! * `orca-lb-sim` and the benches drive the same policy in virtual time.
//!
//! To serve all three the same way, this crate depends only on `rand` and
//! does no I/O: no tokio, no tonic, and no clock reads. Time comes in as an
//! [`Instant`](std::time::Instant) argument and randomness as an RNG
//! argument, so a decision depends only on its inputs and tests, the
//! simulator and production all see the same behavior. (`clippy.toml` in
//! this crate refuses `Instant::now`, `SystemTime::now` and `thread::sleep`.)
//!
//! # Concepts
//!
//! **Validate at the boundary.** A report from the wire or from an
//! application is a [`RawLoadReport`]. `LoadReport::try_from` checks it once
//! and refuses NaN, infinities, negative values and utilizations above 1 with
//! an [`InvalidReport`] that names the [`Field`] and the value. Code that
//! holds a [`LoadReport`] never checks again. orca-lb's own entries in
//! `named_metrics` are listed in [`named_metrics`].
//!
//! **Average over time, not over samples.** Reports and responses arrive at
//! irregular times, so the averages weigh history by elapsed time:
//! `w = exp(-dt / decay)`.
//!
//! * [`Ewma`] smooths a signal such as utilization.
//! * [`PeakEwma`] tracks a cost such as latency. It jumps to a peak at once
//!   and recovers gradually, and its read decays toward zero while a backend
//!   goes unobserved, so the balancer tries that backend again. The read
//!   takes `&self`: how often it is read does not change what it returns.
//!
//! **One load model for the server and the simulator.** [`load_model`]
//! holds what a backend reports and how it is computed: rates over a
//! sliding window, the service-time average, the utilization and the report
//! built from them. `orca-lb-server` drives it from its atomic counters,
//! `orca-lb-sim` in virtual time.
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use orca_lb_core::{Ewma, LoadReport, RawLoadReport, Violation, named_metrics};
//!
//! // A report as a backend sends it.
//! let mut raw = RawLoadReport {
//!     cpu_utilization: 0.9,
//!     application_utilization: 0.6,
//!     rps_fractional: 120.0,
//!     ..RawLoadReport::default()
//! };
//! raw.named_metrics.insert(named_metrics::QUEUE_DEPTH.to_owned(), 3.0);
//!
//! let report = LoadReport::try_from(raw)?;
//! assert_eq!(report.effective_utilization(), 0.6);
//! assert_eq!(report.queue_depth(), Some(3.0));
//!
//! // Out-of-range values are refused, naming the field.
//! let bad = RawLoadReport {
//!     mem_utilization: 1.5,
//!     ..RawLoadReport::default()
//! };
//! let err = LoadReport::try_from(bad).unwrap_err();
//! assert_eq!(err.violation(), Violation::AboveOne);
//! assert_eq!(
//!     err.to_string(),
//!     "invalid load report: mem_utilization = 1.5 is above 1",
//! );
//!
//! // Smooth the utilization, with the time of each report passed in.
//! let t0 = Instant::now();
//! let mut utilization = Ewma::new(Duration::from_secs(10));
//! utilization.observe(report.effective_utilization(), t0);
//! utilization.observe(0.2, t0 + Duration::from_secs(10));
//!
//! // Ten seconds is one decay period: the old value keeps 1/e of its weight.
//! let w = (-1.0_f64).exp();
//! let expected = w * 0.6 + (1.0 - w) * 0.2;
//! assert!((utilization.value().unwrap() - expected).abs() < 1e-12);
//! # Ok::<(), orca_lb_core::InvalidReport>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod affinity_config;
mod affinity_load;
mod atomic_f64;
mod backoff;
pub mod baseline;
mod best_of_pick;
mod circuit_breaker;
mod cost_inputs;
mod decay_stamp;
mod drawn_scores;
mod ejection_budget;
mod endpoint_policy;
mod endpoint_state;
mod error_chain;
mod error_rate;
pub mod escaped;
mod ewma;
mod fast_exp;
mod fleet;
mod hash_ring;
mod least_pick;
pub mod load_model;
mod locality;
pub mod named_metrics;
mod p2c;
mod peak_ewma;
mod pick_context;
mod pick_settings;
mod pick_time;
mod pick_view;
#[cfg(test)]
mod random_history;
mod report;
mod retry_budget;
mod score;
mod score_config;
pub mod splitmix;
mod standing_cost;
mod unary_cost;
mod zone;
mod zone_preference;

pub use affinity_config::{
    AffinityConfig, AffinityKey, DEFAULT_EPSILON, DEFAULT_VIRTUAL_NODES, InvalidAffinity,
    MAX_VIRTUAL_NODES,
};
pub use affinity_load::affinity_load;
pub use atomic_f64::AtomicF64;
pub use backoff::Backoff;
pub use best_of_pick::MAX_CHOICES;
pub use circuit_breaker::{
    BreakerState, CircuitBreaker, CircuitBreakerConfig, InvalidConfig, OpenReason, OverloadSignal,
    Transition,
};
pub use cost_inputs::CostInputs;
pub use decay_stamp::{DecayClock, DecayStamp};
pub(crate) use drawn_scores::DrawnScores;
pub use ejection_budget::EjectionBudget;
pub use endpoint_policy::{Admission, CandidateView, EndpointPolicy, Outcome};
pub use endpoint_state::{
    CostTerms, EXPLORATION, EndpointState, Estimate, LocalLoad, MIN_CLAIM_CHECK_SAMPLES,
    MIN_WARM_UP_SHARE,
};
pub use error_chain::{append_sources, error_chain};
pub use error_rate::ErrorRate;
pub use escaped::{DisplayName, MAX_NAME_CHARS};
pub use ewma::Ewma;
pub use fast_exp::{exp_neg, exp2_neg};
pub use fleet::{FleetSamples, FleetView, median};
pub use hash_ring::{HashRing, MAX_WALK, RingPick, capacity, key_hash, point_hash};
pub use least_pick::MAX_LEAST_CANDIDATES;
pub use locality::{
    DEFAULT_SPILL_HYSTERESIS, DEFAULT_SPILL_THRESHOLD, InvalidLocality, LocalityConfig, ZoneIndex,
    ZoneSide,
};
pub use p2c::{P2c, distinct_pair};
pub use peak_ewma::PeakEwma;
pub use pick_context::PickContext;
pub use pick_settings::PickSettings;
pub use pick_time::PickTime;
pub use pick_view::{PICK_VIEW_WORDS, PickView};
pub use report::{Field, InvalidReport, LoadReport, RawLoadReport, Violation};
pub use retry_budget::RetryBudget;
pub use score::Score;
pub use score_config::{InvalidScoreConfig, ScoreConfig};
pub use standing_cost::{MAX_STANDING_SPAN, STANDING_COST_WORDS, StandingCost};
pub use unary_cost::UnaryCost;
pub use zone::{InvalidZone, MAX_ZONE_LEN, Zone};
pub use zone_preference::{
    EndpointLoad, SPILL_FALL_PER_SEC, SPILL_RISE_PER_SEC, ZonePreference, zone_load,
};

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
