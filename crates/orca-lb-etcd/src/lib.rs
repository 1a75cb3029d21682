//! Service registration and discovery on etcd for orca-lb.
//!
//! orca-lb's balancer (`orca-lb-client`) takes its endpoints from a stream of
//! [`Change`](orca_lb_client::Change)s. This crate produces that stream from
//! etcd, and keeps servers registered there:
//!
//! - **Registration** (server side): [`Registration`] writes
//!   `<prefix>/<service>/<host:port>` under a lease and keeps the lease alive;
//!   it writes the key again after a lost lease, and revokes the lease on
//!   deregistration. A server that dies without deregistering disappears when
//!   its lease expires ([`RegistrationConfig::ttl`]).
//! - **Graceful shutdown**: [`Drain`] turns health `NOT_SERVING`, deregisters,
//!   waits for clients to notice, closes the listener, and lets calls in
//!   flight finish within a deadline.
//! - **Discovery** (client side): [`EtcdDiscovery`] reads the prefix, then
//!   watches from the read's revision + 1, so no change is lost between the
//!   two; it resumes after etcd restarts and reads again, emitting only the
//!   differences, when its revision was compacted.
//! - **Values** are JSON with a version field ([`EndpointRecord`]):
//!   `{"v":1,"addr":"http://10.0.0.7:50051","zone":"a","weight":100}`.
//!   To join a Go fleet, discovery also reads, and registration also writes,
//!   the two forms Go services register in ([`ValueFormat`],
//!   [`RegistrationFormat`]): a bare `host:port` under a lease, and the JSON
//!   of etcd's gRPC naming package, `{"Op":0,"Addr":"host:port","Metadata":...}`.
//!   By default discovery reads each value in the format it shows.
//!   Malformed values are skipped, logged and counted, never fatal.
//! - **The etcd client** ([`EtcdClient`]) is the small part of etcd's v3 gRPC
//!   API these need (`KV`, `Watch`, `Lease`, `Auth`), compiled from the crate's
//!   `proto/` with protox: no system `protoc`, no dependency on a full etcd
//!   client. It speaks TLS and mTLS to `https://` endpoints and authenticates
//!   with a user and password, renewing the token when etcd refuses it
//!   ([`EtcdClientOptions`], [`EtcdTls`], [`EtcdCredentials`]).
//!
//! Why etcd: it is where many fleets already keep service membership, and its
//! leases and revisioned watches give exactly the two guarantees a balancer
//! needs: a dead server's entry goes away on its own, and a watcher can resume
//! without missing or repeating a change. `docs/discovery.md` compares it
//! with the static and DNS discovery in `orca-lb-client`.
//!
//! # Examples
//!
//! A client balancing over whatever is registered for `greeter`:
//!
//! ```no_run
//! use orca_lb_client::{Balancer, BalancerConfig};
//! use orca_lb_etcd::{EtcdClient, EtcdDiscovery};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let etcd = EtcdClient::connect_lazy(["http://127.0.0.1:2379"])?;
//! let discovery = EtcdDiscovery::new(etcd, "greeter");
//! let stats = discovery.stats(); // counters and the endpoints' metadata
//! let balancer = Balancer::new(BalancerConfig::default(), discovery.into_stream())?;
//! // GreeterClient::new(balancer) ...
//! # let _ = (stats, balancer);
//! # Ok(())
//! # }
//! # let _ = run;
//! ```
//!
//! A server registering itself, and leaving cleanly:
//!
//! ```no_run
//! use orca_lb_etcd::{EtcdClient, Registration, RegistrationConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let etcd = EtcdClient::connect_lazy(["http://127.0.0.1:2379"])?;
//! let mut config = RegistrationConfig::new("greeter", "http://10.0.0.7:50051".parse()?);
//! config.record.zone = Some("eu-west-1a".into());
//! let registration = Registration::start(etcd, config).await?;
//! // ... serve; on shutdown (see `Drain` for the full order):
//! registration.deregister().await?;
//! # Ok(())
//! # }
//! # let _ = run;
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod auth;
mod client;
mod client_options;
mod discovery;
mod drain;
mod error;
mod metric_descriptions;
mod record;
mod registration;
mod tls_failure;
mod value_format;

pub use client::{DEFAULT_REQUEST_TIMEOUT, EtcdClient, KeepAlive, Lease, RangeRead, WatchStream};
pub use client_options::{DEFAULT_CONNECT_TIMEOUT, EtcdClientOptions, EtcdCredentials, EtcdTls};
pub use discovery::{DiscoveryStats, EtcdDiscovery};
pub use drain::{Drain, DrainConfig, DrainIncoming, DrainIo, DrainReport};
pub use error::{ConfigError, EtcdError, RegisterError, ValueError};
pub use record::{DEFAULT_PREFIX, EndpointRecord, RECORD_VERSION, endpoint_key, service_prefix};
pub use registration::{Registration, RegistrationConfig};
pub use value_format::{DEFAULT_ZONE_KEY, RegistrationFormat, ValueFormat};

/// The generated etcd v3 messages and client stubs, laid out by protobuf
/// package (the crate's `proto/`).
pub mod pb {
    /// `etcdserverpb`: the `KV`, `Watch`, `Lease` and `Auth` services.
    #[allow(
        missing_docs,
        unreachable_pub,
        missing_debug_implementations,
        clippy::all
    )]
    pub mod etcdserverpb {
        include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    }

    /// `mvccpb`: `KeyValue` and `Event`.
    #[allow(missing_docs, clippy::all)]
    pub mod mvccpb {
        include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
    }
}

// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_examples {}
