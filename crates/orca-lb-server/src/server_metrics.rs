//! The reporting layer's metrics: their descriptions, given to the recorder
//! once per process, and the handles a layer registers when it is built.
//! Names, labels and HELP texts are listed in `docs/observability.md`.

use std::sync::Once;

use metrics::{Counter, Unit, counter, describe_counter};

use crate::shed::Shed;

/// The label of `orca_lb_server_shed_calls_total` saying why a call was
/// refused, as the `refused a call` log line says it.
const REASON: &str = "reason";

/// Handles for the layer's counters, registered (at zero) when the layer is
/// built, so that every series exists before its first event and an event
/// costs an atomic add.
#[derive(Debug, Clone)]
pub(crate) struct ServerMetrics {
    pub(crate) rejected_metrics: Counter,
    pub(crate) dropped_metrics: Counter,
    pub(crate) refused_oob_subscribers: Counter,
    shed_queue_full: Counter,
    shed_queue_wait: Counter,
    shed_hand_back: Counter,
}

impl ServerMetrics {
    pub(crate) fn new() -> Self {
        describe();
        let shed = |shed: Shed| counter!("orca_lb_server_shed_calls_total", REASON => shed.label());
        Self {
            rejected_metrics: counter!("orca_lb_server_rejected_metrics_total"),
            dropped_metrics: counter!("orca_lb_server_dropped_metrics_total"),
            refused_oob_subscribers: counter!("orca_lb_server_refused_oob_subscribers_total"),
            shed_queue_full: shed(Shed::QueueFull),
            shed_queue_wait: shed(Shed::QueueWait),
            shed_hand_back: shed(Shed::HandBack),
        }
    }

    /// The counter of calls shed for `shed`.
    pub(crate) fn shed(&self, shed: Shed) -> &Counter {
        match shed {
            Shed::QueueFull => &self.shed_queue_full,
            Shed::QueueWait => &self.shed_queue_wait,
            Shed::HandBack => &self.shed_hand_back,
        }
    }
}

/// Describes every server metric to the installed recorder, the first time
/// it is called in the process (every layer calls it when built, so no
/// application has to).
fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        describe_counter!(
            "orca_lb_server_rejected_metrics_total",
            Unit::Count,
            "Load metrics the application tried to record and the LoadRecorder or CallRecorder refused (out of range, NaN, a reserved orca_lb. name, a name over max_name_len, an entry that would take the report past max_report_bytes), and SystemSampler readings out of range (the last good one is kept)."
        );
        describe_counter!(
            "orca_lb_server_dropped_metrics_total",
            Unit::Count,
            "Application entries recorded earlier and left out of a report because it was full when sent."
        );
        describe_counter!(
            "orca_lb_server_shed_calls_total",
            Unit::Count,
            "Unary calls the layer answered without running them: RESOURCE_EXHAUSTED because its queue held max_queue_depth calls (queue_full) or the call waited max_queue_wait (queue_wait); UNAVAILABLE, handed back to an orca-lb client that offered it, with every slot taken and hand_back_queue_depth calls waiting (hand_back)."
        );
        describe_counter!(
            "orca_lb_server_refused_oob_subscribers_total",
            Unit::Count,
            "Out-of-band subscriptions refused (RESOURCE_EXHAUSTED) with max_oob_subscribers open."
        );
    });
}
