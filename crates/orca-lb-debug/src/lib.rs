//! A gRPC service that shows what orca-lb balancers know and decided, and the
//! table and JSON views of it that the `orca-lb` CLI prints.
//!
//! # Where it fits
//!
//! `orca-lb-client`'s [`Balancer`](orca_lb_client::Balancer) picks an endpoint
//! per call from scores built out of ORCA reports and observed latency, and
//! ejects endpoints through circuit breakers. That is invisible from outside
//! the process. This crate exposes it:
//!
//! * [`DebugService`] serves `orca_lb.debug.v1.BalancerDebug`
//!   (`proto/orca_lb/debug/v1/debug.proto`) over the balancers an application
//!   [registers](DebugService::register) by name: `GetState` for one look,
//!   `WatchState` for a stream of them.
//! * [`serve_debug`] runs it on its own port, with `grpc.health.v1.Health`
//!   and server reflection (v1) beside it, so `grpcurl` works too.
//! * [`render`] turns a [`pb::State`] into the table and JSON the `orca-lb`
//!   CLI (`crates/orca-lb-cli`) prints, and a load report into one line.
//! * [`convert`] builds the messages from
//!   [`BalancerSnapshot`](orca_lb_client::BalancerSnapshot)s.
//!
//! # Concepts
//!
//! **A snapshot per request.** Nothing is recorded in advance: each
//! `GetState`, and each tick of a `WatchState`, takes a fresh snapshot of
//! every registered balancer. A snapshot takes each endpoint's own lock
//! briefly, as a maintenance pass does; picks never wait on it.
//!
//! **An endpoint's state** is one word for a display, taken from the first
//! that applies: *draining* (removed by discovery), *ejected* (circuit open),
//! *half-open* (probing), *connecting* (circuit closed and nothing heard: no
//! report taken in and no call answered), else *ready*. See
//! [`convert::endpoint_state`].
//!
//! **The registry holds weak handles**: registering a balancer does not
//! keep it (or its background tasks) alive. A balancer the application has
//! dropped disappears from the state; [`DebugService::deregister`] removes one
//! by name before that.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use orca_lb_client::{Balancer, BalancerConfig};
//! use orca_lb_debug::pb::GetStateRequest;
//! use orca_lb_debug::pb::balancer_debug_client::BalancerDebugClient;
//! use orca_lb_debug::{DebugService, render, serve_debug};
//!
//! let balancer = Balancer::from_uris(
//!     BalancerConfig::default().with_target("greeter"),
//!     ["http://127.0.0.1:50051", "http://127.0.0.1:50052"],
//! )?;
//! balancer.wait_for_endpoints(2).await;
//!
//! let debug = DebugService::new();
//! debug.register("greeter", &balancer);
//! let server = serve_debug("127.0.0.1:0", debug).await?;
//!
//! // What `orca-lb state --target ADDR` does:
//! let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))?
//!     .connect()
//!     .await?;
//! let state = BalancerDebugClient::new(channel)
//!     .get_state(GetStateRequest::default())
//!     .await?
//!     .into_inner();
//! assert_eq!(state.balancers[0].endpoints.len(), 2);
//! let table = render::table(&state);
//! assert!(table.contains("127.0.0.1:50051"));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod convert;
pub mod duration_arg;
mod metric_descriptions;
pub mod render;
mod serve;
mod service;
mod watch_limit;

pub use serve::{DebugServer, SHUTDOWN_GRACE, serve_debug};
pub use service::{DEFAULT_WATCH_INTERVAL, DebugService, MIN_WATCH_INTERVAL};
pub use watch_limit::DEFAULT_MAX_WATCHERS;

/// Generated messages and gRPC stubs of `orca_lb.debug.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/orca_lb.debug.v1.rs"));

    /// The full name of the debug service, as clients and reflection see it.
    pub const SERVICE_NAME: &str = "orca_lb.debug.v1.BalancerDebug";
}

/// The encoded `FileDescriptorSet` of `orca_lb.debug.v1`, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/debug_descriptor.bin"));

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
