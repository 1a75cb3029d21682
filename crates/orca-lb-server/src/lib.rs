//! ORCA load reporting for tonic servers.
//!
//! (crate documentation below)
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod atomic_f64;
mod body;
mod call_recorder;
mod config;
mod error;
mod future;
mod guard;
mod layer;
mod oob;
mod rate_window;
mod recorder;
mod sampler;
mod service;
mod sysinfo_sampler;
mod tracker;
mod trailer;

pub use body::ResponseBody;
pub use call_recorder::CallRecorder;
pub use config::ReportingConfig;
pub use error::{ConfigError, RecordError};
pub use future::ResponseFuture;
pub use layer::{Builder, ReportingLayer};
pub use oob::{OrcaService, ReportStream};
pub use orca_lb_proto::StreamingMethods;
pub use recorder::LoadRecorder;
pub use sampler::{FixedSampler, SystemLoad, SystemSampler};
pub use service::Reporting;
pub use sysinfo_sampler::SysinfoSampler;
pub use tracker::MIN_REPORTED_UTILIZATION;
