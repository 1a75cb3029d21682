//! ORCA load reporting for tonic servers.
//!
//! # Where it fits
//!
//! orca-lb balances gRPC calls on what backends report about their own load.
//! This crate is the backend half: a tower [`ReportingLayer`] that any tonic
//! server adds with one line, after which every response carries an ORCA
//! `OrcaLoadReport` in its `endpoint-load-metrics-bin` trailer, and
//! [`LoadRecorder::oob_service`] streams the same reports out of band
//! (`xds.service.orca.v3.OpenRcaService`). `orca-lb-client` reads them, and so
//! do gRPC's own `weighted_round_robin` clients (grpc-go, grpc-java, C-core).
//!
//! # Concepts
//!
//! - **What is tracked.** Calls in flight, open streams (methods named in
//!   [`StreamingMethods`]), calls queued for a worker slot (with
//!   [`Builder::capacity`]), completed and failed calls per second over a
//!   sliding window, a service-time EWMA, and CPU and memory from a
//!   [`SystemSampler`] on a background task. Counting is atomic and carried by
//!   a guard in the response body, so a stream counts until its trailers are
//!   sent or the client goes away. The rates, the service time, the
//!   utilization and the report are computed by
//!   [`orca_lb_core::load_model`], which the simulator runs too.
//! - **What the application adds.** Server-wide values through the
//!   [`LoadRecorder`], and per-call costs through the [`CallRecorder`] the
//!   layer gives each call ([`CallRecorder::of`]; for handlers run on a
//!   task of their own, such as behind a service that spawns each call, see
//!   [`ReportingConfig::call_recorder_in_extensions`]). Values out of range, names longer than
//!   [`ReportingConfig::max_name_len`] and entries that would take a report
//!   past [`ReportingConfig::max_report_bytes`] are refused, counted, logged
//!   (once per kind, then in a summary a minute) and never sent.
//! - **What is refused.** With worker slots, unary calls beyond
//!   [`ReportingConfig::max_queue_depth`] waiting, or waiting longer than
//!   [`ReportingConfig::max_queue_wait`], are answered `RESOURCE_EXHAUSTED`;
//!   a call an `orca-lb-client` offers is handed back `UNAVAILABLE`, unserved,
//!   when slots are full and [`ReportingConfig::hand_back_queue_depth`] calls
//!   wait, for the client to send elsewhere; out-of-band subscribers beyond
//!   [`ReportingConfig::max_oob_subscribers`] are refused too. `docs/reliability.md` lists every limit and what it costs.
//! - **What is a call.** A request whose `content-type` is
//!   `application/grpc` (or a variant such as `application/grpc+proto`). The
//!   layer may wrap a router that also serves plain HTTP routes (an axum
//!   `Router` with a health page, metrics or static files): those requests
//!   pass through untouched, are not counted, never wait for a worker slot
//!   and carry no report.
//! - **Taking a server out of service.** [`Drain`]: health `NOT_SERVING`,
//!   a grace period for clients to notice, HTTP/2 GOAWAY, calls and streams
//!   finish within a deadline; for any discovery (see `docs/streams.md`).
//! - **What is sent.** See `docs/orca.md` for every field, and why
//!   `application_utilization` folds queueing in.
//!
//! # Examples
//!
//! ```no_run
//! use orca_lb_server::ReportingLayer;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Eight worker slots: unary calls beyond them queue, and the queue is reported.
//!     let (layer, recorder) = ReportingLayer::builder().capacity(8).build()?;
//!     recorder.set_named_metric("cache_hit_ratio", 0.93)?;
//!     tonic::transport::Server::builder()
//!         .layer(layer)
//!         // .add_service(MyServiceServer::new(my_service)), whose handlers may call
//!         // CallRecorder::of(&request).unwrap().record_request_cost("db_reads", 3.0)
//!         .add_service(recorder.oob_service())
//!         .serve("127.0.0.1:50051".parse()?)
//!         .await?;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod body;
mod call_counters;
mod call_recorder;
mod config;
mod current_call;
mod drain;
mod error;
mod future;
mod grpc_request;
mod in_flight_call;
mod layer;
mod load_recorder;
mod oob;
mod refusal_log;
mod report_budget;
mod report_precision;
mod sampler;
mod server_metrics;
mod service;
mod shared_rate_window;
mod shared_service_time;
mod shed;
mod snapshot_encoding;
mod stream_max_age;
mod sysinfo_sampler;
mod tracker;
mod trailer;
mod window_base;

pub use body::ResponseBody;
pub use call_recorder::CallRecorder;
pub use config::{MIN_REPORT_BYTES, ReportingConfig};
pub use drain::{
    Drain, DrainBody, DrainConfig, DrainConfigError, DrainFuture, DrainIncoming, DrainIo,
    DrainLayer, DrainReport, DrainService, END_GRACE,
};
pub use error::{ConfigError, RecordError};
pub use future::ResponseFuture;
pub use layer::{Builder, ReportingLayer};
pub use load_recorder::LoadRecorder;
pub use oob::{OrcaService, ReportStream};
pub use orca_lb_core::load_model::MIN_REPORTED_UTILIZATION;
pub use orca_lb_proto::StreamingMethods;
pub use sampler::{FixedSampler, SystemLoad, SystemSampler};
pub use service::Reporting;
pub use sysinfo_sampler::SysinfoSampler;

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
