//! The peer policies that orca-lb is benchmarked against.
//!
//! The benchmarks compare orca-lb with the policies a user would otherwise
//! pick. These policies live here, in the pure core, so that the simulator
//! (`orca-lb-sim`) and the loopback harness run the same code with the same
//! inputs. Each one is rebuilt from its published description:
//!
//! * [`RoundRobin`]: gRPC's `round_robin`, the default policy when a channel
//!   has more than one backend. It cycles over the ready endpoints.
//! * [`LeastRequest`]: Envoy's `least_request` with its default choice count
//!   of 2. It is also Finagle's P2C least-loaded balancer and tower's
//!   `p2c::Balance` over `PendingRequests`: power of two choices on the
//!   client's own count of calls in flight.
//! * [`WrrConfig`], [`WrrWeight`] and [`EdfScheduler`]: gRPC's
//!   `weighted_round_robin` (gRFC A58). Each endpoint's weight is
//!   `qps / (utilization + eps / qps * error_utilization_penalty)`, taken
//!   from its ORCA reports, subject to a blackout period and an expiration
//!   period. The weights are turned into an earliest-deadline-first
//!   schedule.
//!
//! Like the rest of the crate, these policies read no clock and draw no
//! entropy of their own: `now` and the RNG are arguments. A pick never
//! allocates.
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use orca_lb_core::baseline::{EdfScheduler, LeastRequest, RoundRobin, WrrConfig, WrrWeight};
//! use orca_lb_core::{LoadReport, RawLoadReport};
//! use rand::SeedableRng;
//!
//! // Round robin skips endpoints that are not ready.
//! let ready = [true, false, true];
//! let rr = RoundRobin::new();
//! let picks: Vec<_> = (0..4).map(|_| rr.pick(3, |i| ready[i]).unwrap()).collect();
//! assert_eq!(picks, [0, 2, 0, 2]);
//!
//! // Least request takes the less busy of two random endpoints.
//! let in_flight = [7, 2];
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
//! let lr = LeastRequest::new();
//! assert_eq!(lr.pick(&mut rng, 2, |i| Some(in_flight[i])), Some(1));
//!
//! // Weighted round robin: one weight per endpoint, fed by ORCA reports.
//! let config = WrrConfig::default();
//! let report = |qps, utilization| {
//!     let raw = RawLoadReport {
//!         rps_fractional: qps,
//!         application_utilization: utilization,
//!         ..RawLoadReport::default()
//!     };
//!     LoadReport::try_from(raw).unwrap()
//! };
//! let t0 = Instant::now();
//! let mut weights = [WrrWeight::new(), WrrWeight::new()];
//! weights[0].on_report(&report(100.0, 0.5), &config, t0);
//! weights[1].on_report(&report(100.0, 0.25), &config, t0);
//!
//! // No weight counts during the blackout period.
//! assert_eq!(weights[0].weight(&config, t0), None);
//!
//! // Once it has passed, the second endpoint weighs twice as much.
//! let later = t0 + Duration::from_secs(10);
//! let current: Vec<_> = weights.iter().map(|w| w.weight(&config, later)).collect();
//! assert_eq!(current, [Some(200.0), Some(400.0)]);
//!
//! // The shell rebuilds the schedule every `weight_update_period`.
//! let mut schedule = EdfScheduler::new(&current).unwrap();
//! let picks: Vec<_> = (0..6).map(|_| schedule.pick()).collect();
//! assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 4);
//! ```

mod edf;
mod least_request;
mod round_robin;
mod weighted_round_robin;

pub use edf::EdfScheduler;
pub use least_request::LeastRequest;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::{InvalidWrrConfig, WrrConfig, WrrWeight};
