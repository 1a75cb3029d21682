//! The load model's defaults, shared by the server and the simulator.

use std::time::Duration;

/// Span over which rates and the busy fraction are measured.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// How often the window's base moves forward (and, in the server, CPU and
/// memory are sampled).
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Time constant of the unary service-time EWMA: short enough that a
/// backend slowing down shows within a second or two.
pub const DEFAULT_SERVICE_TIME_DECAY: Duration = Duration::from_secs(1);

/// The smallest `application_utilization` a report carries.
///
/// Consumers read 0 as "not reported": gRPC's weighted round robin then
/// ignores the whole report and grpc-js sends the backend nothing. An idle
/// backend therefore reports this instead of 0.
pub const MIN_REPORTED_UTILIZATION: f64 = 1e-4;
