//! Out-of-band ORCA subscriptions, one per endpoint.

use std::sync::Weak;
use std::time::Duration;

use orca_lb_core::{Backoff, LoadReport};
use orca_lb_proto::pb::OrcaLoadReportRequest;
use orca_lb_proto::pb::open_rca_service_client::OpenRcaServiceClient;
use tonic::Code;

use crate::endpoint::Endpoint;
use crate::shared::Shared;

/// Reconnect backoff bounds, as gRPC's ORCA clients use them.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(120);

/// Subscribes to the endpoint's `StreamCoreMetrics` over its own connection
/// and feeds every report to the balancer. Stops for good on UNIMPLEMENTED
/// (the endpoint has no OOB service: per-call trailers remain); retries other
/// errors with backoff (1 s, x1.6, +-20 %, at most 120 s), reset after any
/// valid report taken in. Reports larger than `oob_max_message_size` count as
/// invalid and end the stream; reports closer together than
/// `oob_min_spacing` are dropped and counted. Ends when the endpoint or the
/// balancer is dropped.
pub(crate) async fn run(shared: Weak<Shared>, endpoint: Weak<Endpoint>, period: Duration) {
    let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
    loop {
        let Some(ep) = endpoint.upgrade() else { return };
        let (max_size, min_spacing) = match shared.upgrade() {
            Some(s) => (s.config.oob_max_message_size, s.config.oob_min_spacing),
            None => return,
        };
        let mut client =
            OpenRcaServiceClient::new(ep.channel().clone()).max_decoding_message_size(max_size);
        let key = ep.key().to_string();
        drop(ep);
        let mut last_taken: Option<tokio::time::Instant> = None;
        let request = OrcaLoadReportRequest {
            report_interval: period.try_into().ok(),
            request_cost_names: vec![],
        };
        match client.stream_core_metrics(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(pb)) => {
                            let (Some(shared), Some(ep)) = (shared.upgrade(), endpoint.upgrade())
                            else {
                                return;
                            };
                            let at = tokio::time::Instant::now();
                            if last_taken.is_some_and(|t| at.duration_since(t) < min_spacing) {
                                ep.on_oob_report_dropped();
                                continue;
                            }
                            last_taken = Some(at);
                            backoff.reset();
                            let now = at.into_std();
                            match LoadReport::try_from(pb) {
                                Ok(report) => shared.set.on_report(&ep, &report, now),
                                Err(e) => ep.on_invalid_report(&shared.config.target, &e),
                            }
                        }
                        Ok(None) => break,
                        Err(status) if status.code() == Code::OutOfRange => {
                            // Larger than `oob_max_message_size`.
                            let (Some(shared), Some(ep)) = (shared.upgrade(), endpoint.upgrade())
                            else {
                                return;
                            };
                            ep.on_invalid_report(&shared.config.target, &status.message());
                            break;
                        }
                        Err(status) => {
                            tracing::debug!(endpoint = %key, %status, "out-of-band stream ended");
                            break;
                        }
                    }
                }
            }
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::info!(endpoint = %key, "no out-of-band ORCA service; using per-call reports");
                return;
            }
            Err(status) => {
                tracing::debug!(endpoint = %key, %status, ?backoff, "out-of-band subscription failed");
            }
        }
        let delay = backoff.next_delay(&mut rand::rng());
        tokio::time::sleep(delay).await;
    }
}
