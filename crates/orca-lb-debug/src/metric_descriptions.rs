//! The HELP text and unit of the debug service's metrics, given to the
//! recorder once per process.

use std::sync::Once;

use metrics::{Unit, describe_counter};

/// Describes every metric of the debug service to the installed recorder,
/// the first time it is called in the process (every service calls it when
/// built, so no application has to).
pub(crate) fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        describe_counter!(
            "orca_lb_debug_refused_watchers_total",
            Unit::Count,
            "WatchState streams refused (RESOURCE_EXHAUSTED) with the maximum open."
        );
    });
}
