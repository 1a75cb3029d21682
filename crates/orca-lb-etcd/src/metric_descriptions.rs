//! The HELP text and unit of every etcd discovery and registration metric,
//! given to the recorder once per process.

use std::sync::Once;

use metrics::{Unit, describe_counter, describe_gauge};

/// Describes every metric of this crate to the installed recorder, the first
/// time it is called in the process (every discovery and registration calls
/// it when built, so no application has to).
pub(crate) fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        describe_gauge!(
            "orca_lb_etcd_endpoints",
            Unit::Count,
            "Endpoints currently discovered under the watched prefix."
        );
        describe_counter!(
            "orca_lb_etcd_relists_total",
            Unit::Count,
            "Full re-reads of the prefix after the first: history compacted past the watch, etcd back with an older store, or the watch canceled by etcd."
        );
        describe_counter!(
            "orca_lb_etcd_reconnects_total",
            Unit::Count,
            "Retries after etcd could not be read or watched."
        );
        describe_counter!(
            "orca_lb_etcd_malformed_values_total",
            Unit::Count,
            "Keys under the prefix whose value could not be read as an endpoint."
        );
        describe_counter!(
            "orca_lb_etcd_registrations_total",
            Unit::Count,
            "Times the server's key was written under a new lease."
        );
        describe_counter!(
            "orca_lb_etcd_lease_losses_total",
            Unit::Count,
            "Leases lost (expired or revoked) and registered again."
        );
        describe_counter!(
            "orca_lb_etcd_keep_alive_failures_total",
            Unit::Count,
            "Lease keep-alives that failed (retried; the key is checked once etcd answers)."
        );
        describe_counter!(
            "orca_lb_etcd_key_restores_total",
            Unit::Count,
            "Times the key was found deleted or holding another record under a live lease and written again."
        );
    });
}
