//! `orca-lb report`: the ORCA load reports a server sends.

use orca_lb_core::LoadReport;
use orca_lb_core::escaped::escape;
use orca_lb_debug::render;
use orca_lb_proto::pb::OrcaLoadReportRequest;
use orca_lb_proto::pb::open_rca_service_client::OpenRcaServiceClient;
use tonic::metadata::MetadataMap;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::args::ReportArgs;
use crate::connect::connect;
use crate::deadline::{STREAM_SLACK, within};
use crate::error::CliError;
use crate::output::emit;

/// The call that carries a per-call report: one nearly every gRPC server
/// answers, and that costs it nothing.
const PROBE: &str = "grpc.health.v1.Health/Check";

/// The probe's service, for errors.
const PROBE_SERVICE: &str = "grpc.health.v1.Health";

/// The out-of-band ORCA service.
const OOB: &str = "xds.service.orca.v3.OpenRcaService";

pub(crate) async fn run(args: ReportArgs) -> Result<(), CliError> {
    let target = args.target.as_str();
    let channel = connect(target, args.connect_timeout).await?;

    // A server behind orca-lb's reporting layer attaches a report to every
    // response, errors included: UNIMPLEMENTED from a server without the
    // health service still carries one (in its trailers-only headers).
    let timeout = args.timeout;
    let probe = within(target, PROBE, timeout, async {
        Ok(HealthClient::new(channel.clone())
            .check(HealthCheckRequest::default())
            .await)
    })
    .await?;
    let (outcome, metadata) = match probe {
        Ok(response) => {
            let status = response.get_ref().status().as_str_name().to_string();
            (status, response.into_parts().0)
        }
        Err(status) if status.code() == tonic::Code::Unavailable => {
            return Err(CliError::from_status(target, PROBE_SERVICE, &status));
        }
        Err(status) => (format!("{:?}", status.code()), status.metadata().clone()),
    };
    emit(&format!(
        "per-call report ({PROBE} -> {outcome}): {}\n",
        per_call(&metadata)
    ))?;

    if args.count == 0 {
        return Ok(());
    }
    let interval = args
        .interval
        .try_into()
        .map_err(|_| CliError::Usage(format!("--interval {:?} is too long", args.interval)))?;
    let mut reports = within(target, OOB, timeout, async {
        OpenRcaServiceClient::new(channel)
            .stream_core_metrics(OrcaLoadReportRequest {
                report_interval: Some(interval),
                request_cost_names: vec![],
            })
            .await
            .map_err(|s| CliError::from_status(target, OOB, &s))
    })
    .await?
    .into_inner();
    // The first report comes at once; the server may send the next ones
    // less often than asked.
    let mut wait = timeout;
    for i in 1..=args.count {
        let next = within(target, OOB, wait, async {
            reports
                .message()
                .await
                .map_err(|s| CliError::from_status(target, OOB, &s))
        })
        .await?;
        wait = args.interval.max(STREAM_SLACK) + timeout;
        let report = next.ok_or_else(|| {
            CliError::Other(format!(
                "{target} ended the out-of-band stream after {} report(s)",
                i - 1
            ))
        })?;
        let line = match LoadReport::try_from(report) {
            Ok(r) => render::report(&r),
            Err(e) => escape(&e.to_string()).into_owned(),
        };
        emit(&format!("out-of-band report {i}: {line}\n"))?;
    }
    Ok(())
}

/// The decoded per-call report in `metadata`, or why there is none.
fn per_call(metadata: &MetadataMap) -> String {
    let Some(value) = metadata.get_bin(orca_lb_proto::TRAILER_KEY) else {
        return format!(
            "none: the response has no {} (not an ORCA server?)",
            orca_lb_proto::TRAILER_KEY
        );
    };
    // The same decoding the balancer applies to every response.
    match orca_lb_client::decode_report(value.as_encoded_bytes()) {
        Ok(report) => render::report(&report),
        Err(e) => format!("unusable: {}", escape(&e.to_string())),
    }
}
