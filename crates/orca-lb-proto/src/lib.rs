//! The ORCA wire format: generated messages and stubs, and the hand-written
//! pieces orca-lb needs on its hot paths.
//!
//! # Where it fits
//!
//! Every other orca-lb crate speaks ORCA through this one. The messages are
//! `xds.data.orca.v3.OrcaLoadReport` and `xds.service.orca.v3.OpenRcaService`,
//! written in `proto/` from the upstream field names and numbers and compiled
//! in `build.rs` with protox (no system `protoc`). Conversions to and from
//! `orca_lb_core::LoadReport` validate at the boundary.
//!
//! - [`pb`]: the generated types, laid out by protobuf package, with short
//!   re-exports (`pb::OrcaLoadReport`).
//! - [`encode::ReportEncoder`]: writes a report straight into a buffer,
//!   without building the message and its maps: what a server does per call.
//! - [`StreamingMethods`]: which methods of a service stream, read from its
//!   `FileDescriptorSet`.
//!
//! # Examples
//!
//! ```
//! use orca_lb_core::LoadReport;
//! use orca_lb_proto::pb::OrcaLoadReport;
//!
//! let pb = OrcaLoadReport { cpu_utilization: 0.5, rps_fractional: 10.0, ..Default::default() };
//! let report = LoadReport::try_from(pb).unwrap();
//! assert_eq!(report.qps(), 10.0);
//!
//! let bad = OrcaLoadReport { mem_utilization: 2.0, ..Default::default() };
//! assert!(LoadReport::try_from(bad).is_err());
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod convert;
pub mod encode;
mod grpc_status;
mod streaming_methods;

pub use grpc_status::grpc_status;
pub use streaming_methods::StreamingMethods;

/// The well-known types the generated code uses (`Duration`).
pub use prost_types;

/// Generated messages and gRPC stubs, laid out by protobuf package.
pub mod pb {
    /// `xds.*` packages.
    pub mod xds {
        /// `xds.data.*` packages.
        pub mod data {
            /// `xds.data.orca.*` packages.
            pub mod orca {
                /// `xds.data.orca.v3`: the `OrcaLoadReport` message.
                #[allow(missing_docs, clippy::all)]
                pub mod v3 {
                    include!(concat!(env!("OUT_DIR"), "/xds.data.orca.v3.rs"));
                }
            }
        }
        /// `xds.service.*` packages.
        pub mod service {
            /// `xds.service.orca.*` packages.
            pub mod orca {
                /// `xds.service.orca.v3`: the out-of-band `OpenRcaService`.
                #[allow(
                    missing_docs,
                    unreachable_pub,
                    missing_debug_implementations,
                    clippy::all
                )]
                pub mod v3 {
                    include!(concat!(env!("OUT_DIR"), "/xds.service.orca.v3.rs"));
                }
            }
        }
    }

    pub use xds::data::orca::v3::OrcaLoadReport;
    pub use xds::service::orca::v3::{
        OrcaLoadReportRequest, open_rca_service_client, open_rca_service_server,
    };
}

/// The encoded `FileDescriptorSet` of the ORCA protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/orca_descriptor.bin"));

/// The trailer (or trailers-only header) that carries a per-call report.
pub const TRAILER_KEY: &str = "endpoint-load-metrics-bin";

/// The trailer an `orca-lb-server` adds when it ends a stream because the
/// stream reached its max age (`ReportingConfig::max_stream_age`), with the
/// value [`STREAM_ENDED_MAX_AGE`]. The status is UNAVAILABLE; a client that
/// sees this trailer knows the server ended a healthy stream on purpose, so
/// that its caller opens it again and is balanced anew, and does not count
/// the end as a failure of the server.
pub const STREAM_ENDED_TRAILER: &str = "orca-lb-stream-ended";

/// The value of [`STREAM_ENDED_TRAILER`] for a stream ended at its max age.
pub const STREAM_ENDED_MAX_AGE: &str = "max-age";

/// The request header with which an `orca-lb-client` offers a unary call to
/// be handed back: the client holds the whole request and will send it to
/// another backend if this one answers it unserved (value `1`). Servers that
/// do not know it ignore it.
pub const MAY_HAND_BACK_HEADER: &str = "orca-lb-may-hand-back";

/// The header of a trailers-only `UNAVAILABLE` response with which an
/// `orca-lb-server` hands back a call offered with [`MAY_HAND_BACK_HEADER`]
/// (value `busy`): every worker slot was taken and calls were already
/// waiting, so the handler never ran and the client may pick another
/// backend at once. The response carries the server's load report like any
/// other.
pub const HANDED_BACK_HEADER: &str = "orca-lb-handed-back";

/// The value of [`HANDED_BACK_HEADER`].
pub const HANDED_BACK_BUSY: &str = "busy";

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
