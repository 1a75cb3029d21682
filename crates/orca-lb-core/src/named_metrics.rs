//! Names of the `named_metrics` entries that orca-lb servers publish.
//!
//! ORCA's `named_metrics` map is opaque to gRPC's own balancers, so orca-lb
//! keeps its raw load counts there under an `orca_lb.` prefix, where they cannot
//! collide with an application's own names. Every value is finite and `>= 0`;
//! [`LoadReport`](crate::LoadReport) rejects a report where one of these is not.
//! See `docs/orca.md` for what each one means.

/// Calls waiting for a worker slot right now (the layer's own queue plus any
/// queue the application reports through its recorder).
pub const QUEUE_DEPTH: &str = "orca_lb.queue_depth";

/// Calls the server has accepted and not finished, streams included.
pub const IN_FLIGHT: &str = "orca_lb.in_flight";

/// Streaming calls (client, server or bidirectional) that are open.
pub const ACTIVE_STREAMS: &str = "orca_lb.active_streams";

/// Worker slots: how many unary calls the server serves at once.
pub const CAPACITY: &str = "orca_lb.capacity";

/// Smoothed service time of unary calls (time holding a worker slot, queueing
/// excluded), in milliseconds.
pub const SERVICE_TIME_MS: &str = "orca_lb.service_time_ms";

/// All names above, for iteration.
pub const ALL: [&str; 5] = [
    QUEUE_DEPTH,
    IN_FLIGHT,
    ACTIVE_STREAMS,
    CAPACITY,
    SERVICE_TIME_MS,
];

/// Whether `name` is one of orca-lb's own named metrics.
pub fn is_known(name: &str) -> bool {
    ALL.contains(&name)
}
