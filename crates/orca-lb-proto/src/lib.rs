//! Generated protobuf types for ORCA, and the hand-written wire pieces orca-lb
//! needs on its hot paths.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod convert;
pub mod encode;
mod streaming_methods;

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
