//! In-process gRPC backends for orca-lb's tests, examples and benchmarks.
//!
//! A [`Backend`] is a real tonic server on `127.0.0.1` (port chosen by the OS)
//! serving the test [`Greeter`](pb::greeter_server::Greeter) behind the
//! reporting layer, with the out-of-band ORCA service beside it. It stops when
//! dropped.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use orca_lb_testkit::{Backend, BackendConfig, pb};
//!
//! let backend = Backend::spawn(BackendConfig::named("a")).await.unwrap();
//! let mut client = pb::greeter_client::GreeterClient::connect(backend.url()).await.unwrap();
//! let reply = client
//!     .say_hello(pb::HelloRequest { name: "you".into(), ..Default::default() })
//!     .await
//!     .unwrap();
//! assert_eq!(reply.get_ref().backend, "a");
//! # }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod greeter;
pub mod scoped_logs;
mod service_time;
mod test_pki;

pub use backend::{Backend, BackendConfig, BackendService, Wrap};
pub use greeter::TestGreeter;
pub use service_time::ServiceTime;
pub use test_pki::TestPki;

/// The generated greeter messages and stubs.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/orca_lb.testing.v1.rs"));
}

/// The encoded `FileDescriptorSet` of the greeter, for reflection and for
/// [`StreamingMethods`](orca_lb_server::StreamingMethods).
pub const GREETER_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/greeter_descriptor.bin"));
