//! Load-aware gRPC load balancing for tonic, driven by ORCA.
//!
//! gRPC multiplexes every call over one long-lived HTTP/2 connection, so a
//! connection-level balancer (a Kubernetes Service, a TCP proxy) pins all of a
//! client's calls to one backend. orca-lb balances per call instead, using
//! what backends report about their own load through ORCA (Open Request Cost
//! Aggregation), the reporting gRPC itself defines.
//!
//! This crate re-exports the pieces behind features:
//!
//! - [`server`] (feature `server`, default): a tower layer that makes any tonic
//!   server publish ORCA `OrcaLoadReport`s, per call in the
//!   `endpoint-load-metrics-bin` trailer and out of band through
//!   `xds.service.orca.v3.OpenRcaService`, readable by gRPC's own
//!   `weighted_round_robin` clients.
//! - [`client`] (feature `client`, default): a tower `Service` that a
//!   generated tonic client uses in place of a `Channel`, balancing each call
//!   by expected completion time over reported and observed load, with
//!   circuit breaking and discovery (static, DNS).
//! - `debug` (feature `debug`): a gRPC service that shows what balancers
//!   think of each endpoint (state, score, load, circuit), for the
//!   `orca-lb state` command (`orca-lb-debug`, see `docs/observability.md`).
//! - `etcd` (feature `etcd`): servers register themselves in etcd under a
//!   lease and drain gracefully; clients discover them through a resumable
//!   watch (`orca-lb-etcd`, see `docs/discovery.md`).
//! - [`core`]: the pure policy (validated reports, EWMAs, the score, the
//!   picker, the circuit breaker) every other part uses.
//! - [`proto`]: the generated ORCA messages and stubs.
//!
//! # Examples
//!
//! Add the reporting layer to a tonic server:
//!
//! ```no_run
//! use orca_lb::server::ReportingLayer;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (layer, recorder) = ReportingLayer::builder().capacity(8).build()?;
//!     tonic::transport::Server::builder()
//!         .layer(layer)
//!         // .add_service(MyServiceServer::new(my_service))
//!         .add_service(recorder.oob_service())
//!         .serve("127.0.0.1:50051".parse()?)
//!         .await?;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use orca_lb_client as client;
pub use orca_lb_core as core;
#[cfg(feature = "debug")]
#[cfg_attr(docsrs, doc(cfg(feature = "debug")))]
pub use orca_lb_debug as debug;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use orca_lb_etcd as etcd;
pub use orca_lb_proto as proto;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use orca_lb_server as server;

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
