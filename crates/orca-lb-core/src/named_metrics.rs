//! Names of the `named_metrics` entries that orca-lb servers publish.
//!
//! ORCA's `named_metrics` map is opaque to gRPC's own balancers, so orca-lb
//! keeps its raw load counts there. The names are short because every
//! response carries them; orca-lb's server reserves them (an application
//! cannot set them through its recorders). Every value is finite and `>= 0`;
//! [`LoadReport`](crate::LoadReport) rejects a report where one of these is
//! not.
//!
//! To keep per-call trailers small, orca-lb servers omit `queue_depth` and
//! `active_streams` when they are zero: a report that carries `in_flight`
//! but not them means zero, and [`LoadReport::queue_depth`](crate::LoadReport::queue_depth)
//! and [`LoadReport::active_streams`](crate::LoadReport::active_streams) read
//! it so. See `docs/orca.md` for what each one means.

/// Calls waiting for a worker slot right now (the layer's own queue plus any
/// queue the application reports through its recorder).
pub const QUEUE_DEPTH: &str = "queue_depth";

/// Calls the server has accepted and not finished, streams included.
pub const IN_FLIGHT: &str = "in_flight";

/// Streaming calls (client, server or bidirectional) that are open.
pub const ACTIVE_STREAMS: &str = "active_streams";

/// Worker slots: how many unary calls the server serves at once.
pub const CAPACITY: &str = "capacity";

/// Smoothed service time of unary calls (time holding a worker slot, queueing
/// excluded), in milliseconds.
pub const SERVICE_TIME_MS: &str = "service_time_ms";

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
