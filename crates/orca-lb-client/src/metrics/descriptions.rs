//! The HELP text and unit of every client metric, given to the recorder once
//! per process.

use std::sync::Once;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every client metric to the installed recorder, the first time
/// it is called in the process (every balancer calls it when built, before
/// registering its handles, so no application has to). A recorder installed
/// after the first balancer gets the metrics without their descriptions, as
/// it would miss that balancer's handles too.
pub(crate) fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe_all);
}

fn describe_all() {
    describe_counter!(
        "orca_lb_client_affinity_passed_on_total",
        Unit::Count,
        "Keyed calls whose key's first choice was the endpoint and that went to another endpoint because it was at or over the load bound; with affinity on only."
    );
    describe_counter!(
        "orca_lb_client_picks_total",
        Unit::Count,
        "Calls and streams the balancer sent to the endpoint."
    );
    describe_counter!(
        "orca_lb_client_failures_total",
        Unit::Count,
        "Calls that failed against the endpoint: a status in failure_codes, a broken response, or a refused connection."
    );
    describe_counter!(
        "orca_lb_client_ejections_total",
        Unit::Count,
        "Times the endpoint's circuit opened."
    );
    describe_counter!(
        "orca_lb_client_reports_total",
        Unit::Count,
        "Valid load reports taken in from the endpoint, per call and out of band."
    );
    describe_counter!(
        "orca_lb_client_invalid_reports_total",
        Unit::Count,
        "Load reports from the endpoint ignored: undecodable, out of range, too large, or out of band sooner than oob_min_spacing allows."
    );
    describe_counter!(
        "orca_lb_client_oob_reports_dropped_total",
        Unit::Count,
        "Out-of-band reports from the endpoint dropped for arriving sooner than oob_min_spacing after the last one taken in."
    );
    describe_gauge!(
        "orca_lb_client_in_flight",
        Unit::Count,
        "This client's unary calls in flight on the endpoint, as of the last maintenance pass."
    );
    describe_gauge!(
        "orca_lb_client_score_seconds",
        Unit::Seconds,
        "Expected completion time of a unary call on the endpoint (the score picks compare), as of the last maintenance pass."
    );
    describe_gauge!(
        "orca_lb_client_breaker_state",
        "The endpoint's circuit breaker: 1 on the series of its current state (closed, open, half_open), 0 on the others."
    );
    describe_counter!(
        "orca_lb_client_health_changes_total",
        Unit::Count,
        "Changes of the endpoint's health-check state, by the state entered (unknown, serving, not_serving, unimplemented); with health checking on only."
    );
    describe_histogram!(
        "orca_lb_client_call_duration_seconds",
        Unit::Seconds,
        "Unary calls through the balancer, from the pick to their status (or the error that ended them); a re-picked call counts once, a call its caller dropped not at all."
    );
    describe_counter!(
        "orca_lb_client_repicks_total",
        Unit::Count,
        "Calls sent to a second endpoint because the first attempt never reached a server."
    );
    describe_counter!(
        "orca_lb_client_hand_backs_total",
        Unit::Count,
        "Unary calls a busy orca-lb server handed back unserved (every worker slot taken, calls waiting) and the balancer sent to another endpoint."
    );
    describe_gauge!(
        "orca_lb_client_zone_spill",
        "The share of picks sent outside the balancer's own zone, 0 to 1, as of the last maintenance pass; with locality on only."
    );
    describe_counter!(
        "orca_lb_client_dns_failures_total",
        Unit::Count,
        "DNS discovery lookups that failed or returned no address (the known endpoints are kept)."
    );
}
