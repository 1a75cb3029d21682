//! Writing a [`LoadSnapshot`] into an encoded report.

use orca_lb_core::load_model::LoadSnapshot;
use orca_lb_proto::encode::ReportEncoder;

/// Writes the snapshot's standard fields and orca-lb's own named metrics,
/// the same entries [`LoadSnapshot::to_raw`] puts in a message, without
/// allocating.
pub(crate) fn encode_snapshot<B: bytes::BufMut>(
    snapshot: &LoadSnapshot,
    enc: &mut ReportEncoder<'_, B>,
) {
    enc.cpu_utilization(snapshot.cpu_utilization)
        .mem_utilization(snapshot.mem_utilization)
        .application_utilization(snapshot.application_utilization)
        .rps_fractional(snapshot.rps)
        .eps(snapshot.eps);
    for (name, v) in snapshot.named_metrics() {
        enc.named_metric(name, v);
    }
}
